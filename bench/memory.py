"""memory: idle memory of every server process (RSS and PSS from smaps_rollup), no clients.

For relay the root process is the front and its children are the workers; the rows are
front, worker1..N (in pid order) and the total over the process tree.
"""

from __future__ import annotations

import argparse
import asyncio

from bench.common import CaseMetrics, Target, proc_cmdline, proc_mem, proc_tree


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--settle", type=float, default=3.0, help="seconds idle before reading")


def roles(target: Target) -> list[tuple[str, int]]:
    """(role, pid) of each process of the server's tree."""
    assert target.pid
    tree = proc_tree(target.pid)
    root = "front" if target.name.startswith("relay") else "process"
    out = [(root, target.pid)]
    children = sorted(p for p in tree if p != target.pid)
    for i, pid in enumerate(children, 1):
        kind = (
            "worker" if "relay" in proc_cmdline(pid) or "python" in proc_cmdline(pid) else "child"
        )
        out.append((f"{kind}{i}", pid))
    return out


async def run_once(target: Target, args: argparse.Namespace, rep: int) -> CaseMetrics:
    if not target.pid:
        raise SystemExit("memory needs a managed server (--server) or --server-pid")
    await asyncio.sleep(args.settle)
    out: CaseMetrics = {}
    total = {"rss_mib": 0.0, "pss_mib": 0.0}
    for role, pid in roles(target):
        m = proc_mem(pid)
        out[role] = m
        total["rss_mib"] += m["rss_mib"]
        total["pss_mib"] += m["pss_mib"]
    out["total"] = total
    return out
