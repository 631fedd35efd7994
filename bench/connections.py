"""connections: N idle token-authenticated connections.

Measures the connect rate (every connection sends a connect command with its own HS256
token and waits for the reply), connect latency, the server's memory (RSS and PSS summed
over its process tree) before and after, and so the memory per idle connection.
Client source addresses rotate over 127.0.0.2..9 so the ephemeral ports do not run out.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from bench.common import CaseMetrics, Target, cpu_us_per, percentile, tree_cpu, tree_mem
from bench.drivers import DriverPool, DriverSpec, local_addrs, split_round_robin


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=100, help="connects in flight per driver")
    p.add_argument("--settle", type=float, default=3.0, help="idle seconds before reading memory")


async def run_once(target: Target, args: argparse.Namespace, rep: int) -> CaseMetrics:
    tag = f"conn{rep}x{int(time.time() * 1000) % 10**8}"
    conns: list[str | None] = [None] * args.connections
    specs = [
        DriverSpec(
            target.ws_url,
            target.secret,
            chs,
            f"{tag}-d{i}",
            local_addrs(target.ws_url),
            concurrency=args.concurrency,
        )
        for i, chs in enumerate(split_round_robin(conns, args.drivers))
    ]
    pool = DriverPool(specs)
    try:
        await asyncio.sleep(1.0)  # let the drivers start before the clock does
        mem0 = tree_mem(target.pid)
        cpu0 = (tree_cpu(target.pid), pool.cpu())
        replies = await pool.call("connect", timeout=600)
        cpu1 = (tree_cpu(target.pid), pool.cpu())
        await asyncio.sleep(args.settle)
        mem1 = tree_mem(target.pid)
        stats = await pool.call("stats")
    finally:
        await pool.close()
    ok = sum(r["ok"] for r in replies)
    wall = (max(r["t1"] for r in replies) - min(r["t0"] for r in replies)) / 1e9
    lat = [ns / 1e6 for r in replies for ns in r["connect_ns"]]
    out = {
        "connected": float(ok),
        "failed": float(sum(r["errors"] for r in replies)),
        "closed_after": float(sum(s["closed"] for s in stats)),
        "connects_per_s": ok / wall,
        "connect_p50_ms": percentile(lat, 50),
        "connect_p99_ms": percentile(lat, 99),
        "server_cpu_pct": 100 * (cpu1[0] - cpu0[0]) / wall,
        "server_cpu_us_per_connect": cpu_us_per(cpu1[0] - cpu0[0], ok),
        "drivers_cpu_pct": 100 * (cpu1[1] - cpu0[1]) / wall,
    }
    if target.pid:
        out |= {
            "idle_rss_mib": mem0["rss_mib"],
            "idle_pss_mib": mem0["pss_mib"],
            "loaded_rss_mib": mem1["rss_mib"],
            "loaded_pss_mib": mem1["pss_mib"],
            "pss_kib_per_conn": (mem1["pss_mib"] - mem0["pss_mib"]) * 1024 / max(ok, 1),
            "rss_kib_per_conn": (mem1["rss_mib"] - mem0["rss_mib"]) * 1024 / max(ok, 1),
        }
    if replies and any(r["first_error"] for r in replies):
        print("connect errors:", [r["first_error"] for r in replies if r["first_error"]])
    return {f"{args.connections} idle": out}
