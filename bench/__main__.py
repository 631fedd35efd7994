"""``python -m bench SCENARIO [options]``; ``python -m bench compare SCENARIO`` = ``--server both``.

Scenarios: batch, latency, fanout, connections, memory, micro, redis, redis-outage,
persistence, delta, proxies, smoke.
"""

from __future__ import annotations

import sys

from bench.runner import build_parser, run_scenario


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "compare":
        argv = argv[1:] + ["--server", "both"]
    if argv and argv[0] == "micro":
        from bench import micro_fastpath

        return micro_fastpath.main(argv[1:])
    if argv and argv[0] == "redis":
        from bench import redis_nodes

        return redis_nodes.main(argv[1:])
    if argv and argv[0] == "persistence":
        from bench import persistence

        return persistence.main(argv[1:])
    if argv and argv[0] == "delta":
        from bench import delta

        return delta.main(argv[1:])
    if argv and argv[0] == "redis-outage":
        from bench import redis_outage

        return redis_outage.main(argv[1:])
    if argv and argv[0] == "proxies":
        from bench import proxies

        return proxies.main(argv[1:])
    if argv and argv[0] == "smoke":
        from bench import smoke

        return smoke.main(argv[1:])
    args = build_parser().parse_args(argv)
    args.workers = [int(w) for w in str(args.workers).split(",")]
    run_scenario(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
