"""The HTTP response a streaming client reads: SSE, HTTP-stream and their uni twins.

``StreamConnection`` is the ``ClientTransport`` of a connection whose server-to-client
half is one long HTTP response (aiohttp ``StreamResponse``). Messages a ``Client``
writes are coalesced per loop turn and written by one writer task, each message framed
as its transport does it (centrifuge ``handler_sse.go``: ``data: <msg>\\n\\n``;
``handler_http_stream.go``: ``<msg>\\n`` in JSON, varint-delimited in Protobuf;
centrifugo ``internal/unisse``, ``internal/unihttpstream``: the same framing around a
bare ``Push`` instead of a ``Reply``).

Closing (centrifuge ``client.go`` ``close``): a ``disconnect`` push is written after what
is queued (never for 3000), the queue is flushed (not for 3008), the response ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from relay.client import Client
from relay.errors import (
    DISCONNECT_CONNECTION_CLOSED,
    DISCONNECT_SLOW,
    DISCONNECT_WRITE_ERROR,
    Disconnect,
)
from relay.node import Node
from relay.protocol.codecs import Codec
from relay.protocol.glob import OriginChecker
from relay.transports.admission import Admission

__all__ = [
    "Framer",
    "StreamConnection",
    "frame_http_stream_json",
    "frame_http_stream_protobuf",
    "frame_sse",
    "unwrap_push",
    "read_body",
    "cors",
    "Admit",
    "STREAM_HEADERS",
]

log = logging.getLogger("relay.streaming")

#: a response write that blocks longer is a write error (``streamingResponseWriteTimeout``)
WRITE_TIMEOUT = 1.0
PEER_CHECK = 1.0

#: headers of every streaming response (``handler_http_stream.go``, ``handler_sse.go``)
STREAM_HEADERS = {
    "X-Accel-Buffering": "no",
    "Cache-Control": "private, no-cache, no-store, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expire": "0",
}

Framer = Callable[[list[bytes]], bytes]

_PUSH_PREFIX = b'{"push":'


def unwrap_push(message: bytes) -> bytes:
    """A JSON ``Reply`` carrying only a push -> the bare ``Push`` (uni transports write
    pushes, centrifuge ``encodeReply`` with ``Unidirectional()``); anything else as is."""
    if message.startswith(_PUSH_PREFIX) and message.endswith(b"}"):
        return message[len(_PUSH_PREFIX) : -1]
    return message


def frame_sse(messages: list[bytes]) -> bytes:
    return b"".join(b"data: " + m + b"\n\n" for m in messages)


def frame_http_stream_json(messages: list[bytes]) -> bytes:
    return b"".join(m + b"\n" for m in messages)


def frame_http_stream_protobuf(messages: list[bytes]) -> bytes:
    from relay.protocol.protobuf_codec import join_frame

    return join_frame(messages)


def cors(request: web.BaseRequest, origins: OriginChecker) -> dict[str, str]:
    """centrifugo ``middleware/cors.go``: an allowed origin (no Origin header passes too)
    gets the CORS headers on every response of a connection endpoint."""
    headers: dict[str, str] = {}
    origin = request.headers.get("Origin", "")
    if origins.allowed(origin or None):
        headers["Access-Control-Allow-Origin"] = origin
        wanted = request.headers.get("Access-Control-Request-Headers", "")
        if wanted and wanted != "null":
            headers["Access-Control-Allow-Headers"] = wanted
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


class Admit:
    """``client.connection_limit`` / ``connection_rate_limit`` for these endpoints, by
    WebSocket's rule (``websocket.Admission``, made at the first request, on the running
    loop); refused: 503 without a body and without CORS headers (centrifugo
    ``middleware/connlimit.go`` runs before the CORS middleware)."""

    def __init__(self, node: Node, workers: int) -> None:
        self.node = node
        self.workers = workers
        self._admission: Admission | None = None

    def refused(self) -> web.Response | None:
        if self._admission is None:
            self._admission = Admission(self.node, asyncio.get_running_loop(), self.workers)
        if self._admission.admit():
            return None
        self.node.metrics.connection_refused()
        return web.Response(status=503)


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None past ``limit`` bytes (``http.MaxBytesReader``: 413)."""
    limit = limit or 65536
    out = bytearray()
    async for chunk in request.content.iter_any():
        out += chunk
        if len(out) > limit:
            return None
    return bytes(out)


class StreamConnection:
    """``ClientTransport`` over one streaming HTTP response."""

    def __init__(
        self,
        node: Node,
        response: web.StreamResponse,
        codec: Codec,
        name: str,
        framer: Framer,
        *,
        unidirectional: bool = False,
        held: bool = False,
    ) -> None:
        self.name = name
        self.response = response
        self.framer = framer
        self.unidirectional = unidirectional
        self.queue_max_size = node.config.client.queue_max_size
        self._pending: list[bytes] = []
        self._size = 0
        self._closing = False
        self._wake = asyncio.Event()
        self._released = asyncio.Event()  # the response is prepared: writes may go out
        if not held:
            self._released.set()
        self.done = asyncio.get_running_loop().create_future()
        self.client = Client(node, self, codec)
        self.client.unidirectional = unidirectional
        self._writer = asyncio.get_running_loop().create_task(self._write_loop())

    # ---- ClientTransport ----------------------------------------------------------------
    def write_message(self, message: bytes) -> None:
        if self._closing:
            return
        if self.unidirectional:
            message = unwrap_push(message)
        self._pending.append(message)
        self._size += len(message)
        self._wake.set()
        if self._size > self.queue_max_size:
            self.client.disconnect(DISCONNECT_SLOW)

    def close(self, disconnect: Disconnect) -> None:
        if self._closing:
            return
        if disconnect.code in (DISCONNECT_SLOW.code, DISCONNECT_WRITE_ERROR.code):
            self._pending.clear()
        elif disconnect.code != DISCONNECT_CONNECTION_CLOSED.code:
            push = {"disconnect": {"code": disconnect.code, "reason": disconnect.reason}}
            self.write_message(self.client.codec.encode_reply({"push": push}))
        self._closing = True
        self._wake.set()

    # ---- writer ---------------------------------------------------------------------------
    def release(self) -> None:
        """A ``held`` connection's response is prepared: write what is queued."""
        self._released.set()

    def abandon(self) -> None:
        """A ``held`` connection that never gets its stream (its connect failed)."""
        self._pending.clear()
        self._closing = True
        self._peer_gone()

    async def _write_loop(self) -> None:
        try:
            await self._released.wait()
            while True:
                await self._wake.wait()
                self._wake.clear()
                await asyncio.sleep(0)  # coalesce what this loop turn queues
                if self._pending:
                    batch, self._pending, self._size = self._pending, [], 0
                    async with asyncio.timeout(WRITE_TIMEOUT):
                        await self.response.write(self.framer(batch))
                if self._closing and not self._pending:
                    return
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            log.debug("stream of client %s ended: %r", self.client.uid, exc)
            self._closing = True
            self.client.disconnect(DISCONNECT_WRITE_ERROR)
        finally:
            self.client.on_transport_closed()
            if not self.done.done():
                self.done.set_result(None)

    async def serve(self, request: web.BaseRequest) -> None:
        """Wait until the stream ends: we closed it, or the peer went away (aiohttp does
        not cancel the handler then, so the socket is looked at every second, as
        Go's ``r.Context().Done()`` would tell)."""
        try:
            while not self.done.done():
                try:
                    await asyncio.wait_for(asyncio.shield(self.done), PEER_CHECK)
                except TimeoutError:
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        self._peer_gone()
        except asyncio.CancelledError:
            self._peer_gone()
            raise

    def _peer_gone(self) -> None:
        self._closing = True
        self._writer.cancel()
        self.client.on_transport_closed()
        if not self.done.done():
            self.done.set_result(None)
