"""Recording primitives: raw WebSocket / HTTP clients that log every exchange."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
import websockets
from websockets.exceptions import ConnectionClosed

from bench.compat.servers import API_KEY, SECRET, Server
from relay.fastpath import join_delimited, split_delimited
from relay.protocol.protobuf_codec import decode_message, encode_message

#: How long a read waits for an expected message.
WAIT = 2.0
#: How long a "nothing more?" drain listens.
QUIET = 0.35


def token(sub: str = "42", secret: str = SECRET, **claims: Any) -> str:
    body: dict[str, Any] = {"sub": sub}
    body.update(claims)
    return jwt.encode(body, secret, algorithm="HS256")


@dataclass
class Recording:
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return {"$bytes": value.decode()}
        except UnicodeDecodeError:
            return {"$b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


class WsConn:
    """One raw WebSocket connection whose traffic is written to the recording."""

    def __init__(self, target: Target, label: str, protobuf: bool) -> None:
        self.t = target
        self.label = label
        self.protobuf = protobuf
        self.ws: Any = None
        self.closed = False
        self.pending: list[Any] = []
        self.log_frames = False

    def log(self, text: str) -> None:
        self.t.rec.add(f"{self.label} {text}")

    async def open(self, query: str = "") -> WsConn:
        url = self.t.server.ws_url + query
        sub = ["centrifuge-protobuf"] if self.protobuf else None
        try:
            self.ws = await websockets.connect(
                url, subprotocols=sub, open_timeout=5, max_size=None, ping_interval=None
            )
        except websockets.InvalidStatus as exc:
            self.closed = True
            self.log(f"handshake-refused {exc.response.status_code}")
        return self

    async def send(self, *cmds: dict[str, Any]) -> None:
        if self.protobuf:
            frame: str | bytes = join_delimited([encode_message("Command", c) for c in cmds])
            shown = json.dumps([_jsonable(c) for c in cmds], sort_keys=True)
        else:
            frame = "\n".join(json.dumps(c) for c in cmds)
            shown = frame.replace("\n", "\\n")
        self.log(f">> {shown}")
        await self.send_raw(frame, log=False)

    async def send_raw(self, frame: str | bytes, log: bool = True) -> None:
        if log:
            self.log(f">> raw {frame!r}")
        if self.closed or self.ws is None:
            self.log("!! send on closed connection")
            return
        try:
            await self.ws.send(frame)
        except ConnectionClosed:
            self._closed()

    def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        rcvd = None
        if self.ws is not None:
            rcvd = getattr(self.ws, "close_rcvd", None) or self.ws.protocol.close_rcvd
        if rcvd is None:
            self.log("<< closed without close frame")
        else:
            self.log(f"<< CLOSE {rcvd.code} {rcvd.reason!r}")

    def _decode(self, frame: str | bytes) -> list[Any]:
        if self.protobuf:
            if isinstance(frame, str):
                return [{"$text-frame": frame}]
            return [_jsonable(decode_message("Reply", p)) for p in split_delimited(frame)]
        if isinstance(frame, bytes):
            return [{"$binary-frame": frame.hex()}]
        out: list[Any] = []
        for line in frame.split("\n"):
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"$unparsable": line})
        return out

    async def _read_frame(self, timeout: float) -> bool:
        if self.closed or self.ws is None:
            return False
        try:
            frame = await asyncio.wait_for(self.ws.recv(), timeout)
        except TimeoutError:
            return False
        except ConnectionClosed:
            self._closed()
            return False
        msgs = self._decode(frame)
        if self.log_frames:
            self.log(f"<< (frame carrying {len(msgs)} message(s))")
        self.pending.extend(msgs)
        return True

    def _emit(self, msg: Any) -> None:
        self.log("<< " + json.dumps(msg, sort_keys=True))

    async def recv(self, n: int = 1, timeout: float = WAIT) -> list[Any]:
        """Record the next ``n`` messages (fewer if the server closes / stays silent)."""
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            if not self.pending:
                left = deadline - time.monotonic()
                if left <= 0 or not await self._read_frame(left):
                    break
                continue
            msg = self.pending.pop(0)
            self._emit(msg)
            got.append(msg)
        if len(got) < n and not self.closed:
            self.log(f"<< (silence: got {len(got)} of {n})")
        return got

    async def drain(self, quiet: float = QUIET) -> None:
        """Record whatever else arrives until ``quiet`` seconds pass without traffic."""
        while True:
            while self.pending:
                self._emit(self.pending.pop(0))
            if not await self._read_frame(quiet):
                break

    async def wait_close(self, timeout: float = WAIT) -> None:
        """Record everything up to the server closing (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            while self.pending:
                self._emit(self.pending.pop(0))
            left = deadline - time.monotonic()
            if left <= 0:
                self.log("<< (still open)")
                return
            await self._read_frame(left)
        while self.pending:
            self._emit(self.pending.pop(0))

    async def connect(self, tok: str | None = None, cid: int = 1, **extra: Any) -> list[Any]:
        req: dict[str, Any] = dict(extra)
        req["token"] = token() if tok is None else tok
        if not req["token"]:
            del req["token"]
        await self.send({"id": cid, "connect": req})
        return await self.recv(1)

    async def cmd(self, cid: int, method: str, body: dict[str, Any], n: int = 1) -> list[Any]:
        await self.send({"id": cid, method: body})
        return await self.recv(n)

    async def close(self) -> None:
        if self.ws is not None and not self.closed:
            await self.ws.close()
            self.closed = True


class Target:
    """One server under test plus the recording of the running scenario."""

    def __init__(self, server: Server, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
        self.rec = Recording()
        self.conns: list[WsConn] = []

    async def ws(self, label: str = "A", protobuf: bool = False, query: str = "") -> WsConn:
        conn = await WsConn(self, label, protobuf).open(query)
        self.conns.append(conn)
        return conn

    async def client(self, label: str = "A", tok: str | None = None, **kw: Any) -> WsConn:
        """Open and connect (recording the connect reply)."""
        conn = await self.ws(label)
        await conn.connect(tok, **kw)
        return conn

    async def http_req(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | str | None = None,
        label: str = "H",
        show_headers: tuple[str, ...] = ("Content-Type",),
    ) -> Any:
        data: bytes | str | None = raw
        if body is not None:
            data = json.dumps(body)
        shown = data if isinstance(data, str) else (data or b"").decode(errors="replace")
        self.rec.add(f"{label} >> {method} {path} {shown}")
        async with self.http.request(
            method, self.server.http_url + path, data=data, headers=headers or {}
        ) as resp:
            text = await resp.text()
        hdrs = {h: resp.headers.get(h) for h in show_headers if resp.headers.get(h)}
        self.rec.add(f"{label} << {resp.status} {json.dumps(hdrs, sort_keys=True)}")
        parsed: Any = None
        for line in text.split("\n") if text else []:
            if not line.strip():
                continue
            try:
                parsed = json.loads(line)
                self.rec.add(f"{label} << " + json.dumps(parsed, sort_keys=True))
            except ValueError:
                self.rec.add(f"{label} << text {line!r}")
        return parsed

    async def api(self, method: str, body: Any, key: str | None = API_KEY, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}) or {})
        if key is not None:
            headers.setdefault("X-API-Key", key)
        return await self.http_req("POST", f"/api/{method}", body, headers=headers, **kw)

    async def finish(self) -> None:
        for c in self.conns:
            await c.drain(0.15)
        for c in self.conns:
            await c.close()
        self.conns.clear()


Scenario = Callable[[Target], Awaitable[None]]

# ---- normalization ------------------------------------------------------------------

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Normalizer:
    """Replace run-specific values with stable placeholders, numbered by first sight.

    ``strip_pub_epoch``: drop ``Publication.epoch`` (protocol field 14, added in
    centrifugal/protocol v0.19.0; Centrifugo v6.6.2 ships v0.18.2, v6.9.1 ships v0.19.2).
    """

    def __init__(self, strip_pub_epoch: bool = True) -> None:
        self.maps: dict[str, dict[str, str]] = {}
        self.strip_pub_epoch = strip_pub_epoch

    def ph(self, kind: str, value: str) -> str:
        m = self.maps.setdefault(kind, {})
        if value not in m:
            m[value] = f"<{kind}{len(m) + 1}>"
        return m[value]

    def value(self, key: str, v: Any, parent: dict[str, Any]) -> Any:
        if key == "epoch" and isinstance(v, str) and v:
            return self.ph("epoch", v)
        if key in ("client", "uid", "session") and isinstance(v, str) and v:
            return self.ph(key if key != "uid" else "uid", v)
        if key == "version" and isinstance(v, str):
            return "<version>"
        if key == "uptime":
            return "<uptime>"
        if key == "name" and "uid" in parent:
            return "<node-name>"
        if key == "metrics" and "uid" in parent:
            return "<metrics>"
        if key.startswith("num_") and "uid" in parent:
            return "<count>"  # Centrifugo serves cached node counts (refreshed every few s)
        if key == "token" and isinstance(v, str) and v.count(".") == 2:
            return "<jwt>"
        if key in ("expire_at", "exp") and isinstance(v, int) and v > 1_000_000_000:
            return "<timestamp>"
        if self.strip_pub_epoch and key in ("pub", "publications"):
            pubs = v if isinstance(v, list) else [v]
            for pub in pubs:
                if isinstance(pub, dict):
                    pub.pop("epoch", None)
        if key == "ttl" and isinstance(v, int) and v > 5:
            return f"<ttl~{round(v / 10) * 10}>"
        return self.walk(v)

    def walk(self, v: Any) -> Any:
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                nk = self.ph("client", k) if _UUID.fullmatch(k) else k
                out[nk] = self.value(k, x, v)
            return out
        if isinstance(v, list):
            return [self.walk(x) for x in v]
        if isinstance(v, str):
            return _UUID.sub(lambda m: self.ph("client", m.group(0)), v)
        return v

    def line(self, line: str) -> str:
        for marker in ("<< ", ">> "):
            idx = line.find(marker)
            if idx < 0:
                continue
            head, rest = line[: idx + 3], line[idx + 3 :]
            parts = rest.split(" ", 2)
            if marker == ">> " and len(parts) == 3 and parts[0].isupper():
                head, rest = head + " ".join(parts[:2]) + " ", parts[2]
            try:
                data = json.loads(rest)
            except ValueError:
                return _UUID.sub(lambda m: self.ph("client", m.group(0)), line)
            return head + json.dumps(self.walk(data), sort_keys=True, ensure_ascii=False)
        return line


def normalize(lines: list[str], strip_pub_epoch: bool = True) -> list[str]:
    n = Normalizer(strip_pub_epoch)
    return [n.line(x) for x in lines]
