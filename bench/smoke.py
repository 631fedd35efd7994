"""Smoke run: every scenario at a tiny size against one managed relay (``--workers 1``).

``python -m bench smoke`` finishes in well under 30 s; CI runs it (tests/bench) so the
scripts do not rot. It checks that each scenario produced its numbers, not their values.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from bench.common import API_KEY, SECRET, start_server, write_config

TINY: dict[str, list[str]] = {
    "memory": ["--settle", "0.2"],
    "fanout": [
        "--subscribers",
        "20",
        "--deliveries",
        "2000",
        "--rounds",
        "5",
        "--batch-size",
        "5",
        "--drivers",
        "1",
    ],
    "batch": [
        "--publishes",
        "50",
        "--channels",
        "5",
        "--subs-per-channel",
        "2",
        "--iterations",
        "3",
        "--warmup",
        "1",
        "--drivers",
        "1",
    ],
    "latency": ["--clients", "3", "--duration", "1", "--rate", "20"],
    "connections": ["--connections", "20", "--drivers", "1", "--settle", "0.2"],
}

EXPECT: dict[str, tuple[str, str, float]] = {
    "fanout": ("1x20", "delivered_pct", 100.0),
    "batch": ("10 subs", "publishes_per_s", 0.0),
    "latency": ("publish rtt", "count", 0.0),
    "connections": ("20 idle", "connected", 20.0),
    "memory": ("total", "pss_mib", 0.0),
}


def main(argv: list[str] | None = None) -> int:
    from bench.micro_fastpath import main as micro
    from bench.runner import build_parser, run_scenario

    p = argparse.ArgumentParser(prog="python -m bench smoke")
    p.add_argument("--only", default="", help="comma-separated scenarios")
    args = p.parse_args(argv)
    only = [s for s in args.only.split(",") if s] or list(TINY)
    work = tempfile.mkdtemp(prefix="relay-bench-smoke-")
    cfg = write_config(work)
    t_start = time.monotonic()
    server = start_server("relay", 1, cfg, work)
    failures = []
    try:
        for name in only:
            argv2 = [
                name,
                "--url",
                server.ws_url,
                "--api",
                server.api_url,
                "--api-key",
                API_KEY,
                "--secret",
                SECRET,
                "--name",
                "relay-w1",
                "--server-pid",
                str(server.pid),
                "--repeats",
                "1",
                "--no-save",
                *TINY[name],
            ]
            ns = build_parser().parse_args(argv2)
            ns.workers = [1]
            res = run_scenario(ns)
            case, metric, minimum = EXPECT[name]
            value = res["medians"]["relay-w1"].get(case, {}).get(metric)
            if value is None or value < minimum or (minimum == 0.0 and value <= 0):
                failures.append(f"{name}: {case}/{metric} = {value}")
        if not args.only:
            micro(["--quick", "--no-save"])
    finally:
        server.stop()
    print(f"smoke: {len(only)} scenarios in {time.monotonic() - t_start:.1f} s")
    for f in failures:
        print("FAILED", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
