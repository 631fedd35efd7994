"""``/connection/websocket`` requests that reach aiohttp instead of the gateway.

The gateway (``transports/websocket.py``) sees only the first request of a TCP
connection. A WebSocket upgrade sent later on a kept-alive HTTP connection (a reverse
proxy reusing an upstream connection) arrives here: it is served through aiohttp's own
WebSocket implementation, slower but with the same ``Client``, codes and limits. A plain
HTTP request to the path gets Centrifugo's ``400 Bad Request``.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web

from relay.client import Client
from relay.errors import DISCONNECT_SLOW, Disconnect
from relay.node import Node
from relay.protocol.codecs import Codec
from relay.protocol.glob import OriginChecker
from relay.transports.websocket import negotiate

__all__ = ["setup"]

log = logging.getLogger("relay.websocket")


class _AiohttpTransport:
    """The ``ClientTransport`` contract over an aiohttp WebSocket (one writer task)."""

    name = "websocket"

    def __init__(self, ws: web.WebSocketResponse, codec: Codec, limit: int) -> None:
        self.ws = ws
        self.codec = codec
        self.limit = limit
        self.queue: asyncio.Queue[bytes | Disconnect] = asyncio.Queue()
        self.pending: list[bytes] = []
        self.size = 0
        self.client: Client | None = None
        self.writer = asyncio.get_running_loop().create_task(self._write())

    def write_message(self, message: bytes) -> None:
        if not self.pending:
            asyncio.get_running_loop().call_soon(self._frame)
        self.pending.append(message)
        self.size += len(message)
        if self.size > self.limit and self.client is not None:
            self.client.disconnect(DISCONNECT_SLOW)

    def _frame(self) -> None:
        if self.pending:
            self.queue.put_nowait(self.codec.join_frame(self.pending))
            self.pending = []

    def close(self, disconnect: Disconnect) -> None:
        if disconnect.code != DISCONNECT_SLOW.code:
            self._frame()
        self.queue.put_nowait(disconnect)

    async def _write(self) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, Disconnect):
                await self.ws.close(code=item.code, message=item.reason.encode())
                return
            self.size -= len(item)
            if self.codec.binary:
                await self.ws.send_bytes(item)
            else:
                await self.ws.send_str(item.decode())


def setup(app: web.Application, node: Node) -> None:
    """Register the fallback handler on the WebSocket path."""
    cfg = node.config
    if cfg.websocket.disabled:
        return
    origins = OriginChecker(cfg.client.allowed_origins)

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(status=400, text="Bad Request")
        if not origins.allowed(request.headers.get("Origin")):
            return web.Response(status=403, text="Forbidden")
        codec, subprotocol = negotiate(
            str(request.rel_url), request.headers.get("Sec-WebSocket-Protocol", "")
        )
        ws = web.WebSocketResponse(
            protocols=[subprotocol] if subprotocol else (),
            max_msg_size=cfg.websocket.message_size_limit,
        )
        await ws.prepare(request)
        transport = _AiohttpTransport(ws, codec, cfg.client.queue_max_size)
        names = node.proxies.header_names if node.proxies is not None else ()
        headers = {
            "-".join(part.capitalize() for part in name.split("-")): request.headers[name]
            for name in names
            if name in request.headers
        }
        client = transport.client = Client(node, transport, codec, headers)
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                client.on_frame(data)
        client.on_transport_closed()
        if not transport.writer.done():
            transport.writer.cancel()
        return ws

    app.router.add_route("*", cfg.websocket.handler_prefix.rstrip("/") or "/", handler)
