"""engine.memory.persistence with real processes: kill -9, SIGTERM, a worker's death, a
corrupt log tail, a full disk (a file-size limit on the worker: writes fail with EFBIG)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from centrifuge import (
    Client,
    PublicationContext,
    SubscribedContext,
    SubscriptionEventHandler,
)

from relay.auth import encode_hmac_token
from relay.cluster.shards import ShardMap
from tests.cluster.test_cluster import children
from tests.procutil import OPEN_CHANNELS, ROOT, RelayEndpoints, free_port, wait_port

SECRET = "persist-secret"
KEY = "persist-key"


@dataclass
class Server(RelayEndpoints):
    """A relay process with persistence on; ``restart`` keeps port, config and directory."""

    tmp: Path
    workers: int
    sync: str = "interval"
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    api_key = KEY
    secret = SECRET

    @property
    def history_dir(self) -> Path:
        return self.tmp / "history"

    @property
    def stderr(self) -> str:
        return "".join(
            (self.tmp / f"stderr-{i}.txt").read_text(errors="replace") for i in range(self.starts)
        )

    async def start(self) -> None:
        cfg = self.tmp / "config.json"
        cfg.write_text(json.dumps({
            "client": {"token": {"hmac_secret_key": SECRET}},
            "http_api": {"key": KEY},
            "engine": {"memory": {"persistence": {"dir": str(self.history_dir),
                                                  "sync": self.sync}}},
            "channel": {"without_namespace": OPEN_CHANNELS,
                        "namespaces": [{"name": "nohist", "allow_subscribe_for_client": True}]},
        }))  # fmt: skip
        err = open(self.tmp / f"stderr-{self.starts}.txt", "wb")
        self.starts += 1
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay", "-c", str(cfg), "-p", str(self.port),
             "-a", "127.0.0.1", "--workers", str(self.workers), "--log.level", "info"],
            env=dict(os.environ, PYTHONPATH=str(ROOT)), stderr=err,
        )  # fmt: skip
        err.close()
        await wait_port(self.port)
        deadline = time.monotonic() + 10
        while len(children(self.proc.pid)) < self.workers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the workers attached their bus links

    def kill9(self) -> None:
        """SIGKILL every worker, then the front: nothing gets to shut down."""
        assert self.proc is not None
        for pid in children(self.proc.pid).values():
            os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    async def publish(self, channel: str, data: Any, **extra: Any) -> dict[str, Any]:
        return await self.api("publish", {"channel": channel, "data": data, **extra})

    async def history(self, channel: str) -> dict[str, Any]:
        res = await self.api("history", {"channel": channel, "limit": -1})
        result: dict[str, Any] = res["result"]
        return result


@pytest.fixture
async def server(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Server]:
    srv = Server(tmp_path, workers=getattr(request, "param", 2))
    await srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class Recorder(SubscriptionEventHandler):
    def __init__(self) -> None:
        self.subscribed: list[SubscribedContext] = []
        self.offsets: list[int] = []

    async def on_subscribed(self, ctx: SubscribedContext) -> None:
        self.subscribed.append(ctx)

    async def on_publication(self, ctx: PublicationContext) -> None:
        self.offsets.append(ctx.pub.offset)


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def sdk_client(srv: Server, user: str) -> Client:
    return Client(srv.ws_url, token=encode_hmac_token({"sub": user}, SECRET), proxy=None,
                  min_reconnect_delay=0.05, max_reconnect_delay=0.3)  # fmt: skip


def channels_per_worker(workers: int) -> list[str]:
    shards = ShardMap(workers)
    return [next(f"p{i}" for i in range(100) if shards.owner(f"p{i}") == w) for w in range(workers)]


@pytest.mark.slow
async def test_kill9_keeps_epochs_offsets_history_and_sdk_clients_recover(
    server: Server,
) -> None:
    chans = channels_per_worker(2)
    client = sdk_client(server, "u1")
    recorders = {ch: Recorder() for ch in chans}
    subs = [client.new_subscription(ch, events=recorders[ch]) for ch in chans]
    await client.connect()
    for sub in subs:
        await sub.subscribe()
    for ch in chans:
        await server.publish(ch, {"n": 1})
        batch = [{"publish": {"channel": ch, "data": {"n": i}}} for i in (2, 3)]
        await server.api("batch", {"commands": batch})
    await until(lambda: all(len(r.offsets) == 3 for r in recorders.values()))
    idem = await server.publish(chans[0], {"n": "i"}, idempotency_key="once")
    before = {ch: await server.history(ch) for ch in chans}
    await client.disconnect()  # the SDK keeps its positions
    server.kill9()
    await server.start()
    after = {ch: await server.history(ch) for ch in chans}
    assert after == before
    again = await server.publish(chans[0], {"n": "i"}, idempotency_key="once")
    assert again["result"] == idem["result"]  # the repeat is recognised after the restart
    for ch in chans:  # what the client misses while it is away
        await server.publish(ch, {"n": 5})
    for r in recorders.values():
        r.subscribed.clear()
    await client.connect()
    await until(lambda: all(r.subscribed for r in recorders.values()))
    await until(lambda: all(len(r.offsets) >= 5 - (ch != chans[0]) for ch, r in recorders.items()))
    for ch, r in recorders.items():
        ctx = r.subscribed[0]
        assert ctx.was_recovering and ctx.recovered, ch
        top = before[ch]["offset"] + 1
        assert r.offsets == list(range(1, top + 1)), (ch, r.offsets)
        assert ctx.stream_position.epoch == before[ch]["epoch"]
    await client.disconnect()


@pytest.mark.slow
async def test_worker_death_keeps_its_epochs_and_its_clients_recover(server: Server) -> None:
    assert server.proc is not None
    workers = children(server.proc.pid)
    channel = channels_per_worker(2)[1]
    recorders = [Recorder(), Recorder()]
    clients = []
    for i, rec in enumerate(recorders):  # one SDK client per worker
        c = sdk_client(server, f"s{i}")
        sub = c.new_subscription(channel, events=rec)
        await c.connect()
        await sub.subscribe()
        clients.append(c)
    await until(lambda: all(r.subscribed for r in recorders))
    first = await server.publish(channel, 1)
    await until(lambda: all(r.offsets == [1] for r in recorders))
    for r in recorders:
        r.subscribed.clear()
    os.kill(workers[1], signal.SIGKILL)
    await until(lambda: children(server.proc.pid).get(1) not in (None, workers[1]))  # type: ignore[union-attr]
    await until(lambda: all(r.subscribed for r in recorders))
    assert all(r.subscribed for r in recorders)
    assert all(r.subscribed[-1].was_recovering and r.subscribed[-1].recovered for r in recorders)
    res = await server.publish(channel, 2)
    assert res["result"]["offset"] == 2 and res["result"]["epoch"] == first["result"]["epoch"]
    await until(lambda: all(r.offsets == [1, 2] for r in recorders))
    assert [r.offsets for r in recorders] == [[1, 2], [1, 2]]
    for c in clients:
        await c.disconnect()


@pytest.mark.slow
async def test_sigterm_loses_nothing_and_a_corrupt_tail_is_cut(server: Server) -> None:
    chans = channels_per_worker(2)
    for ch in chans:
        for i in range(5):
            await server.publish(ch, i)
    before = {ch: await server.history(ch) for ch in chans}
    server.stop()
    segments = sorted(server.history_dir.glob("worker-*/*.log"))
    assert len(segments) == 2
    with open(segments[0], "ab") as fh:  # garbage after the last record
        fh.write(b"\x40\x00\x00\x00\xde\xad\xbe\xef torn")
    size = segments[1].stat().st_size
    os.truncate(segments[1], size - 3)  # the last record (the state at close) torn
    await server.start()
    assert {ch: await server.history(ch) for ch in chans} == before
    assert server.stderr.count("cut at byte") == 2
    # raw client with its position, as an SDK reconnecting after the restart would
    ch = chans[1]
    await server.publish(ch, "new")
    c = await server.client("raw")
    reply = await c.call("subscribe", {"channel": ch, "recover": True,
                                       "epoch": before[ch]["epoch"], "offset": 5})  # fmt: skip
    sub = reply["subscribe"]
    assert sub["recovered"] is True and sub["epoch"] == before[ch]["epoch"]
    assert [p["offset"] for p in sub["publications"]] == [6]
    await c.close()


@pytest.mark.slow
@pytest.mark.parametrize("server", [1], indirect=True)
async def test_a_worker_compacts_its_log_and_a_restart_reads_the_snapshot(
    server: Server,
) -> None:
    from relay.engines.store import COMPACT_MIN_BYTES

    data = "x" * 1000
    batch = [{"publish": {"channel": f"c{i % 10}", "data": data}} for i in range(1000)]
    for _ in range(COMPACT_MIN_BYTES // 1_000_000 + 2):  # past the 16 MiB threshold
        await server.api("batch", {"commands": batch})
    folder = server.history_dir / "worker-0"
    await until(lambda: any(folder.glob("*.snap")) and len(list(folder.glob("*.log"))) == 1)
    snap = next(folder.glob("*.snap"))
    assert snap.stat().st_size < 2 * 1000 * 1100  # the 1,000 retained, not the 18,000 sent
    await server.publish("c0", "after")
    before = {f"c{i}": await server.history(f"c{i}") for i in range(10)}
    server.kill9()
    await server.start()
    assert {f"c{i}": await server.history(f"c{i}") for i in range(10)} == before
    assert before["c0"]["offset"] == 1801 and len(before["c0"]["publications"]) == 100


@pytest.mark.slow
async def test_another_worker_count_moves_each_channel_to_its_new_owner(server: Server) -> None:
    chans = [f"w{i}" for i in range(6)]
    for ch in chans:
        await server.publish(ch, ch)
    before = {ch: await server.history(ch) for ch in chans}
    server.stop()
    server.workers = 1
    await server.start()
    assert {ch: await server.history(ch) for ch in chans} == before
    assert "repartitioned from 2 to 1 workers: 6 channels" in server.stderr


@pytest.mark.slow
@pytest.mark.parametrize("server", [1], indirect=True)
async def test_full_disk_fails_publishes_with_100_logged_once_and_keeps_serving(
    server: Server,
) -> None:
    assert server.proc is not None
    worker = children(server.proc.pid)[0]
    await server.publish("full", "first")
    # more than prometheus_client's 1 MiB metric files, so only the history log can grow
    big = [{"publish": {"channel": "bulk", "data": "x" * 1200}} for _ in range(1000)]
    await server.api("batch", {"commands": big})
    segment = next(server.history_dir.glob("worker-0/*.log"))
    limit = segment.stat().st_size + 2048
    hard = resource.prlimit(worker, resource.RLIMIT_FSIZE)[1]
    resource.prlimit(worker, resource.RLIMIT_FSIZE, (limit, hard))
    errors = []
    for _ in range(6):
        res = await server.publish("full", "y" * 1000)
        errors.append(res.get("error", {}).get("code"))
    assert errors[-3:] == [100, 100, 100], errors
    assert segment.stat().st_size <= limit
    hist = await server.history("full")  # reads and other channels still work
    assert hist["publications"][0]["data"] == "first"
    assert "error" not in await server.publish("nohist:x", "no history, no disk")
    c = await server.client("reader")
    assert "subscribe" in await c.call("subscribe", {"channel": "full"})
    await c.close()
    assert server.stderr.count("history log write failed") == 1
    resource.prlimit(worker, resource.RLIMIT_FSIZE, (hard, hard))
    res = await server.publish("full", "after")
    assert res["result"]["offset"] == hist["offset"] + 1
    await until(lambda: "writable again" in server.stderr)
    assert "writable again" in server.stderr
