"""A minimal RFC 6455 WebSocket client on a raw asyncio protocol, built for load generation.

Only what a benchmark client needs: the HTTP upgrade, masked client frames (the mask key is
all zeros, which RFC 6455 allows and which saves the XOR), unmasked server frames of any
length, continuation frames, ping -> pong, and close. Each whole message goes to
``on_message(opcode, payload)``; the caller decides how much to parse, so the hot path of a
subscriber can count publications with ``bytes.count`` instead of decoding JSON.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Callable
from urllib.parse import urlsplit

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
_ZERO_MASK = b"\x00\x00\x00\x00"

MessageHandler = Callable[[int, bytes], None]


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One FIN frame from client to server, masked with the zero key (payload unchanged)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    return head + _ZERO_MASK + payload


class WSClient(asyncio.Protocol):
    """One client connection; await ``opened`` after ``loop.create_connection``."""

    def __init__(self, host: str, path: str, subprotocol: str | None, on_message: MessageHandler):
        self._request = self._handshake(host, path, subprotocol)
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._upgraded = False
        self._buf = b""
        self._fragments: list[bytes] = []
        self._frag_op = 0

    @staticmethod
    def _handshake(host: str, path: str, subprotocol: str | None) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during handshake"))
        if not self.closed.done():
            self.closed.set_result(1006)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status + b" ":
                self._buf = b""
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                self.abort()
                return
            self._upgraded = True
            self.opened.set_result(None)
            buf = buf[end + 4 :]
        self._buf = buf[self._parse(buf) :] if buf else b""

    # -- framing ---------------------------------------------------------------------------
    def _parse(self, buf: bytes) -> int:
        pos, end = 0, len(buf)
        on_message = self.on_message
        while end - pos >= 2:
            b0 = buf[pos]
            n = buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            stop = pos + head + n
            if stop > end:
                break
            payload = buf[pos + head : stop]
            pos = stop
            opcode = b0 & 0x0F
            if opcode == OP_TEXT or opcode == OP_BINARY:
                if b0 & 0x80:
                    on_message(opcode, payload)
                else:
                    self._frag_op, self._fragments = opcode, [payload]
            elif opcode == OP_CONT:
                self._fragments.append(payload)
                if b0 & 0x80:
                    on_message(self._frag_op, b"".join(self._fragments))
                    self._fragments = []
            elif opcode == OP_PING:
                self.send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                if not self.closed.done():
                    self.closed.set_result(code)
                self.abort()
                return end
        return pos

    # -- sending ---------------------------------------------------------------------------
    def send(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload))

    def send_text(self, payload: bytes) -> None:
        self.send(OP_TEXT, payload)

    def send_binary(self, payload: bytes) -> None:
        self.send(OP_BINARY, payload)

    def close(self, code: int = 1000) -> None:
        self.send(OP_CLOSE, struct.pack("!H", code))
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_ws(
    url: str,
    on_message: MessageHandler,
    subprotocol: str | None = None,
    local_addr: tuple[str, int] | None = None,
) -> WSClient:
    """Connect to ``ws://host:port/path`` and complete the upgrade."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(
        lambda: WSClient(f"{host}:{port}", path, subprotocol, on_message),
        host,
        port,
        local_addr=local_addr,
    )
    try:
        await asyncio.wait_for(asyncio.shield(proto.opened), 30)
    except TimeoutError:
        proto.abort()
        raise
    return proto
