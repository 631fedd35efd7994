"""The scenario runner: the command line of ``python -m bench SCENARIO`` and one run of it.

``bench/__main__.py`` dispatches to it; ``bench/smoke.py`` drives it with tiny options.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from typing import Any

from bench.common import (
    API_KEY,
    SECRET,
    CaseMetrics,
    Servers,
    aggregate,
    markdown_table,
    plot,
    raise_nofile,
    write_results,
)

SCENARIOS = ["batch", "latency", "fanout", "connections", "memory"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="scenario", required=True)
    for name in SCENARIOS:
        sp = sub.add_parser(name)
        add_common(sp)
        importlib.import_module(f"bench.{name}").add_args(sp)
    sub.add_parser("micro", help="relay._fastpath vs relay._fastpath_py", add_help=False)
    sub.add_parser("redis", help="1 and 2 nodes on Redis (bench/redis_nodes.py)", add_help=False)
    sub.add_parser("redis-outage", help="Redis stopped for 10 s", add_help=False)
    sub.add_parser("smoke", help="every scenario, tiny, against a managed relay", add_help=False)
    return p


def add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target")
    g.add_argument("--url", default="ws://127.0.0.1:8000/connection/websocket")
    g.add_argument("--api", default="", help="http://host:port/api (default: from --url)")
    g.add_argument("--api-key", default=API_KEY)
    g.add_argument("--secret", default=SECRET, help="HMAC secret for HS256 connection tokens")
    g.add_argument("--name", default="server", help="target name in tables (URL mode)")
    g.add_argument("--server-pid", type=int, default=0, help="URL mode: root pid, for /proc")
    g.add_argument(
        "--server",
        choices=["relay", "centrifugo", "both"],
        default="",
        help="managed mode: start the server(s) on free ports",
    )
    g.add_argument("--workers", default="1", help="relay workers; a list runs each: 1,2")
    g = p.add_argument_group("run")
    g.add_argument("--repeats", type=int, default=3)
    g.add_argument("--drivers", type=int, default=2, help="driver processes")
    g.add_argument("--json", default="", help="also write the JSON result here")
    g.add_argument("--plot", default="", help="PNG bar chart (needs matplotlib)")
    g.add_argument("--label", default="", help="suffix of the results file name")
    g.add_argument("--results-dir", default="", help="default bench/results/")
    g.add_argument("--no-save", action="store_true", help="print only")


def run_scenario(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``args.scenario`` on every target, repeats interleaved (ABBA); print the table."""
    mod = importlib.import_module(f"bench.{args.scenario}")
    raise_nofile()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    runs: dict[str, list[CaseMetrics]] = {}
    with Servers(args) as targets:
        for rep in range(args.repeats):
            order = targets if rep % 2 == 0 else list(reversed(targets))
            for t in order:
                print(f"[{args.scenario}] repeat {rep + 1}/{args.repeats}: {t.name}", flush=True)
                res = asyncio.run(mod.run_once(t, args, rep))
                runs.setdefault(t.name, []).append(res)
    runs = {t.name: runs[t.name] for t in targets}
    medians = aggregate(runs)
    table = markdown_table(medians)
    print(table)
    if not args.no_save:
        md, js = write_results(args.scenario, args.label, args, runs, medians, table)
        print(f"results: {md} {js}")
    if args.plot:
        plot(args.plot, medians)
    return {"runs": runs, "medians": medians, "table": table}
