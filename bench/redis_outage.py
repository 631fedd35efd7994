"""redis-outage: a 2-node cluster on Redis while redis-server is stopped for 10 s.

50 WebSocket clients (raw JSON protocol, in a separate process) connect with a token to the
two nodes alternately and subscribe to one ``rec:`` channel (``force_recovery``, history
1000). A publisher posts ``/api/publish`` at ``--rate`` (200/s) to the nodes alternately,
each call its own task with a 5 s client timeout (so a hanging call shows as such and does
not slow the schedule). At ``--before`` s redis-server is stopped (SIGTERM, no persistence:
it comes back empty, like a Redis that lost its data, unless ``--persist``), ``--outage`` s
later it is started again on the same port.

Clients behave like the SDKs: on an ``unsubscribe`` push with code >= 2500, or a subscribe
error, they send a new ``subscribe`` with ``recover: true, epoch, offset`` (the last seen),
retrying every 0.5 s on error; a closed connection reconnects after 1 s and resubscribes the
same way. Per second the timeline shows API successes/errors and max latency, open
connections, 2500 pushes, successful (re)subscribes and their ``recovered`` flag.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import time
from multiprocessing.connection import Connection
from typing import Any

import aiohttp

from bench.common import API_KEY, SECRET, make_token, raise_nofile, write_results
from bench.redis_nodes import Cluster
from bench.wsclient import WSClient, open_ws

CHANNEL = "rec:outage"


# ---- clients (own process) ------------------------------------------------------------------


class Client:
    def __init__(self, idx: int, url: str, ev: list[tuple[float, str, int, Any]]) -> None:
        self.idx, self.url, self.ev = idx, url, ev
        self.ws: WSClient | None = None
        self.epoch = ""
        self.offset = 0
        self.subscribed = False
        self.next_id = 1
        self.pending: dict[int, str] = {}
        self.pubs = 0
        self.gaps = 0
        self.stopping = False

    def log(self, kind: str, extra: Any = None) -> None:
        self.ev.append((time.monotonic(), kind, self.idx, extra))

    def send(self, kind: str, body: dict[str, Any]) -> None:
        i = self.next_id
        self.next_id += 1
        self.pending[i] = kind
        if self.ws is not None:
            self.ws.send_text(json.dumps({"id": i, kind: body}).encode())

    def subscribe(self) -> None:
        body: dict[str, Any] = {"channel": CHANNEL}
        if self.epoch:
            body |= {"recover": True, "epoch": self.epoch, "offset": self.offset}
        self.send("subscribe", body)

    async def connect(self) -> None:
        while not self.stopping:
            try:
                self.ws = await open_ws(self.url, self.on_message)
                break
            except OSError as e:
                self.log("connect_error", repr(e))
                await asyncio.sleep(1.0)
        if self.ws is None:
            return
        self.log("ws_open")
        self.send("connect", {"token": make_token(SECRET, f"outage-{self.idx}")})
        self.subscribe()
        self.ws.closed.add_done_callback(self.on_closed)

    def on_closed(self, fut: asyncio.Future[int]) -> None:
        self.subscribed = False
        self.log("ws_closed", fut.result())
        self.ws = None
        if not self.stopping:
            loop = asyncio.get_running_loop()
            loop.call_later(1.0, lambda: asyncio.ensure_future(self.connect()))

    def on_pub(self, pub: dict[str, Any]) -> None:
        self.pubs += 1
        off = pub.get("offset", 0)
        if off:
            if self.offset and off > self.offset + 1:
                self.gaps += off - self.offset - 1
            self.offset = max(self.offset, off)

    def on_message(self, opcode: int, payload: bytes) -> None:
        for line in payload.split(b"\n"):
            if not line.strip():
                continue
            msg = json.loads(line)
            if not msg:
                if self.ws is not None:
                    self.ws.send_text(b"{}")
                continue
            if "id" in msg:
                kind = self.pending.pop(msg["id"], "?")
                if "error" in msg:
                    self.log(f"{kind}_error", msg["error"].get("code"))
                    if kind == "subscribe":
                        asyncio.get_running_loop().call_later(0.5, self.subscribe)
                    continue
                if kind == "subscribe":
                    res = msg.get("subscribe") or msg.get("result") or {}
                    was = bool(res.get("was_recovering"))
                    rec = bool(res.get("recovered"))
                    if res.get("epoch") and self.epoch and res["epoch"] != self.epoch:
                        self.log("epoch_changed", res["epoch"])
                    for pub in res.get("publications", []) or []:
                        self.on_pub(pub)
                    self.epoch = res.get("epoch", self.epoch)
                    if res.get("offset") is not None and (not was or rec):
                        self.offset = max(self.offset, int(res.get("offset", 0)))
                    elif not rec:
                        self.offset = int(res.get("offset", 0) or 0)
                    self.subscribed = True
                    self.log("subscribed", {"was_recovering": was, "recovered": rec})
                continue
            push = msg.get("push")
            if not push:
                continue
            if "pub" in push:
                self.on_pub(push["pub"])
            elif "unsubscribe" in push:
                code = push["unsubscribe"].get("code", 0)
                self.subscribed = False
                self.log("unsubscribe", code)
                if code >= 2500:
                    self.subscribe()
            elif "disconnect" in push:
                self.log("disconnect", push["disconnect"].get("code"))


async def _clients(urls: list[str], n: int, pipe: Connection) -> None:
    ev: list[tuple[float, str, int, Any]] = []
    clients = [Client(i, urls[i % len(urls)], ev) for i in range(n)]
    samples: list[tuple[float, int, int, int]] = []
    await asyncio.gather(*(c.connect() for c in clients))

    async def sampler() -> None:
        while True:
            open_ = sum(1 for c in clients if c.ws is not None and not c.ws.closed.done())
            subs = sum(1 for c in clients if c.subscribed)
            samples.append((time.monotonic(), open_, subs, sum(c.pubs for c in clients)))
            await asyncio.sleep(0.1)

    task = asyncio.ensure_future(sampler())
    loop = asyncio.get_running_loop()
    pipe.send("ready")
    await loop.run_in_executor(None, pipe.recv)
    task.cancel()
    for c in clients:
        c.stopping = True
        if c.ws is not None:
            c.ws.close()
    pipe.send(
        {
            "events": ev,
            "samples": samples,
            "pubs": [c.pubs for c in clients],
            "gaps": [c.gaps for c in clients],
        }
    )


def clients_main(urls: list[str], n: int, pipe: Connection) -> None:
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_clients(urls, n, pipe))


# ---- publisher and timeline -------------------------------------------------------------------


async def publisher(
    cl: Cluster, args: argparse.Namespace, t0: float
) -> list[tuple[float, float, bool, str]]:
    """Publish at ``args.rate``/s for the whole run, stopping/starting Redis on schedule."""
    out: list[tuple[float, float, bool, str]] = []
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
        connector=aiohttp.TCPConnector(limit=200),
        timeout=timeout,
    ) as session:

        async def one(k: int) -> None:
            url = cl.targets[k % cl.n].api_url + "/publish"
            body = json.dumps({"channel": CHANNEL, "data": {"k": k}}).encode()
            a = time.monotonic()
            try:
                async with session.post(url, data=body) as resp:
                    data = await resp.read()
                    ok = resp.status == 200 and b'"error"' not in data
                    err = "" if ok else f"{resp.status} {data[:80]!r}"
            except TimeoutError:
                ok, err = False, "timeout 5 s"
            except aiohttp.ClientError as e:
                ok, err = False, repr(e)[:80]
            out.append((a - t0, time.monotonic() - a, ok, err))

        tasks: set[asyncio.Task[None]] = set()
        k = 0
        stopped = started = False
        end = args.before + args.outage + args.after
        while True:
            now = time.monotonic() - t0
            if now >= end:
                break
            if not stopped and now >= args.before:
                stopped = True
                await asyncio.get_running_loop().run_in_executor(None, cl.redis.stop)
                print(f"[outage] redis stopped at {time.monotonic() - t0:.1f} s", flush=True)
            if stopped and not started and now >= args.before + args.outage:
                started = True
                await asyncio.get_running_loop().run_in_executor(None, cl.redis.start)
                print(f"[outage] redis started at {time.monotonic() - t0:.1f} s", flush=True)
            due = int(now * args.rate)
            while k < due:
                t = asyncio.ensure_future(one(k))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                k += 1
            await asyncio.sleep(0.002)
        if tasks:
            await asyncio.wait(tasks, timeout=6)
    return out


def run_one(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    cl = Cluster(kind, 2)
    if args.persist:
        cl.redis.persist = True
    cl.start()
    ctx = mp.get_context("spawn")
    a, b = ctx.Pipe()
    proc = ctx.Process(
        target=clients_main, args=([t.ws_url for t in cl.targets], args.clients, b), daemon=True
    )
    try:
        proc.start()
        if not a.poll(60) or a.recv() != "ready":
            raise RuntimeError("clients did not come up")
        t0 = time.monotonic()
        pubs = asyncio.run(publisher(cl, args, t0))
        a.send("stop")
        if not a.poll(30):
            raise RuntimeError("clients did not report")
        rep = a.recv()
    finally:
        proc.join(5)
        if proc.is_alive():
            proc.kill()
        cl.stop()
    return timeline(kind, args, t0, pubs, rep)


def timeline(
    kind: str, args: argparse.Namespace, t0: float, pubs: list[Any], rep: dict[str, Any]
) -> dict[str, Any]:
    secs = int(args.before + args.outage + args.after)
    rows: list[dict[str, float]] = [
        {
            "t": float(s),
            "api_ok": 0,
            "api_err": 0,
            "api_max_ms": 0.0,
            "ws_open": 0,
            "subscribed": 0,
            "unsub_2500": 0,
            "sub_errors": 0,
            "resubscribed": 0,
            "recovered": 0,
            "not_recovered": 0,
            "ws_closed": 0,
            "pubs_rx": 0,
        }
        for s in range(secs)
    ]
    errs: dict[str, int] = {}
    for start, lat, ok, err in pubs:
        s = int(start)
        if 0 <= s < secs:
            r = rows[s]
            r["api_ok" if ok else "api_err"] += 1
            r["api_max_ms"] = max(r["api_max_ms"], lat * 1000)
        if not ok:
            errs[err] = errs.get(err, 0) + 1
    last_pubs = 0
    for t, open_, subs, npubs in rep["samples"]:
        s = int(t - t0)
        if 0 <= s < secs:
            rows[s]["ws_open"] = open_  # last sample of the second
            rows[s]["subscribed"] = subs
            rows[s]["pubs_rx"] += npubs - last_pubs
        last_pubs = npubs
    t_up = args.before + args.outage
    resub_at: dict[int, float] = {}
    rec_flags: dict[int, bool] = {}
    first_flags: dict[int, bool] = {}
    first_2500 = None
    for t, ev, idx, extra in rep["events"]:
        s = int(t - t0)
        if not 0 <= s < secs:
            continue
        r = rows[s]
        if ev == "unsubscribe" and extra >= 2500:
            r["unsub_2500"] += 1
            first_2500 = first_2500 if first_2500 is not None else t - t0
        elif ev == "subscribe_error":
            r["sub_errors"] += 1
        elif ev == "ws_closed":
            r["ws_closed"] += 1
        elif ev == "subscribed" and extra["was_recovering"]:
            r["resubscribed"] += 1
            r["recovered" if extra["recovered"] else "not_recovered"] += 1
            if t - t0 >= args.before:
                resub_at[idx] = t - t0
                rec_flags[idx] = extra["recovered"]
                first_flags.setdefault(idx, extra["recovered"])
    err_max = max((lat for start, lat, ok, _ in pubs if not ok), default=0.0)
    summary = {
        "clients": args.clients,
        "api_ok": sum(1 for p in pubs if p[2]),
        "api_err": sum(1 for p in pubs if not p[2]),
        "api_err_max_ms": err_max * 1000,
        "api_max_ms_during_outage": max(
            (r["api_max_ms"] for r in rows if args.before <= r["t"] < t_up), default=0.0
        ),
        "api_errors_by_kind": errs,
        "first_2500_s": first_2500,
        "unsub_2500_total": sum(r["unsub_2500"] for r in rows),
        "ws_closed_total": sum(r["ws_closed"] for r in rows),
        "min_ws_open": min(r["ws_open"] for r in rows),
        "clients_resubscribed": len(resub_at),
        "all_resubscribed_after_redis_up_s": (max(resub_at.values()) - t_up)
        if len(resub_at) == args.clients
        else None,
        "last_resubscribe_recovered_true": sum(1 for v in rec_flags.values() if v),
        "last_resubscribe_recovered_false": sum(1 for v in rec_flags.values() if not v),
        "first_resubscribe_recovered_true": sum(1 for v in first_flags.values() if v),
        "first_resubscribe_recovered_false": sum(1 for v in first_flags.values() if not v),
        "client0_events": [
            f"{t - t0:.2f} {ev} {extra}" for t, ev, idx, extra in rep["events"] if idx == 0
        ][:40],
        "pubs_rx_total": sum(rep["pubs"]),
        "offset_gaps_total": sum(rep["gaps"]),
        "epoch_changed": sum(1 for e in rep["events"] if e[1] == "epoch_changed"),
    }
    return {"kind": kind, "rows": rows, "summary": summary}


COLS = [
    "api_ok", "api_err", "api_max_ms", "ws_open", "ws_closed", "subscribed", "unsub_2500",
    "sub_errors", "resubscribed", "recovered", "not_recovered", "pubs_rx",
]  # fmt: skip


def render(res: dict[str, Any], args: argparse.Namespace) -> str:
    down = f"{args.before:g}–{args.before + args.outage:g} s"
    lines = [f"### {res['kind']} (2 nodes), Redis down {down}"]
    lines += ["", "| t_s | " + " | ".join(COLS) + " |", "|" + "---|" * (len(COLS) + 1)]
    for r in res["rows"]:
        mark = " (redis down)" if args.before <= r["t"] < args.before + args.outage else ""
        cells = [f"{int(r['t'])}{mark}"] + [
            f"{r[c]:.0f}" if c != "api_max_ms" else f"{r[c]:.1f}" for c in COLS
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Summary:", ""]
    for k, v in res["summary"].items():
        lines.append(f"- {k}: {v}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench redis-outage", description=__doc__)
    p.add_argument("--server", default="both", choices=["relay", "centrifugo", "both"])
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument("--before", type=float, default=5.0)
    p.add_argument("--outage", type=float, default=10.0)
    p.add_argument("--after", type=float, default=15.0)
    p.add_argument("--persist", action="store_true", help="Redis keeps its data (SAVE)")
    p.add_argument("--json", default="")
    p.add_argument("--label", default="")
    p.add_argument("--results-dir", default="")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    args.repeats = 1
    raise_nofile()
    kinds = ["relay", "centrifugo"] if args.server == "both" else [args.server]
    results = {}
    for kind in kinds:
        print(f"[redis-outage] {kind}", flush=True)
        results[kind] = run_one(kind, args)
    text = "\n\n".join(render(results[k], args) for k in kinds)
    print(text)
    if not args.no_save:
        medians = {k: {"summary": {
            kk: float(v) for kk, v in r["summary"].items() if isinstance(v, int | float)
        }} for k, r in results.items()}  # fmt: skip
        md, js = write_results(
            "redis-outage", args.label, args, {}, medians, text, extra={"timelines": results}
        )
        print(f"results: {md} {js}")
    return 0
