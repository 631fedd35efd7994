"""delta: bytes on the wire and deliveries/s for a 10 KB JSON state changing by 1 %.

``python -m bench delta [--subscribers 50] [--publications 200] [--workers 1]`` starts relay
and Centrifugo (``~/go/bin/centrifugo``) with one config (a ``delta`` namespace with
``allowed_delta_types: ["fossil"]``, history and positioning; ``websocket.compression``
on) and runs four cases against each: plain, fossil delta, permessage-deflate, both.
Subscribers are raw WebSocket readers (``_Reader``) that count every byte the server
sends after the handshake, inflate compressed frames and apply deltas, checking that
each publication decodes to the published state. The publisher posts one
``/api/batch`` of ordered publishes (``delta: true``) and the clock stops when every
subscriber holds the last state.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import time
import zlib
from typing import Any

import aiohttp

from bench.common import CENTRIFUGO_BIN, SECRET, Target, make_config, start_server
from relay.auth import encode_hmac_token
from relay.fastpath import fossil_apply

CASES = {
    "plain": (False, False),
    "delta": (True, False),
    "deflate": (False, True),
    "delta+deflate": (True, True),
}


def states(n: int, seed: int = 1) -> list[bytes]:
    """``n`` versions of a ~10 KB JSON document, each changing about 1 % of the last."""
    rng = random.Random(seed)
    doc = {f"k{i:03d}": "".join(rng.choices("abcdefghij", k=40)) for i in range(200)}
    out = []
    for _ in range(n):
        for key in rng.sample(sorted(doc), 2):  # 2 of 200 values: ~1 % of the bytes
            doc[key] = "".join(rng.choices("abcdefghij", k=40))
        out.append(json.dumps(doc, separators=(",", ":")).encode())
    return out


class _Reader:
    """A minimal WebSocket client that counts wire bytes and decodes pushes."""

    def __init__(self, url: str, delta: bool, deflate: bool, channel: str) -> None:
        self.url, self.delta, self.deflate, self.channel = url, delta, deflate, channel
        self.wire = 0
        self.received = 0
        self.state = b""
        self.done = asyncio.Event()
        self.expected = 0
        self.last = b""

    async def start(self) -> None:
        host, rest = self.url.split("//", 1)[1].split("/", 1)
        addr, port = host.split(":")
        self.r, self.w = await asyncio.open_connection(addr, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if self.deflate else ""
        self.w.write(
            (
                f"GET /{rest} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{ext}\r\n"
            ).encode()
        )
        head = await self.r.readuntil(b"\r\n\r\n")
        assert b" 101 " in head, head
        assert (b"permessage-deflate" in head) == self.deflate, head
        tok = encode_hmac_token({"sub": "bench"}, SECRET)
        sub: dict[str, Any] = {"channel": self.channel}
        if self.delta:
            sub["delta"] = "fossil"
        cmds = [{"id": 1, "connect": {"token": tok}}, {"id": 2, "subscribe": sub}]
        self._send("\n".join(json.dumps(c) for c in cmds).encode())
        replies = 0
        while replies < 2:
            for msg in await self._frame():
                if "id" in msg:
                    replies += 1
                    assert "error" not in msg, msg
        self.wire = 0
        self.task = asyncio.create_task(self._loop())

    def _send(self, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x81]) + (
            bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
        )
        key = (mask * (n // 4 + 1))[:n]
        body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
        self.w.write(head + mask + body)

    async def _frame(self) -> list[dict[str, Any]]:
        """Read one message (its frames: gorilla fragments big ones); its pushes."""
        parts: list[bytes] = []
        first = -1
        while True:
            b0, b1 = await self.r.readexactly(2)
            n = b1 & 0x7F
            extra = 0
            if n == 126:
                n, extra = int.from_bytes(await self.r.readexactly(2), "big"), 2
            elif n == 127:
                n, extra = int.from_bytes(await self.r.readexactly(8), "big"), 8
            parts.append(await self.r.readexactly(n))
            self.wire += 2 + extra + n
            if first < 0:
                first = b0
            if b0 & 0x80:
                break
        data = b"".join(parts)
        if first & 0x40:
            data = zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
        if first & 0x0F != 1:
            return []
        return [json.loads(line) for line in data.split(b"\n") if line]

    async def _loop(self) -> None:
        while True:
            for msg in await self._frame():
                pub = msg.get("push", {}).get("pub")
                if pub is None:
                    continue
                data = pub["data"]
                if self.delta:
                    raw = data.encode()
                    self.state = fossil_apply(self.state, raw) if pub.get("delta") else raw
                else:
                    self.state = json.dumps(data, separators=(",", ":")).encode()
                self.received += 1
                if self.received == self.expected:
                    assert json.loads(self.state) == json.loads(self.last)
                    self.done.set()

    async def close(self) -> None:
        self.task.cancel()
        self.w.close()


async def run_case(
    target: Target, case: str, subs: int, docs: list[bytes], rep: int
) -> dict[str, float]:
    delta, deflate = CASES[case]
    channel = f"delta:{case}-{rep}-{int(time.time() * 1000) % 10**8}"
    readers = [_Reader(target.ws_url, delta, deflate, channel) for _ in range(subs)]
    for reader in readers:
        await reader.start()
        reader.expected = len(docs)
        reader.last = docs[-1]
    body = json.dumps(
        {
            "commands": [
                {"publish": {"channel": channel, "data": json.loads(d), "delta": True}}
                for d in docs
            ]
        }
    ).encode()
    headers = {"X-API-Key": target.api_key, "Content-Type": "application/json"}
    started = time.monotonic()
    async with aiohttp.ClientSession(headers=headers) as session:
        async with session.post(target.api_url + "/batch", data=body) as resp:
            assert resp.status == 200, await resp.read()
    await asyncio.wait_for(asyncio.gather(*(r.done.wait() for r in readers)), 120)
    elapsed = time.monotonic() - started
    wire = sum(r.wire for r in readers)
    for reader in readers:
        await reader.close()
    deliveries = subs * len(docs)
    return {
        "bytes_per_delivery": wire / deliveries,
        "deliveries_per_s": deliveries / elapsed,
    }


def _config() -> dict[str, Any]:
    cfg = make_config()
    cfg["channel"]["namespaces"].append(
        {
            "name": "delta",
            "history_size": 10,
            "history_ttl": "300s",
            "force_positioning": True,
            "allowed_delta_types": ["fossil"],
            "allow_subscribe_for_client": True,
        }
    )
    cfg["websocket"] = {"compression": True}
    cfg["client"]["queue_max_size"] = 64 << 20
    return cfg


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench delta")
    p.add_argument("--subscribers", type=int, default=50)
    p.add_argument("--publications", type=int, default=200)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--server", default="both", choices=["relay", "centrifugo", "both"])
    args = p.parse_args(argv)
    import tempfile

    workdir = tempfile.mkdtemp(prefix="relay-bench-delta-")
    path = os.path.join(workdir, "config.json")
    with open(path, "w") as f:
        json.dump(_config(), f)
    kinds = ["relay", "centrifugo"] if args.server == "both" else [args.server]
    if "centrifugo" in kinds and not os.path.exists(CENTRIFUGO_BIN):
        kinds.remove("centrifugo")
    docs = states(args.publications)
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for kind in kinds:
        target = start_server(kind, args.workers, path, workdir)
        try:
            for rep in range(args.repeats):
                for case in CASES:
                    got = asyncio.run(run_case(target, case, args.subscribers, docs, rep))
                    prev = rows.get((case, target.name))
                    if prev is None or got["deliveries_per_s"] > prev["deliveries_per_s"]:
                        rows[(case, target.name)] = got
        finally:
            target.stop()
    names = sorted({name for _, name in rows})
    size = sum(map(len, docs)) / len(docs)
    print(f"state {size:.0f} bytes, {args.publications} publications, {args.subscribers} subs")
    print("| case | metric | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for case in CASES:
        for metric in ("bytes_per_delivery", "deliveries_per_s"):
            vals = [f"{rows[(case, n)][metric]:.0f}" if (case, n) in rows else "-" for n in names]
            print(f"| {case} | {metric} | " + " | ".join(vals) + " |")
    return 0
