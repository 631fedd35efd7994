"""``/connection/websocket``: the HTTP gateway, the upgrade and the frame loop.

One ``Gateway`` protocol accepts each TCP connection and reads the first request
head. A WebSocket upgrade on the configured path becomes a ``WebSocketConnection``;
anything else is handed, with the bytes already read, to aiohttp (HTTP API, admin,
metrics, health).

Outbound rules (design.md "Hot path"): replies and pushes are appended to a
per-connection list and every dirty connection is written once per loop turn, all
its pending messages in one WebSocket frame. A connection whose queued bytes pass
``client.queue_max_size`` is closed with 3008 without flushing.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import zlib
from collections.abc import Callable
from typing import cast
from urllib.parse import parse_qs, urlsplit

from relay.client import Client
from relay.errors import (
    DISCONNECT_SHUTDOWN,
    DISCONNECT_SLOW,
    DISCONNECT_WRITE_ERROR,
    Disconnect,
)
from relay.fastpath import (
    FrameError,
    FrameParser,
    build_close_frame,
    build_frame,
    frame_messages,
    join_delimited,
)
from relay.node import Node
from relay.protocol.codecs import JSON, PROTOBUF, Codec
from relay.protocol.glob import OriginChecker
from relay.transports.admission import Admission
from relay.transports.deflate import EXTENSION_RESPONSE, Deflater, TooBig, inflate, offered
from relay.transports.ws_close import close_frame, close_reply

__all__ = [
    "Admission",
    "Gateway",
    "WebSocketConnection",
    "Flusher",
    "GatewayContext",
    "negotiate",
]

log = logging.getLogger("relay.websocket")

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 16384
HEAD_TIMEOUT = 10.0
CLOSE_WAIT = 5.0  # how long the peer has to answer our close frame (centrifuge: 5 s)
CLOSE_WRITE_DEADLINE = 1.0  # a close frame not written by then: the socket goes (1 s)
OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10


class Flusher:
    """Writes every dirty connection once per loop turn (NATS' pcd, Redis' pending writes)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[WebSocketConnection] = []
        #: compressed messages of this turn (``Deflater.cache``), when compression is on
        self.deflated: dict[bytes, bytes] | None = None

    def mark(self, conn: WebSocketConnection) -> None:
        if not self._dirty:
            self._loop.call_soon(self._flush)
        self._dirty.append(conn)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()
        if self.deflated:
            self.deflated.clear()


class GatewayContext:
    """What every gateway connection shares: node, HTTP fallback, origin rule."""

    def __init__(
        self,
        node: Node,
        http_factory: Callable[[], asyncio.Protocol] | None,
        loop: asyncio.AbstractEventLoop,
        workers: int = 1,
        websocket: bool = True,
    ) -> None:
        self.node = node
        self.http_factory = http_factory
        self.flusher = Flusher(loop)
        self.origins = OriginChecker(node.config.client.allowed_origins)
        ws = node.config.websocket
        self.ws_path = ws.handler_prefix.rstrip("/") or "/"
        self.ws_enabled = websocket and not ws.disabled  # this port serves the endpoint
        self.max_message_size = ws.message_size_limit
        self.write_timeout = ws.write_timeout
        self.queue_max_size = node.config.client.queue_max_size
        self.admission = Admission(node, loop, workers)
        self.deflater: Deflater | None = None
        if ws.compression:
            self.deflater = Deflater(
                ws.compression_level,
                ws.compression_min_size,
                ws.message_size_limit,
                ws.decompressed_message_size_limit,
            )
            self.flusher.deflated = self.deflater.cache


# =========================================================================================
# HTTP gateway
# =========================================================================================
class Gateway(asyncio.Protocol):
    """Reads the first request head, then becomes a WebSocket or hands off to aiohttp."""

    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(HEAD_TIMEOUT, self.transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                self._respond(431, "Request Header Fields Too Large")
            return
        self._cancel_timer()
        head = bytes(self.buf[:end]).decode("latin-1")
        rest = bytes(self.buf[end + 4 :])
        request = _parse_head(head)
        if request is None:
            self._respond(400, "Bad Request")
            return
        method, target, headers = request
        path = urlsplit(target).path.rstrip("/") or "/"
        if self.ctx.ws_enabled and path == self.ctx.ws_path:
            self._websocket(method, target, headers, rest)
        else:
            self._hand_off()

    def _hand_off(self) -> None:
        """Give the connection and the bytes read so far to aiohttp."""
        transport = self.transport
        assert transport is not None
        if self.ctx.http_factory is None:
            self._respond(404, "Not Found")
            return
        proto = self.ctx.http_factory()
        transport.set_protocol(proto)
        proto.connection_made(transport)
        proto.data_received(bytes(self.buf))
        self.buf = bytearray()

    def _respond(self, status: int, text: str, extra: str = "") -> None:
        assert self.transport is not None
        body = text.encode() + b"\n"
        self.transport.write(
            f"HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n".encode()
            + body
        )
        self.transport.close()

    def _websocket(self, method: str, target: str, headers: dict[str, str], rest: bytes) -> None:
        # gorilla's order: the upgrade tokens (400) before the method (405).
        if "websocket" not in headers.get("upgrade", "").lower() or "upgrade" not in (
            headers.get("connection", "").lower()
        ):
            self._respond(400, "Bad Request")
            return
        if method != "GET":
            self._respond(405, "Method Not Allowed")
            return
        if headers.get("sec-websocket-version") != "13":
            self._respond(426, "Upgrade Required", "Sec-WebSocket-Version: 13\r\n")
            return
        key = headers.get("sec-websocket-key", "")
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except ValueError:
            valid_key = False
        if not valid_key:
            self._respond(400, "Bad Request")
            return
        if not self.ctx.origins.allowed(headers.get("origin")):
            log.info("request Origin is not authorized: %s", headers.get("origin"))
            self._respond(403, "Forbidden", "Sec-Websocket-Version: 13\r\n")
            return
        if not self.ctx.admission.admit():
            self.ctx.node.metrics.connection_refused()
            self._respond(503, "Service Unavailable")
            return
        codec, subprotocol = negotiate(target, headers.get("sec-websocket-protocol", ""))
        accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
        response = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n"
        )
        if subprotocol:
            response += f"Sec-WebSocket-Protocol: {subprotocol}\r\n"
        deflater = self.ctx.deflater
        if deflater is not None and offered(headers.get("sec-websocket-extensions", "")):
            response += EXTENSION_RESPONSE
        else:
            deflater = None
        transport = self.transport
        assert transport is not None
        transport.write((response + "\r\n").encode())
        fwd = forwarded(self.ctx, headers)
        conn = (
            WebSocketConnection(self.ctx, transport, codec, headers=fwd)
            if deflater is None
            else DeflateConnection(self.ctx, transport, codec, deflater, headers=fwd)
        )
        transport.set_protocol(conn)
        if self.ctx.node.shutting_down:
            conn.close(DISCONNECT_SHUTDOWN)
            return
        if rest:
            conn.data_received(rest)


def forwarded(ctx: GatewayContext, headers: dict[str, str]) -> dict[str, str] | None:
    """The upgrade request's headers some proxy forwards (``http_headers``), named as Go
    writes them (``X-Token``); None when no proxy forwards any (the common case)."""
    proxies = ctx.node.proxies
    if proxies is None or not proxies.header_names:
        return None
    return {
        "-".join(part.capitalize() for part in name.split("-")): headers[name]
        for name in proxies.header_names
        if name in headers
    }


def _parse_head(head: str) -> tuple[str, str, dict[str, str]] | None:
    lines = head.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            return None
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return parts[0], parts[1], headers


def negotiate(target: str, offered: str) -> tuple[Codec, str]:
    """Protobuf when ``centrifuge-protobuf`` is offered or ``cf_protocol=protobuf``."""
    protocols = [p.strip() for p in offered.split(",") if p.strip()]
    if "centrifuge-protobuf" in protocols:
        return PROTOBUF, "centrifuge-protobuf"
    query = parse_qs(urlsplit(target).query)
    wanted = (query.get("cf_protocol") or query.get("format") or [""])[0]
    subprotocol = "centrifuge-json" if "centrifuge-json" in protocols else ""
    if wanted == "protobuf":
        return PROTOBUF, subprotocol
    return JSON, subprotocol


# =========================================================================================
# WebSocket connection
# =========================================================================================
class WebSocketConnection(asyncio.Protocol):
    """RFC 6455 framing around one ``Client``; the transport the client writes through."""

    name = "websocket"

    def __init__(
        self,
        ctx: GatewayContext,
        transport: asyncio.Transport,
        codec: Codec,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.ctx = ctx
        self.transport = transport
        self.codec = codec
        self.opcode = OP_BINARY if codec.binary else OP_TEXT
        self.parser = FrameParser(ctx.max_message_size)
        self._out: list[bytes] = []
        self._out_size = 0
        self._closing = False
        self._write_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._mark_dirty = ctx.flusher.mark
        self._queue_max_size = ctx.queue_max_size
        self.client = Client(ctx.node, self, codec, headers)

    # ---- inbound ----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        try:
            messages = self.parser.feed(data)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        for opcode, payload in messages:
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if not self._closing:
                    self.client.on_frame(payload)
            elif opcode == OP_PING:
                self.transport.write(build_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self._on_close_frame(payload)
                return

    def _on_close_frame(self, payload: bytes) -> None:
        if not self._closing:
            self._closing = True
            self.transport.write(close_reply(bytes(payload)))
        self.transport.close()

    def _fail(self, code: int, reason: str) -> None:
        """A framing violation: close frame with the RFC code, no flush."""
        self._out.clear()
        if not self._closing:
            self._closing = True
            self.transport.write(build_close_frame(code, reason))
            self.ctx.node.metrics.close_sent(code)
            self._schedule_abort()
        self.client.on_transport_closed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        for timer in (self._write_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self.client.on_transport_closed()

    # ---- outbound ---------------------------------------------------------------------
    def write_message(self, message: bytes) -> None:
        if self._closing:
            return
        out = self._out
        if not out:
            self._mark_dirty(self)
        out.append(message)
        self._out_size += len(message)
        if self._out_size > self._queue_max_size:
            self.client.disconnect(DISCONNECT_SLOW)

    def flush(self) -> None:
        if self._closing or not self._out:
            return
        out, self._out, self._out_size = self._out, [], 0
        self.transport.write(frame_messages(self.opcode, out, self.codec.binary))
        if self.transport.get_write_buffer_size() > self.ctx.queue_max_size:
            self.client.disconnect(DISCONNECT_SLOW)

    def pause_writing(self) -> None:
        if self._write_timer is None and self.ctx.write_timeout > 0:
            loop = asyncio.get_running_loop()
            self._write_timer = loop.call_later(self.ctx.write_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_timed_out(self) -> None:
        self._write_timer = None
        self.client.disconnect(DISCONNECT_WRITE_ERROR)

    def close(self, disconnect: Disconnect) -> None:
        """Flush (except for 3008), send the close frame, wait briefly for the peer's."""
        if self._closing:
            return
        if disconnect.code in (DISCONNECT_SLOW.code, DISCONNECT_WRITE_ERROR.code):
            # 3008/3009: the queue is dropped, not flushed (centrifuge flushRemaining).
            self._out.clear()
            self._closing = True
            if disconnect.code == DISCONNECT_WRITE_ERROR.code:
                self.transport.abort()
            else:
                self.transport.write(close_frame(disconnect.code, disconnect.reason))
                self.ctx.node.metrics.close_sent(disconnect.code)
                self._schedule_abort()
            return
        self.flush()
        self._closing = True
        if disconnect.code == 3000:
            self.transport.close()
            return
        self.transport.write(close_frame(disconnect.code, disconnect.reason))
        self.ctx.node.metrics.close_sent(disconnect.code)
        self._schedule_abort()

    def _schedule_abort(self) -> None:
        """Drop the socket once the close frame could not be written in time, or the peer
        has not closed after ``CLOSE_WAIT`` (centrifuge's ``websocketTransport.Close``)."""
        loop = asyncio.get_running_loop()
        self._close_timer = loop.call_later(CLOSE_WRITE_DEADLINE, self._close_frame_deadline)

    def _close_frame_deadline(self) -> None:
        if self.transport.get_write_buffer_size():
            self.transport.abort()
            return
        loop = asyncio.get_running_loop()
        wait = CLOSE_WAIT - CLOSE_WRITE_DEADLINE
        self._close_timer = loop.call_later(wait, self.transport.abort)


class DeflateConnection(WebSocketConnection):
    """A connection that negotiated permessage-deflate (``transports/deflate.py``)."""

    def __init__(
        self,
        ctx: GatewayContext,
        transport: asyncio.Transport,
        codec: Codec,
        deflater: Deflater,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(ctx, transport, codec, headers)
        self.deflater = deflater
        self.parser.deflate = True

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.parser.feed(data)
        except FrameError as exc:
            self._fail(exc.code, exc.reason)
            return
        for opcode, payload in messages:
            if opcode & 0x40:
                try:
                    payload = inflate(payload, self.deflater.decompressed_limit)
                except TooBig:
                    self._fail(1009, "message too big after decompression")
                    return
                except zlib.error:
                    # gorilla: a read error, the connection goes without a close frame
                    self._closing = True
                    self.transport.close()
                    self.client.on_transport_closed()
                    return
                opcode &= 0x0F
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if not self._closing:
                    self.client.on_frame(payload)
            elif opcode == OP_PING:
                self.transport.write(build_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self._on_close_frame(payload)
                return

    def flush(self) -> None:
        if self._closing or not self._out:
            return
        out, self._out, self._out_size = self._out, [], 0
        if self.codec.binary:
            payload = join_delimited(out)
        else:
            payload = out[0] if len(out) == 1 else b"\n".join(out)
        deflater = self.deflater
        if not deflater.wanted(len(payload)):
            self.transport.write(build_frame(self.opcode, payload))
        else:
            if len(out) == 1:  # a fan-out's message: compressed once per turn
                cache = deflater.cache
                compressed = cache.get(out[0])
                if compressed is None:
                    compressed = cache[out[0]] = deflater.compress(payload)
            else:
                compressed = deflater.compress(payload)
            self.transport.write(build_frame(self.opcode | 0x40, compressed))
        if self.transport.get_write_buffer_size() > self.ctx.queue_max_size:
            self.client.disconnect(DISCONNECT_SLOW)
