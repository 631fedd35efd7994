"""Micro-benchmark: ``relay._fastpath`` (Cython) against ``relay._fastpath_py`` (pure twin).

Each row is the median over ``--repeats`` timeit runs, in ns per call. The codec rows
(``encode_reply`` of a publication push) use ``relay.protocol.json_codec`` /
``protobuf_codec`` and are listed once: they do not depend on the twin.
Run: ``python -m bench micro`` or ``python -m bench.micro_fastpath``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import struct
import sys
import timeit
from collections.abc import Callable
from types import ModuleType
from typing import Any

from bench.common import write_results

MASK = b"\x12\x34\x56\x78"


def masked_frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    else:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    body = bytes(b ^ MASK[i & 3] for i, b in enumerate(payload))
    return head + MASK + body


def push() -> dict[str, Any]:
    data = {"t": 1712345678901234567, "text": "hello, world", "n": 42}
    return {
        "push": {
            "channel": "news:sport",
            "pub": {"data": json.dumps(data).encode(), "offset": 12345},
        }
    }


def cases(mod: ModuleType) -> dict[str, Callable[[], object]]:
    small = b'{"t":1,"p":"' + b"x" * 60 + b'"}'
    big = b"y" * 4000
    frames = masked_frame(1, small) * 10 + masked_frame(2, big)
    msgs = [small] * 10
    joined = mod.join_delimited(msgs)
    parser_cls = mod.FrameParser
    return {
        "build_frame 72 B": lambda: mod.build_frame(1, small),
        "build_frame 4 KB": lambda: mod.build_frame(2, big),
        "FrameParser.feed 10x72 B + 4 KB": lambda: parser_cls(65536).feed(frames),
        "join_delimited 10x72 B": lambda: mod.join_delimited(msgs),
        "split_delimited 10x72 B": lambda: mod.split_delimited(joined),
    }


def codec_cases() -> dict[str, Callable[[], object]]:
    from relay.protocol import json_codec, protobuf_codec

    reply_pb = push()
    reply_json = push()
    return {
        "json encode_reply(pub push)": lambda: json_codec.encode_reply(reply_json),
        "protobuf encode_reply(pub push)": lambda: protobuf_codec.encode_reply(reply_pb),
    }


def time_ns(fn: Callable[[], object], repeats: int, min_time: float = 0.2) -> float:
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(number, int(number * min_time / 0.2))
    runs = timer.repeat(repeat=repeats, number=number)
    return statistics.median(runs) / number * 1e9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench micro")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", default="")
    p.add_argument("--label", default="")
    p.add_argument("--results-dir", default="")
    p.add_argument("--no-save", action="store_true")
    p.add_argument("--quick", action="store_true", help="tiny run (smoke)")
    args = p.parse_args(argv)
    cy = importlib.import_module("relay._fastpath")
    py = importlib.import_module("relay._fastpath_py")
    reps = 2 if args.quick else args.repeats
    medians: dict[str, dict[str, dict[str, float]]] = {"cython": {}, "python": {}}
    for name, mod in (("cython", cy), ("python", py)):
        for case, fn in cases(mod).items():
            ns = time_ns(fn, reps, 0.02 if args.quick else 0.2)
            medians[name][case] = {"ns_per_call": ns}
    for case, fn in codec_cases().items():
        medians["cython"][case] = {"ns_per_call": time_ns(fn, reps, 0.02 if args.quick else 0.2)}
    lines = ["| case | cython ns | python ns | speed-up |", "|---|---|---|---|"]
    for case, m in medians["cython"].items():
        cy_ns = m["ns_per_call"]
        py_ns = medians["python"].get(case, {}).get("ns_per_call")
        if py_ns is None:
            lines.append(f"| {case} | {cy_ns:,.0f} | (codec, same code) | - |")
        else:
            lines.append(f"| {case} | {cy_ns:,.0f} | {py_ns:,.0f} | {py_ns / cy_ns:.1f}x |")
    table = "\n".join(lines)
    print(table)
    if not args.no_save:
        args.repeats = reps
        args.json = args.json or ""
        runs = {k: [v] for k, v in medians.items()}
        md, js = write_results("micro_fastpath", args.label, args, runs, medians, table)
        print(f"results: {md} {js}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
