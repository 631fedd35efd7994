"""batch: ``POST /api/batch`` of 1,000 publishes to 100 channels of a history namespace.

Two cases: no subscribers, and 10 WebSocket subscribers per channel (1,000), where the
time until the last of the batch's 10,000 deliveries is measured too. Batches go one at
a time over one keep-alive aiohttp session; each is client-observed (send to full body).
"""

from __future__ import annotations

import argparse
import time

from bench.common import CaseMetrics, Target, cpu_us_per, percentile, tree_cpu
from bench.drivers import DriverPool, DriverSpec, local_addrs, split_round_robin
from bench.fanout import TS_PLACEHOLDER, batch_template, post, session_for


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--publishes", type=int, default=1000, help="publishes per batch")
    p.add_argument("--channels", type=int, default=100)
    p.add_argument("--subs-per-channel", type=int, default=10)
    p.add_argument("--iterations", type=int, default=100, help="batches per case")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--namespace", default="hist")


async def run_case(target: Target, args: argparse.Namespace, subs: bool, rep: int) -> dict:
    tag = f"{args.namespace}:b{rep}x{int(time.time() * 1000) % 10**8}"
    channels = [f"{tag}-{i}" for i in range(args.channels)]
    per_batch = [channels[i % len(channels)] for i in range(args.publishes)]
    per_sub = args.publishes // args.channels  # each subscriber's share of one batch
    pool = None
    if subs:
        conns = [c for c in channels for _ in range(args.subs_per_channel)]
        specs = [
            DriverSpec(target.ws_url, target.secret, chs, f"{tag}-d{i}", local_addrs(target.ws_url))
            for i, chs in enumerate(split_round_robin(conns, args.drivers))
        ]
        pool = DriverPool(specs)
    try:
        if pool is not None:
            conn = await pool.call("connect")
            if sum(r["errors"] for r in conn):
                raise RuntimeError(f"subscribe failed: {[r['first_error'] for r in conn]}")
        template = batch_template(per_batch, 30)
        marker = str(TS_PLACEHOLDER).encode()
        url = target.api_url + "/batch"
        rtt: list[float] = []
        last: list[float] = []
        async with session_for(target) as session:
            total = args.warmup + args.iterations
            for i in range(total):
                if i == args.warmup:
                    cpu0 = (tree_cpu(target.pid), pool.cpu() if pool else 0.0)
                    t_start = time.monotonic_ns()
                if pool is not None:
                    pool.set_target(per_sub * (i + 1))
                t0 = time.monotonic_ns()
                await post(session, url, template.replace(marker, str(t0).encode()))
                t1 = time.monotonic_ns()
                done = await pool.wait_done(30) if pool is not None else t1
                if done is None:
                    raise RuntimeError(f"batch {i}: deliveries missing after 30 s")
                if i >= args.warmup:
                    rtt.append((t1 - t0) / 1e6)
                    last.append((done - t0) / 1e6)
            wall = (time.monotonic_ns() - t_start) / 1e9
            cpu1 = (tree_cpu(target.pid), pool.cpu() if pool else 0.0)
    finally:
        if pool is not None:
            await pool.close()
    out = {
        "p50_ms": percentile(rtt, 50),
        "p99_ms": percentile(rtt, 99),
        "publishes_per_s": args.publishes * len(rtt) / (sum(rtt) / 1000),
        "server_cpu_pct": 100 * (cpu1[0] - cpu0[0]) / wall,
        "server_cpu_us_per_publish": cpu_us_per(cpu1[0] - cpu0[0], args.publishes * len(rtt)),
    }
    if pool is not None:
        deliveries = per_sub * len(conns) * len(last)
        out["server_cpu_us_per_delivery"] = cpu_us_per(cpu1[0] - cpu0[0], deliveries)
        out["last_delivery_p50_ms"] = percentile(last, 50)
        out["last_delivery_p99_ms"] = percentile(last, 99)
        out["deliveries_per_s"] = per_sub * len(conns) * len(last) / (sum(last) / 1000)
        out["drivers_cpu_pct"] = 100 * (cpu1[1] - cpu0[1]) / wall
    return out


async def run_once(target: Target, args: argparse.Namespace, rep: int) -> CaseMetrics:
    n = args.channels * args.subs_per_channel
    return {
        "0 subs": await run_case(target, args, False, rep),
        f"{n} subs": await run_case(target, args, True, rep),
    }
