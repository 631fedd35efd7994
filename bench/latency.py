"""latency: 15 clients (JSON and Protobuf mixed) doing publish, presence and history round
trips at a steady rate, plus publish-to-receive latency of their own publications.

Each client subscribes to its own channel of a presence+history namespace and issues one
command every ``1/--rate`` s (publish, presence, history in turn) on a fixed schedule
(absolute deadlines, staggered starts), waiting for each reply. The load is light on
purpose: this measures the latency of an unloaded server, not its throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench.common import CaseMetrics, Target, cpu_us_per, make_token, percentile, tree_cpu
from bench.wsclient import OP_BINARY, WSClient, open_ws
from relay.fastpath import join_delimited, split_delimited
from relay.protocol import protobuf_codec

OPS = ("publish", "presence", "history")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clients", type=int, default=15)
    p.add_argument("--duration", type=float, default=30.0, help="seconds per repeat")
    p.add_argument("--rate", type=float, default=50.0, help="commands per second per client")
    p.add_argument("--namespace", default="lat")


class Client:
    """One benchmark client; ``protobuf`` picks the codec."""

    def __init__(self, protobuf: bool, channel: str) -> None:
        self.protobuf = protobuf
        self.channel = channel
        self.ws: WSClient | None = None
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.next_id = 0
        self.pub_lat: list[float] = []

    def encode(self, cmd: dict[str, Any]) -> bytes:
        if self.protobuf:
            return join_delimited([protobuf_codec.encode_message("Command", cmd)])
        return json.dumps(cmd, separators=(",", ":")).encode()

    def on_message(self, opcode: int, payload: bytes) -> None:
        now = time.monotonic_ns()
        if opcode == OP_BINARY and self.protobuf:
            replies = [protobuf_codec.decode_message("Reply", m) for m in split_delimited(payload)]
        else:
            replies = [json.loads(line) for line in payload.split(b"\n") if line.strip()]
        for r in replies:
            if not r:  # ping
                self.send_raw(self.encode({}) if not self.protobuf else b"\x00")
            elif "push" in r:
                pub = r["push"].get("pub")
                if pub is not None:
                    data = pub["data"]
                    t = json.loads(data)["t"] if isinstance(data, bytes) else data["t"]
                    self.pub_lat.append((now - t) / 1000)
            elif (fut := self.waiting.pop(r.get("id", 0), None)) is not None and not fut.done():
                fut.set_result(r)

    def send_raw(self, data: bytes) -> None:
        assert self.ws is not None
        (self.ws.send_binary if self.protobuf else self.ws.send_text)(data)

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = fut
        self.send_raw(self.encode({"id": self.next_id, method: params}))
        reply = await asyncio.wait_for(fut, 10)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply

    async def start(self, url: str, token: str) -> None:
        proto = "centrifuge-protobuf" if self.protobuf else None
        self.ws = await open_ws(url, self.on_message, subprotocol=proto)
        await self.call("connect", {"token": token})
        await self.call("subscribe", {"channel": self.channel})


async def client_loop(
    c: Client, args: argparse.Namespace, t_end: float, offset: float, rtt: dict[str, list[float]]
) -> None:
    interval = 1.0 / args.rate
    next_t = time.monotonic() + offset
    i = 0
    while True:
        next_t += interval
        if next_t >= t_end:
            return
        await asyncio.sleep(max(0.0, next_t - time.monotonic()))
        op = OPS[i % 3]
        i += 1
        if op == "publish":
            data: Any = {"t": time.monotonic_ns()}
            params = {
                "channel": c.channel,
                "data": json.dumps(data).encode() if c.protobuf else data,
            }
        elif op == "presence":
            params = {"channel": c.channel}
        else:
            params = {"channel": c.channel, "limit": 10}
        t0 = time.perf_counter_ns()
        await c.call(op, params)
        rtt[op].append((time.perf_counter_ns() - t0) / 1000)


async def run_once(target: Target, args: argparse.Namespace, rep: int) -> CaseMetrics:
    tag = f"{args.namespace}:l{rep}x{int(time.time() * 1000) % 10**8}"
    clients = [Client(i % 2 == 1, f"{tag}-{i}") for i in range(args.clients)]
    for i, c in enumerate(clients):
        await c.start(target.ws_url, make_token(target.secret, f"{tag}-u{i}"))
    rtt: dict[str, list[float]] = {op: [] for op in OPS}
    await asyncio.sleep(0.5)
    for c in clients:
        c.pub_lat.clear()
    cpu0 = (tree_cpu(target.pid), time.process_time())
    t0 = time.monotonic()
    t_end = t0 + args.duration
    stagger = 1.0 / args.rate / max(1, len(clients))
    await asyncio.gather(
        *(client_loop(c, args, t_end, i * stagger, rtt) for i, c in enumerate(clients))
    )
    await asyncio.sleep(0.2)
    wall = time.monotonic() - t0
    cpu1 = (tree_cpu(target.pid), time.process_time())
    for c in clients:
        if c.ws is not None:
            c.ws.close()
    out: CaseMetrics = {}
    series = {
        **{f"{op} rtt": rtt[op] for op in OPS},
        "pub->recv": [x for c in clients for x in c.pub_lat],
    }
    for name, vals in series.items():
        out[name] = {
            "p50_us": percentile(vals, 50),
            "p99_us": percentile(vals, 99),
            "p999_us": percentile(vals, 99.9),
            "max_us": max(vals) if vals else 0.0,
            "count": float(len(vals)),
        }
    commands = sum(len(rtt[op]) for op in OPS)
    out["cpu"] = {
        "server_cpu_pct": 100 * (cpu1[0] - cpu0[0]) / wall,
        "server_cpu_us_per_command": cpu_us_per(cpu1[0] - cpu0[0], commands),
        "driver_cpu_pct": 100 * (cpu1[1] - cpu0[1]) / wall,
    }
    return out
