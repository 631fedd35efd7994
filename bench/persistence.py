"""``python -m bench persistence``: what ``engine.memory.persistence`` costs and keeps.

Five measurements, each short:

0. ``engine``: the engine's part of a 1,000-publish batch in this process, memory vs
   disk (the least noisy view of the cost on a shared machine).
1. ``batch``: bench/batch.py's cases (a 1,000-publish ``/api/batch`` over 100 history
   channels, without and with 1,000 subscribers) against relay with persistence off and
   on with each sync policy, side by side, repeats interleaved; medians.
2. ``restart``: 10,000 channels x 100 publications written by a ``PersistentMemoryEngine``
   (in this process, batches of 1,000), then the time to replay the directory, before
   and after a compaction.
3. ``disk``: bytes of log per publication written, and per publication retained after
   the compaction.
4. ``loss``: for each sync policy, a relay under a stream of single publishes (16 in
   flight) is killed with SIGKILL (every worker and the front); after the restart every
   acknowledged publication must be in its channel's history: the count of acknowledged
   but missing ones is the loss window a process kill leaves. (A power loss can also take
   what was not fsynced yet: up to ``sync_interval`` with ``interval``, nothing answered
   with ``always``; that needs a machine to switch off and is not measured here.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp

from bench.common import (
    CaseMetrics,
    Target,
    aggregate,
    make_config,
    markdown_table,
    proc_tree,
    start_server,
)

POLICIES = ("interval", "always", "none")


def _config(workdir: str, name: str, policy: str | None) -> str:
    cfg = make_config()
    if policy is not None:
        history = os.path.join(workdir, f"history-{name}")
        cfg["engine"] = {"memory": {"persistence": {"dir": history, "sync": policy}}}
    path = os.path.join(workdir, f"config-{name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def bench_batch(args: argparse.Namespace, workdir: str) -> str:
    from bench import batch

    variants = [("memory", None)] + [(f"disk-{p}", p) for p in args.policies]
    targets: list[Target] = []
    try:
        for name, policy in variants:
            t = start_server("relay", args.workers, _config(workdir, name, policy), workdir)
            t.name = f"relay-{name}"
            targets.append(t)
        runs: dict[str, list[CaseMetrics]] = {}
        for rep in range(args.repeats):
            for t in targets if rep % 2 == 0 else list(reversed(targets)):
                print(f"[persistence batch] repeat {rep + 1}: {t.name}", flush=True)
                runs.setdefault(t.name, []).append(asyncio.run(batch.run_once(t, args, rep)))
    finally:
        for t in targets:
            t.stop()
    return markdown_table(aggregate({t.name: runs[t.name] for t in targets}))


def bench_engine(args: argparse.Namespace, workdir: str) -> str:
    """The engine's part of a batch, in this process: µs per publication, memory vs disk."""
    from relay.engines.base import PublishOptions
    from relay.engines.memory import MemoryEngine
    from relay.engines.persistent import PersistentMemoryEngine
    from relay.engines.store import StreamStore
    from relay.protocol.messages import Publication

    gc.set_threshold(50_000, 20, 20)
    opts = PublishOptions(history_size=100, history_ttl=3600.0, history_meta_ttl=7200.0)
    data = b'{"value":"' + b"x" * 40 + b'","n":12345}'
    engines: list[tuple[str, Any]] = [("memory", MemoryEngine())]
    for policy in args.policies:
        store = StreamStore(os.path.join(workdir, f"engine-{policy}"), policy)
        engines.append((f"disk-{policy}", PersistentMemoryEngine(store)))
    times: dict[tuple[str, int], list[float]] = {}
    for _ in range(5):
        for name, engine in engines:
            for n in (100, 1000):
                chans = [f"c{n}-{i % n}" for i in range(1000)]
                t0 = time.perf_counter()
                for _ in range(20):
                    engine.publish_many_sync([(ch, Publication(data), opts) for ch in chans])
                times.setdefault((name, n), []).append((time.perf_counter() - t0) / 20_000)
    names = [name for name, _ in engines]
    rows = ["| channels per batch | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for n in (100, 1000):
        cells = [f"{1e6 * statistics.median(times[(name, n)]):.2f}" for name in names]
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    for _, engine in engines[1:]:
        engine.store.close()
    return "µs per publication in `publish_many_sync` (batches of 1,000, median of 5):\n\n" + (
        "\n".join(rows)
    )


def bench_restart(args: argparse.Namespace, workdir: str) -> str:
    from relay.engines.base import PublishOptions
    from relay.engines.persistent import PersistentMemoryEngine
    from relay.engines.store import StreamStore
    from relay.protocol.messages import Publication

    gc.set_threshold(50_000, 20, 20)  # as a worker runs (process/worker.py)
    directory = os.path.join(workdir, "restart")
    opts = PublishOptions(history_size=100, history_ttl=3600.0, history_meta_ttl=7200.0)
    data = b'{"value":"' + b"x" * 40 + b'","n":12345}'
    engine = PersistentMemoryEngine(StreamStore(directory, "none"))
    channels = [f"room-{i}" for i in range(args.channels)]
    started = time.perf_counter()
    for _ in range(args.per_channel):
        for i in range(0, len(channels), 1000):
            engine.publish_many_sync(
                [(ch, Publication(data), opts) for ch in channels[i : i + 1000]]
            )
    write_s = time.perf_counter() - started
    total = args.channels * args.per_channel
    written = engine.store.size
    engine.store.close()

    def reload() -> tuple[float, PersistentMemoryEngine]:
        t0 = time.perf_counter()
        e = PersistentMemoryEngine(StreamStore(directory, "none"))
        return time.perf_counter() - t0, e

    times = []
    for _ in range(3):
        took, e = reload()
        times.append(took)
        e.store.close()
    _, e = reload()
    t0 = time.perf_counter()
    e.compact()  # the fork: what the event loop waits for
    fork_s = time.perf_counter() - t0
    e.store.poll_compaction(block=True)
    compact_s = time.perf_counter() - t0
    compacted = sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory))
    e.store.close()
    after = []
    for _ in range(3):
        took, e = reload()
        after.append(took)
        e.store.close()
    shutil.rmtree(directory, ignore_errors=True)
    rows = [
        ("publications written", f"{total:,} ({args.channels:,} channels x {args.per_channel})"),
        ("payload bytes per publication", str(len(data))),
        ("write (publish_many_sync + log), us per publication", f"{1e6 * write_s / total:.2f}"),
        ("replay of the written log, s (median of 3)", f"{statistics.median(times):.2f}"),
        ("compaction: the event loop's pause (fork), ms", f"{1000 * fork_s:.1f}"),
        ("compaction: snapshot written by the child, s", f"{compact_s:.2f}"),
        ("replay after compaction, s (median of 3)", f"{statistics.median(after):.2f}"),
        ("log bytes per publication written", f"{written / total:.1f}"),
        ("log bytes per publication retained (compacted)", f"{compacted / total:.1f}"),
    ]
    return "\n".join(["| measurement | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])


async def _loss_once(target: Target, duration: float) -> dict[str, int]:
    """Publish for ``duration`` s, kill -9; the highest acknowledged offset per channel."""
    acked: dict[str, int] = {}
    stop = asyncio.Event()
    url = target.api_url + "/publish"
    headers = {"X-API-Key": target.api_key}

    async def publisher(session: aiohttp.ClientSession, n: int) -> None:
        ch = f"hist:loss-{n}"
        while not stop.is_set():
            try:
                async with session.post(url, json={"channel": ch, "data": {"n": n}},
                                        headers=headers) as resp:  # fmt: skip
                    body = await resp.json()
            except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError):
                return
            if "result" in body:
                acked[ch] = max(acked.get(ch, 0), body["result"]["offset"])

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.ensure_future(publisher(session, n)) for n in range(16)]
        await asyncio.sleep(duration)
        assert target.proc is not None
        for pid in proc_tree(target.proc.pid)[1:]:
            os.kill(pid, signal.SIGKILL)
        target.proc.kill()
        target.proc.wait()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return acked


async def _tops(target: Target, channels: list[str]) -> dict[str, int]:
    out = {}
    async with aiohttp.ClientSession() as session:
        for ch in channels:
            async with session.post(target.api_url + "/history", json={"channel": ch},
                                    headers={"X-API-Key": target.api_key}) as resp:  # fmt: skip
                out[ch] = (await resp.json())["result"].get("offset", 0)
    return out


def bench_loss(args: argparse.Namespace, workdir: str) -> str:
    rows = [
        "| sync | acknowledged publishes | acknowledged but lost after kill -9 |",
        "|---|---|---|",
    ]
    for policy in args.policies:
        cfg = _config(workdir, f"loss-{policy}", policy)
        target = start_server("relay", args.workers, cfg, workdir)
        acked = asyncio.run(_loss_once(target, args.loss_seconds))
        target2 = start_server("relay", args.workers, cfg, workdir)
        try:
            tops = asyncio.run(_tops(target2, list(acked)))
        finally:
            target2.stop()
        lost = sum(max(0, top - tops[ch]) for ch, top in acked.items())
        rows.append(f"| {policy} | {sum(acked.values()):,} | {lost} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench persistence", description=__doc__)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--publishes", type=int, default=1000)
    p.add_argument("--channels-per-batch", dest="batch_channels", type=int, default=100)
    p.add_argument("--subs-per-channel", type=int, default=10)
    p.add_argument("--drivers", type=int, default=2)
    p.add_argument("--channels", type=int, default=10_000, help="restart: channels")
    p.add_argument("--per-channel", type=int, default=100, help="restart: publications each")
    p.add_argument("--loss-seconds", type=float, default=3.0)
    p.add_argument("--policies", default=",".join(POLICIES))
    p.add_argument("--only", default="engine,batch,restart,loss")
    args = p.parse_args(argv)
    args.policies = args.policies.split(",")
    args.namespace = "hist"
    only = set(args.only.split(","))
    workdir = tempfile.mkdtemp(prefix="relay-bench-persist-")
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    out = [f"# persistence ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
           f"Python {sys.version.split()[0]}, workers={args.workers})"]  # fmt: skip
    try:
        if "batch" in only:
            batch_args = argparse.Namespace(**vars(args))
            batch_args.channels = args.batch_channels
            out += ["", "## batch of 1,000 publishes", "", bench_batch(batch_args, workdir)]
        if "engine" in only:
            out += ["", "## the engine's part of a batch", "", bench_engine(args, workdir)]
        if "restart" in only:
            out += ["", "## restart and disk", "", bench_restart(args, workdir)]
        if "loss" in only:
            out += ["", "## kill -9 under single publishes", "", bench_loss(args, workdir)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
