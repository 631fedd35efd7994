"""fanout: 1 channel x N subscribers and N channels x 1 subscriber, at saturation.

The publisher (this process) posts ``/api/batch`` rounds as fast as the server delivers,
keeping at most ``--window`` undelivered publications per subscriber (well under the 1 MiB
client queue, so nobody is disconnected as slow). The clock stops when the drivers have
seen every delivery. Each publication carries its publish time (monotonic ns, the same
clock in every process) so the drivers sample publish-to-receive latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from bench.common import CaseMetrics, Target, cpu_us_per, percentile, tree_cpu
from bench.drivers import DriverPool, DriverSpec, latencies_us, local_addrs, split_round_robin

TS_PLACEHOLDER = 7777777777777777777


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--subscribers", type=int, default=1000, help="N of 1xN and Nx1")
    p.add_argument("--deliveries", type=int, default=1_500_000, help="deliveries of 1xN")
    p.add_argument("--rounds", type=int, default=100, help="publishes per channel in Nx1")
    p.add_argument("--batch-size", type=int, default=20, help="publishes per round for 1xN")
    p.add_argument("--window", type=int, default=200, help="max undelivered pubs per sub")
    p.add_argument("--payload", type=int, default=64, help="approximate data size in bytes")
    p.add_argument("--cases", default="1xN,Nx1")


def batch_template(channels: list[str], payload: int) -> bytes:
    pad = "x" * max(0, payload - 30)
    cmds = [{"publish": {"channel": c, "data": {"t": TS_PLACEHOLDER, "p": pad}}} for c in channels]
    return json.dumps({"commands": cmds}, separators=(",", ":")).encode()


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> bytes:
    async with session.post(url, data=body) as resp:
        data = await resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status} {data[:200]!r}")
        return data


def session_for(target: Target) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        headers={"X-API-Key": target.api_key, "Content-Type": "application/json"},
        connector=aiohttp.TCPConnector(limit=4),
    )


async def run_case(target: Target, args: argparse.Namespace, case: str, rep: int) -> dict:
    n = args.subscribers
    tag = f"fan{rep}{int(time.time() * 1000) % 10**8}"
    if case == "1xN":
        channels = [f"{tag}-0"] * n
        round_channels = [f"{tag}-0"] * args.batch_size
    else:
        channels = [f"{tag}-{i}" for i in range(n)]
        round_channels = channels
    per_sub_per_round = args.batch_size if case == "1xN" else 1
    rounds = max(1, args.deliveries // (per_sub_per_round * n)) if case == "1xN" else args.rounds
    specs = [
        DriverSpec(target.ws_url, target.secret, chs, f"{tag}-d{i}", local_addrs(target.ws_url))
        for i, chs in enumerate(split_round_robin(channels, args.drivers))
    ]
    pool = DriverPool(specs)
    try:
        conn = await pool.call("connect")
        if sum(r["errors"] for r in conn):
            raise RuntimeError(f"subscribe failed: {[r['first_error'] for r in conn]}")
        template = batch_template(round_channels, args.payload)
        marker = str(TS_PLACEHOLDER).encode()
        url = target.api_url + "/batch"
        async with session_for(target) as session:
            await post(session, url, b'{"commands":[]}')  # warm the keep-alive connection
            pool.set_target(rounds * per_sub_per_round)
            await pool.call("stats")  # drop setup samples
            cpu0 = (tree_cpu(target.pid), pool.cpu(), time.process_time())
            t0 = time.monotonic_ns()
            sent = 0
            for _ in range(rounds):
                while sent - pool.delivered() / n > args.window:
                    await asyncio.sleep(0.0002)
                await post(
                    session, url, template.replace(marker, str(time.monotonic_ns()).encode())
                )
                sent += per_sub_per_round
            done = await pool.wait_done(timeout=60)
            t1 = done or time.monotonic_ns()
            cpu1 = (tree_cpu(target.pid), pool.cpu(), time.process_time())
        stats = await pool.call("stats")
    finally:
        await pool.close()
    wall = (t1 - t0) / 1e9
    delivered = sum(s["count"] for s in stats)
    lat = latencies_us(stats)
    expected = rounds * per_sub_per_round * n
    return {
        "deliveries_per_s": delivered / wall,
        "publishes_per_s": rounds * len(round_channels) / wall,
        "lat_p50_ms": percentile(lat, 50) / 1000,
        "lat_p99_ms": percentile(lat, 99) / 1000,
        "delivered_pct": 100.0 * delivered / expected,
        "closed_conns": float(sum(s["closed"] for s in stats)),
        "wall_s": wall,
        "server_cpu_pct": 100 * (cpu1[0] - cpu0[0]) / wall,
        "server_cpu_us_per_delivery": cpu_us_per(cpu1[0] - cpu0[0], delivered),
        "server_cpu_us_per_publish": cpu_us_per(cpu1[0] - cpu0[0], rounds * len(round_channels)),
        "drivers_cpu_pct": 100 * (cpu1[1] - cpu0[1]) / wall,
        "publisher_cpu_pct": 100 * (cpu1[2] - cpu0[2]) / wall,
    }


async def run_once(target: Target, args: argparse.Namespace, rep: int) -> CaseMetrics:
    out: CaseMetrics = {}
    n = args.subscribers
    for case in args.cases.split(","):
        name = f"1x{n}" if case == "1xN" else f"{n}x1"
        out[name] = await run_case(target, args, case, rep)
    return out
