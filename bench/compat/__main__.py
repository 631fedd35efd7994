"""``python -m bench.compat``: play every scenario against relay and Centrifugo, diff them."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import fnmatch
import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import aiohttp

from bench.compat.harness import Target, normalize
from bench.compat.scenarios import SCENARIOS
from bench.compat.servers import Server, default_centrifugo_bin, from_urls, start_servers

REPORT = Path(__file__).with_name("REPORT.md")


async def run_one(server: Server, name: str, http: aiohttp.ClientSession) -> list[str]:
    t = Target(server, http)
    try:
        await asyncio.wait_for(SCENARIOS[name](t), 30)
    except Exception as exc:  # a scenario crash is itself a recorded outcome
        t.rec.add(f"!! scenario error: {type(exc).__name__}: {exc}")
        if os.environ.get("COMPAT_DEBUG"):
            traceback.print_exc()
    try:
        await asyncio.wait_for(t.finish(), 10)
    except Exception as exc:
        t.rec.add(f"!! finish error: {type(exc).__name__}: {exc}")
    return t.rec.lines


async def run_all(server: Server, names: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for name in names:
            out[name] = await run_one(server, name, http)
    return out


def render(
    names: list[str],
    relay: dict[str, list[str]],
    cent: dict[str, list[str]],
    header: str,
    strip_pub_epoch: bool = True,
    frames: bool = False,
) -> tuple[str, int]:
    same: list[str] = []
    diffs: list[str] = []
    for name in names:
        r = normalize(relay[name], strip_pub_epoch)
        c = normalize(cent[name], strip_pub_epoch)
        if not frames:  # how replies are packed into frames is timing, not protocol
            r = [x for x in r if "(frame carrying" not in x]
            c = [x for x in c if "(frame carrying" not in x]
        if r == c:
            same.append(name)
            continue
        body = "\n".join(difflib.unified_diff(c, r, "centrifugo", "relay", n=3, lineterm=""))
        diffs.append(f"### DIFF `{name}`\n\n```diff\n{body}\n```\n")
    lines = [
        "# relay vs Centrifugo wire-compatibility report",
        "",
        header,
        "",
        f"**{len(same)} SAME, {len(diffs)} DIFF** out of {len(names)} scenarios.",
        "",
        "Diff lines: `-` is Centrifugo, `+` is relay. Labels: `A`/`B` WebSocket clients, "
        "`H` HTTP; `>>` sent, `<<` received. Client ids, epochs, node uid/name, versions, "
        "uptime and ttl (rounded to 10 s) are normalized; node `num_*` counts become "
        "`<count>` (Centrifugo serves cached ones)."
        + (
            " `Publication.epoch` is dropped (protocol field added after v6.6.2; "
            "`--keep-pub-epoch` to compare it)."
            if strip_pub_epoch
            else ""
        ),
        "",
        "## Differences",
        "",
        *diffs,
        "## SAME",
        "",
        *[f"- `{n}`" for n in same],
        "",
    ]
    return "\n".join(lines), len(diffs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compat", description=__doc__)
    p.add_argument("--centrifugo-bin", default=default_centrifugo_bin())
    p.add_argument("--relay-url", help="ws://h:p/connection/websocket,http://h:p (no spawn)")
    p.add_argument("--centrifugo-url", help="same, for an already running Centrifugo")
    p.add_argument("-k", "--only", action="append", help="fnmatch pattern on scenario names")
    p.add_argument("--report", default=str(REPORT), help="markdown output path ('' = none)")
    p.add_argument("--list", action="store_true", help="list scenarios and exit")
    p.add_argument(
        "--keep-pub-epoch",
        action="store_true",
        help="compare Publication.epoch too (only Centrifugo >= 6.9 / protocol 0.19 sends it)",
    )
    p.add_argument(
        "--frames", action="store_true", help="also compare how messages are packed into frames"
    )
    p.add_argument("--raw", action="store_true", help="also print both raw recordings")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*HMAC key.*")

    names = list(SCENARIOS)
    if args.only:
        names = [n for n in names if any(fnmatch.fnmatch(n, pat) for pat in args.only)]
    if args.list:
        print("\n".join(names))
        return 0

    spawned: list[Server] = []
    if args.relay_url and args.centrifugo_url:
        relay = from_urls("relay", args.relay_url)
        cent = from_urls("centrifugo", args.centrifugo_url)
        header = f"Against running servers: relay {relay.http_url}, centrifugo {cent.http_url}."
    else:
        if not os.path.exists(args.centrifugo_bin):
            print(f"centrifugo binary not found: {args.centrifugo_bin}", file=sys.stderr)
            return 2
        relay, cent, cfg = start_servers(args.centrifugo_bin)
        spawned = [relay, cent]
        header = (
            f"Both servers started from one config (`{cfg}`); Centrifugo binary "
            f"`{args.centrifugo_bin}`. Logs: {relay.log_path}, {cent.log_path}."
        )
    started = time.monotonic()
    try:

        async def both() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
            return await asyncio.gather(run_all(relay, names), run_all(cent, names))

        rrec, crec = asyncio.run(both())
    finally:
        for srv in spawned:
            srv.stop()
    header += f" Run took {time.monotonic() - started:.1f}s."
    text, ndiff = render(names, rrec, crec, header, not args.keep_pub_epoch, args.frames)
    if args.raw:
        for n in names:
            print(f"==== {n}\n-- centrifugo\n" + "\n".join(crec[n]))
            print("-- relay\n" + "\n".join(rrec[n]))
    print(text)
    if args.report:
        Path(args.report).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
