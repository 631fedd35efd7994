"""redis: API publish throughput of 1-node and 2-node clusters on one Redis (and, with
``--topology single,cluster``, on a three-master Redis Cluster), relay vs Centrifugo.

Four setups run side by side, each on its own ``redis-server`` (so nothing crosses between
them): relay with 1 node and with 2 nodes (each ``--workers 1``), Centrifugo with 1 and 2
nodes. Each repeat visits them interleaved (ABBA). Per setup, 100 WebSocket subscribers
(10 per channel of 10 ``hist:`` channels, history 100) are spread over the nodes, so with 2
nodes every channel has subscribers on both and every publication crosses Redis.

``--topology``: ``single`` (one ``redis-server``, the default) and/or ``cluster`` (three
``redis-server --cluster-enabled`` masters joined by ``redis-cli --cluster create``; both
servers use ``redis+cluster://`` with Centrifugo's hash-tagged keys). Redis CPU is the sum
over the Redis processes.

Cases:

* ``publish xN``: N concurrent keep-alive HTTP sessions (``--sessions``, 8) each loop over
  single ``POST /api/publish`` calls for ``--duration`` seconds; request k of session s goes
  to node (s + k) mod nodes.
* ``batch 1000``: ``--batch-concurrency`` (2) publishers each post ``/api/batch`` of 1,000
  publishes, alternating nodes, ``--batches`` in all.

The publishers keep at most ``--window`` undelivered publications per subscriber (flow
control, so the clients' own lag never gets them dropped as slow). After publishing stops,
the drivers must see every delivery within 20 s: ``delivered_pct`` = delivered / (publishes
× 10). ``publishes_per_s`` counts successful publishes over the publishing window;
``deliveries_per_s`` = deliveries over the time until the last one arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from typing import Any

import aiohttp

from bench.common import (
    API_KEY,
    REPO,
    SECRET,
    CaseMetrics,
    Target,
    aggregate,
    cpu_us_per,
    make_config,
    markdown_table,
    percentile,
    raise_nofile,
    start_server,
    tree_cpu,
    write_results,
)
from bench.drivers import DriverPool, DriverSpec, latencies_us, local_addrs

sys.path.insert(0, str(REPO / "tests"))
from redis_cluster import RedisCluster  # noqa: E402
from redis_server import RedisServer  # noqa: E402

TS = 7777777777777777777


def redis_config(redis_url: str) -> dict[str, Any]:
    cfg = make_config(SECRET, API_KEY)
    cfg["engine"] = {"type": "redis", "redis": {"address": [redis_url]}}
    cfg["channel"]["namespaces"].append(
        {
            "name": "rec",
            "history_size": 1000,
            "history_ttl": "600s",
            "force_recovery": True,
            "allow_subscribe_for_client": True,
            "allow_history_for_client": True,
        }
    )
    return cfg


class Cluster:
    """``nodes`` servers of one ``kind`` on one (own) redis-server or Redis Cluster."""

    def __init__(
        self, kind: str, nodes: int, redis: RedisServer | None = None, topology: str = "single"
    ) -> None:
        self.kind, self.n, self.topology = kind, nodes, topology
        self.name = f"{kind}-{nodes}n" + ("-cluster" if topology == "cluster" else "")
        self.redis = redis or RedisServer()
        self.own_redis = redis is None
        self.redis_cluster = RedisCluster() if topology == "cluster" else None
        self.targets: list[Target] = []
        self.workdir = tempfile.mkdtemp(prefix=f"relay-bench-{self.name}-")

    @property
    def redis_url(self) -> str:
        return self.redis_cluster.url if self.redis_cluster is not None else self.redis.url

    def start(self) -> Cluster:
        if self.redis_cluster is not None:
            self.redis_cluster.start()
        elif not self.redis.running:
            self.redis.start()
        cfg = os.path.join(self.workdir, "config.json")
        with open(cfg, "w") as f:
            json.dump(redis_config(self.redis_url), f, indent=2)
        for i in range(self.n):
            d = os.path.join(self.workdir, f"node{i}")
            os.makedirs(d, exist_ok=True)
            self.targets.append(start_server(self.kind, 1, cfg, d))
        return self

    def redis_cpu(self) -> float:
        """CPU seconds of the Redis process(es)."""
        servers = self.redis_cluster.nodes if self.redis_cluster is not None else [self.redis]
        return sum(tree_cpu(s._proc.pid) for s in servers if s._proc is not None)

    def cpu(self) -> float:
        return sum(tree_cpu(t.pid) for t in self.targets)

    def stop(self) -> None:
        for t in self.targets:
            t.stop()
        if self.redis_cluster is not None:
            self.redis_cluster.close()
        if self.own_redis:
            self.redis.close()


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sessions", type=int, default=8, help="concurrent publish sessions")
    p.add_argument("--duration", type=float, default=3.0, help="seconds of single publishes")
    p.add_argument("--batches", type=int, default=20, help="batches of 1,000 per repeat")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--batch-concurrency", type=int, default=2)
    p.add_argument("--channels", type=int, default=10)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--window", type=int, default=300, help="max undelivered pubs per sub")
    p.add_argument("--drivers", type=int, default=2)
    p.add_argument("--server", default="both", choices=["relay", "centrifugo", "both"])
    p.add_argument("--nodes", default="1,2")
    p.add_argument("--topology", default="single", help="single and/or cluster (comma list)")
    p.add_argument("--json", default="")
    p.add_argument("--label", default="")
    p.add_argument("--results-dir", default="")
    p.add_argument("--no-save", action="store_true")


def _session(n_nodes: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        connector=aiohttp.TCPConnector(limit=max(2, n_nodes)),
    )


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[bool, bytes]:
    async with session.post(url, data=body) as resp:
        data = await resp.read()
        return resp.status == 200 and b'"error"' not in data, data


async def run_case(cl: Cluster, args: argparse.Namespace, case: str, rep: int) -> dict:
    tag = f"hist:r{rep}{case[0]}{int(time.time() * 1000) % 10**8}"
    channels = [f"{tag}-{i}" for i in range(args.channels)]
    per_channel = args.subscribers // args.channels
    conns = [c for c in channels for _ in range(per_channel)]
    # driver i connects to node i % n; its share alternates over channels -> every channel
    # has subscribers on every node
    k = max(args.drivers, cl.n)
    specs = [
        DriverSpec(
            cl.targets[i % cl.n].ws_url,
            SECRET,
            conns[i::k],
            f"{tag}-d{i}",
            local_addrs(cl.targets[i % cl.n].ws_url),
        )
        for i in range(k)
    ]
    pool = DriverPool(specs)
    nsubs = len(conns)
    sent = 0  # publishes accepted
    lat_ms: list[float] = []
    errors = 0
    try:
        conn = await pool.call("connect")
        if sum(r["errors"] for r in conn):
            raise RuntimeError(f"subscribe failed: {[r['first_error'] for r in conn]}")
        await asyncio.sleep(0.3)
        await pool.call("stats")
        pad = "x" * 34

        def lagging() -> bool:
            return sent / len(channels) - pool.delivered() / nsubs > args.window

        cpu0 = (cl.cpu(), cl.redis_cpu(), pool.cpu())
        t0 = time.monotonic_ns()
        if case == "publish":
            stop_at = time.monotonic() + args.duration

            async def worker(s: int) -> None:
                nonlocal sent, errors
                async with _session(cl.n) as session:
                    kk = 0
                    while time.monotonic() < stop_at:
                        while lagging():
                            await asyncio.sleep(0.0005)
                        ch = channels[(s * 7 + kk) % len(channels)]
                        url = cl.targets[(s + kk) % cl.n].api_url + "/publish"
                        kk += 1
                        body = json.dumps(
                            {"channel": ch, "data": {"t": time.monotonic_ns(), "p": pad}},
                            separators=(",", ":"),
                        ).encode()
                        a = time.monotonic_ns()
                        ok, _ = await _post(session, url, body)
                        lat_ms.append((time.monotonic_ns() - a) / 1e6)
                        if ok:
                            sent += 1
                        else:
                            errors += 1

            await asyncio.gather(*(worker(s) for s in range(args.sessions)))
        else:
            per = [channels[i % len(channels)] for i in range(args.batch_size)]
            template = json.dumps(
                {
                    "commands": [
                        {"publish": {"channel": c, "data": {"t": TS, "p": pad}}} for c in per
                    ]
                },
                separators=(",", ":"),
            ).encode()
            marker = str(TS).encode()
            todo = list(range(args.batches))

            async def bworker(s: int) -> None:
                nonlocal sent, errors
                async with _session(cl.n) as session:
                    kk = 0
                    while todo:
                        todo.pop()
                        while lagging():
                            await asyncio.sleep(0.0005)
                        url = cl.targets[(s + kk) % cl.n].api_url + "/batch"
                        kk += 1
                        a = time.monotonic_ns()
                        body = template.replace(marker, str(a).encode())
                        ok, data = await _post(session, url, body)
                        lat_ms.append((time.monotonic_ns() - a) / 1e6)
                        bad = data.count(b'"error"')
                        sent += args.batch_size - bad
                        errors += bad

            await asyncio.gather(*(bworker(s) for s in range(args.batch_concurrency)))
        t_pub = time.monotonic_ns()
        expected = sent * per_channel
        deadline = time.monotonic() + 20
        last_n, last_t = -1, t_pub
        while time.monotonic() < deadline:
            d = pool.delivered()
            if d != last_n:
                last_n, last_t = d, time.monotonic_ns()
            if d >= expected:
                break
            await asyncio.sleep(0.001)
        cpu1 = (cl.cpu(), cl.redis_cpu(), pool.cpu())
        t_end = time.monotonic_ns()
        stats = await pool.call("stats")
    finally:
        await pool.close()
    pub_wall = (t_pub - t0) / 1e9
    wall = (t_end - t0) / 1e9
    delivered = sum(s["count"] for s in stats)
    dl = latencies_us(stats)
    return {
        "publishes_per_s": sent / pub_wall,
        "req_p50_ms": percentile(lat_ms, 50),
        "req_p99_ms": percentile(lat_ms, 99),
        "api_errors": float(errors),
        "deliveries_per_s": delivered / max(1e-9, (last_t - t0) / 1e9),
        "delivered_pct": 100.0 * delivered / max(1, expected),
        "deliver_p50_ms": percentile(dl, 50) / 1000,
        "deliver_p99_ms": percentile(dl, 99) / 1000,
        "closed_conns": float(sum(s["closed"] for s in stats)),
        "server_cpu_pct": 100 * (cpu1[0] - cpu0[0]) / wall,
        "server_cpu_us_per_publish": cpu_us_per(cpu1[0] - cpu0[0], sent),
        "server_cpu_us_per_delivery": cpu_us_per(cpu1[0] - cpu0[0], delivered),
        "redis_cpu_pct": 100 * (cpu1[1] - cpu0[1]) / wall,
        "drivers_cpu_pct": 100 * (cpu1[2] - cpu0[2]) / wall,
    }


async def run_once(cl: Cluster, args: argparse.Namespace, rep: int) -> CaseMetrics:
    nn = f"{cl.n} node" + ("s" if cl.n > 1 else "")
    if cl.topology == "cluster":
        nn += ", cluster"
    return {
        f"{nn}: publish x{args.sessions}": await run_case(cl, args, "publish", rep),
        f"{nn}: batch {args.batch_size}": await run_case(cl, args, "batch", rep),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench redis", description=__doc__)
    add_args(p)
    args = p.parse_args(argv)
    raise_nofile()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    kinds = ["relay", "centrifugo"] if args.server == "both" else [args.server]
    nodes = [int(x) for x in args.nodes.split(",")]
    clusters: list[Cluster] = []
    try:
        for topology in args.topology.split(","):
            for n in nodes:
                for kind in kinds:
                    clusters.append(Cluster(kind, n, topology=topology).start())
        # runs[kind][rep] = merged case metrics of every node count
        runs: dict[str, list[CaseMetrics]] = {k: [{} for _ in range(args.repeats)] for k in kinds}
        for rep in range(args.repeats):
            order = clusters if rep % 2 == 0 else list(reversed(clusters))
            for cl in order:
                print(f"[redis] repeat {rep + 1}/{args.repeats}: {cl.name}", flush=True)
                runs[cl.kind][rep].update(asyncio.run(run_once(cl, args, rep)))
    finally:
        for cl in clusters:
            cl.stop()
    medians = aggregate(runs)
    # order rows: 1 node cases, then 2 nodes
    table = markdown_table(medians)
    print(table)
    if not args.no_save:
        md, js = write_results("redis", args.label, args, runs, medians, table)
        print(f"results: {md} {js}")
    return 0
