"""The uni-directional transports: ``uni_websocket``, ``uni_sse``, ``uni_http_stream``.

The client sends one connect request (the first WebSocket message or the ``cf_connect``
query parameter, the ``cf_connect`` query or the POST body for SSE, the POST body for
HTTP-stream); from then on the server only pushes. Pushes go out bare (a ``Push``, not a
``Reply``), the connect result as a ``connect`` push carrying the ``session``; a connect
error closes the connection with the disconnect its code maps to. JSON only.

Sources: centrifugo ``internal/uniws``, ``internal/unisse``, ``internal/unihttpstream``;
centrifuge ``client.go`` (``unidirectionalConnect``, ``extractUnidirectionalDisconnect``,
``getConnectPushReply``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from relay.client import Client
from relay.config.transport_tree import ConnectCodeToHTTPResponse
from relay.errors import (
    DISCONNECT_BAD_REQUEST,
    DISCONNECT_CONNECTION_CLOSED,
    DISCONNECT_EXPIRED,
    DISCONNECT_PERMISSION_DENIED,
    DISCONNECT_SERVER_ERROR,
    DISCONNECT_SLOW,
    DISCONNECT_TOO_MANY_REQUESTS,
    DISCONNECT_WRITE_ERROR,
    ERROR_EXPIRED,
    ERROR_INTERNAL,
    ERROR_PERMISSION_DENIED,
    ERROR_TOKEN_EXPIRED,
    ERROR_TOO_MANY_REQUESTS,
    DecodeError,
    Disconnect,
    DisconnectError,
    ReplyError,
)
from relay.handlers import HANDLERS
from relay.node import Node
from relay.protocol.codecs import JSON
from relay.protocol.glob import OriginChecker
from relay.protocol.json_codec import decode_command
from relay.transports.ports import UNI_HTTP_STREAM, UNI_SSE, UNI_WEBSOCKET
from relay.transports.streaming import (
    STREAM_HEADERS,
    Admit,
    StreamConnection,
    cors,
    frame_http_stream_json,
    frame_sse,
    read_body,
    unwrap_push,
)

__all__ = ["parse_connect_request", "setup", "uni_connect"]

log = logging.getLogger("relay.uni")

_CONNECT_PARAM = "cf_connect"

#: centrifuge ``defaultUniErrorCodeToDisconnect``; any other error code: 3004
_ERROR_TO_DISCONNECT = {
    ERROR_EXPIRED.code: DISCONNECT_EXPIRED,
    ERROR_TOKEN_EXPIRED.code: DISCONNECT_EXPIRED,
    ERROR_TOO_MANY_REQUESTS.code: DISCONNECT_TOO_MANY_REQUESTS,
    ERROR_PERMISSION_DENIED.code: DISCONNECT_PERMISSION_DENIED,
}


def parse_connect_request(raw: bytes) -> dict[str, Any]:
    """A JSON ``ConnectRequest`` (``null`` = empty) normalized as the codec does the
    ``connect`` of a command; DecodeError when malformed (HTTP 400 / close 3501)."""
    if not raw.strip():
        raise DecodeError("empty connect request")
    command = decode_command(b'{"id":1,"connect":' + raw + b"}")
    connect = command.get("connect")
    return dict(connect) if isinstance(connect, dict) else {}


ConnectFailure = ReplyError | DisconnectError


def uni_disconnect(client: Client, failure: ReplyError) -> Disconnect:
    """The disconnect a failed uni-directional connect closes with: the configured
    transform of the error code, else centrifuge's default table, else 3004
    (``client.go`` ``extractUnidirectionalDisconnect``)."""
    cfg = client.node.config.client.connect_code_to_unidirectional_disconnect
    code = failure.error.code
    if cfg.enabled:
        for transform in cfg.transforms:
            if transform.code == code:
                return Disconnect(transform.to.code, transform.to.reason)
    return _ERROR_TO_DISCONNECT.get(code, DISCONNECT_SERVER_ERROR)


async def run_connect(client: Client, req: dict[str, Any]) -> ConnectFailure | None:
    """The connect of a uni-directional client; on success its ``connect`` push is
    queued and the work after it runs (server-side subscriptions); a failure is returned
    for the caller to answer (``ProtocolConnectNoErrorToDisconnect``)."""
    metrics = client.node.metrics
    started = time.perf_counter()
    client.connect_extra = {"session": str(uuid.uuid4())}
    try:
        client.session.dispatch({"id": 1, "connect": req})
        result = await HANDLERS["connect"](client, req)
    except ReplyError as exc:
        metrics.reply_error("connect", exc.error.code)
        client.after_reply.clear()
        return exc
    except DisconnectError as exc:
        client.after_reply.clear()
        return exc
    except Exception:
        log.exception("error handling connect of client %s", client.uid)
        client.after_reply.clear()
        return ReplyError(ERROR_INTERNAL)
    finally:
        seconds = time.perf_counter() - started
        metrics.command("connect", seconds, 0, 0, client.transport_name)
    result.pop("pong", None)  # no pongs over a uni-directional transport
    client.send_push({"connect": result})
    while client.after_reply and not client.closed:
        outcome = client.after_reply.pop(0)()
        if asyncio.iscoroutine(outcome):
            await outcome
    return None


async def uni_connect(client: Client, req: dict[str, Any]) -> None:
    """Run the connect of a uni-directional client and push its result (or close)."""
    failure = await run_connect(client, req)
    if isinstance(failure, DisconnectError):
        client.disconnect(failure.disconnect)
    elif failure is not None:
        client.disconnect(uni_disconnect(client, failure))


def http_answer(failure: ConnectFailure, cfg: ConnectCodeToHTTPResponse) -> tuple[int, str]:
    """``connect_code_to_http_response``: a matching transform's status and body (the
    error's message or disconnect's reason when it has none), else 500
    (centrifugo ``tools.ConnectErrorToToHTTPResponse``)."""
    if isinstance(failure, DisconnectError):
        code, body = failure.disconnect.code, failure.disconnect.reason
    else:
        code, body = failure.error.code, failure.error.message
    for transform in cfg.transforms:
        if code and transform.code == code:
            return transform.to.status_code, transform.to.body or body
    return 500, "Internal Server Error"


# ---- uni_sse, uni_http_stream ---------------------------------------------------------
class _UniStreams:
    def __init__(self, node: Node, admit: Admit) -> None:
        self.node = node
        self.admit = admit
        self.origins = OriginChecker(node.config.client.allowed_origins)

    async def _serve(
        self, request: web.Request, name: str, req: dict[str, Any]
    ) -> web.StreamResponse:
        headers = cors(request, self.origins)
        headers.update(STREAM_HEADERS)
        if request.version.major == 1:
            headers["Connection"] = "keep-alive"
        if name == UNI_SSE:
            headers["Content-Type"] = "text/event-stream; charset=utf-8"
        else:
            headers["Content-Type"] = "text/plain; charset=utf-8"  # what Go sniffs from JSON
        response = web.StreamResponse(status=200, headers=headers)
        framer = frame_sse if name == UNI_SSE else frame_http_stream_json
        cfg = self.node.config
        answer = (
            cfg.uni_sse if name == UNI_SSE else cfg.uni_http_stream
        ).connect_code_to_http_response
        conn = StreamConnection(
            self.node, response, JSON, name, framer, unidirectional=True, held=answer.enabled
        )
        task = None
        if answer.enabled:  # the connect first: a failure is an HTTP answer, not a stream
            failure = await run_connect(conn.client, req)
            if failure is not None:
                conn.abandon()
                status, body = http_answer(failure, answer)
                return web.Response(status=status, text=body, headers=cors(request, self.origins))
        await response.prepare(request)
        if name == UNI_SSE:
            await response.write(b"\r\n")
        if answer.enabled:
            conn.release()
        else:
            task = asyncio.get_running_loop().create_task(uni_connect(conn.client, req))
        await conn.serve(request)
        if task is not None and not task.done():
            task.cancel()
        return response

    async def uni_sse(self, request: web.Request) -> web.StreamResponse:
        """centrifugo ``unisse.Handler.ServeHTTP``."""
        if (refused := self.admit.refused()) is not None:
            return refused
        try:
            if request.method == "GET":
                raw = request.query.get(_CONNECT_PARAM, "")
                req = parse_connect_request(raw.encode()) if raw else {}
            elif request.method == "POST":
                body = await read_body(request, self.node.config.uni_sse.max_request_body_size)
                if body is None:
                    return web.Response(status=413, headers=cors(request, self.origins))
                req = parse_connect_request(body)
            else:
                return web.Response(status=405, headers=cors(request, self.origins))
        except DecodeError as exc:
            log.info("error unmarshalling connect request (uni_sse): %s", exc)
            return web.Response(status=400, headers=cors(request, self.origins))
        return await self._serve(request, UNI_SSE, req)

    async def uni_http_stream(self, request: web.Request) -> web.StreamResponse:
        """centrifugo ``unihttpstream.Handler.ServeHTTP``."""
        if (refused := self.admit.refused()) is not None:
            return refused
        if request.method == "OPTIONS":
            headers = {
                "Access-Control-Max-Age": "300",
                "Access-Control-Allow-Methods": "POST, OPTIONS",
            }
            headers.update(cors(request, self.origins))
            return web.Response(status=204, headers=headers)
        if request.method != "POST":
            return web.Response(status=405, headers=cors(request, self.origins))
        body = await read_body(request, self.node.config.uni_http_stream.max_request_body_size)
        if body is None:
            return web.Response(status=413, headers=cors(request, self.origins))
        try:
            req = parse_connect_request(body)
        except DecodeError as exc:
            log.info("malformed connect request (uni_http_stream): %s", exc)
            return web.Response(status=400, headers=cors(request, self.origins))
        return await self._serve(request, UNI_HTTP_STREAM, req)


# ---- uni_websocket --------------------------------------------------------------------
class UniWebSocketTransport:
    """``ClientTransport`` over an aiohttp WebSocket: one text frame per push, or the
    pushes of one loop turn in one frame with ``join_push_messages``."""

    name = UNI_WEBSOCKET

    def __init__(self, node: Node, ws: web.WebSocketResponse, request: web.BaseRequest) -> None:
        cfg = node.config.uni_websocket
        self.ws = ws
        self.request = request
        self.join = cfg.join_push_messages
        self.no_disconnect_push = cfg.disable_disconnect_push
        self.no_handshake = cfg.disable_closing_handshake
        self.write_timeout = cfg.write_timeout or 1.0
        self.queue_max_size = node.config.client.queue_max_size
        self._pending: list[bytes] = []
        self._size = 0
        self._closing: Disconnect | None = None
        self._wake = asyncio.Event()
        self.client = Client(node, self, JSON)
        self.client.unidirectional = True
        self.writer = asyncio.get_running_loop().create_task(self._write_loop())

    def write_message(self, message: bytes) -> None:
        if self._closing is not None:
            return
        message = unwrap_push(message)
        self._pending.append(message)
        self._size += len(message)
        self._wake.set()
        if self._size > self.queue_max_size:
            self.client.disconnect(DISCONNECT_SLOW)

    def close(self, disconnect: Disconnect) -> None:
        if self._closing is not None:
            return
        if disconnect.code in (DISCONNECT_SLOW.code, DISCONNECT_WRITE_ERROR.code):
            self._pending.clear()
        elif disconnect.code != DISCONNECT_CONNECTION_CLOSED.code and not self.no_disconnect_push:
            push = {"disconnect": {"code": disconnect.code, "reason": disconnect.reason}}
            self.write_message(JSON.encode_reply({"push": push}))
        self._closing = disconnect
        self._wake.set()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await asyncio.sleep(0)
                if self._pending:
                    batch, self._pending, self._size = self._pending, [], 0
                    frames = [b"\n".join(batch)] if self.join else batch
                    async with asyncio.timeout(self.write_timeout):
                        for frame in frames:
                            await self.ws.send_str(frame.decode())
                if self._closing is not None and not self._pending:
                    await self._close_socket(self._closing)
                    return
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            log.debug("uni_websocket of client %s ended: %r", self.client.uid, exc)
            self._closing = self._closing or DISCONNECT_WRITE_ERROR
            self.client.disconnect(DISCONNECT_WRITE_ERROR)
            await self.ws.close()

    async def _close_socket(self, disconnect: Disconnect) -> None:
        if self.no_handshake or disconnect.code == DISCONNECT_WRITE_ERROR.code:
            transport = self.request.transport
            if transport is not None:
                transport.close()
            return
        if disconnect.code == DISCONNECT_CONNECTION_CLOSED.code:
            await self.ws.close()
            return
        await self.ws.close(code=disconnect.code & 0xFFFF, message=disconnect.reason.encode())
        self.node_metrics_close(disconnect.code)

    def node_metrics_close(self, code: int) -> None:
        self.client.node.metrics.close_sent(code, UNI_WEBSOCKET)


def _http_error(status: int, text: str) -> web.Response:
    """Go's ``http.Error``."""
    return web.Response(
        status=status,
        body=(text + "\n").encode(),
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "X-Content-Type-Options": "nosniff",
        },
    )


class _UniWebsocket:
    def __init__(self, node: Node, admit: Admit) -> None:
        self.node = node
        self.admit = admit
        self.origins = OriginChecker(node.config.client.allowed_origins)

    async def handler(self, request: web.Request) -> web.StreamResponse:
        """centrifugo ``uniws.Handler.ServeHTTP``."""
        if (refused := self.admit.refused()) is not None:
            return refused
        cfg = self.node.config.uni_websocket
        req: dict[str, Any] | None = None
        raw = request.query.get(_CONNECT_PARAM, "")
        if raw:
            try:
                req = parse_connect_request(raw.encode())
            except DecodeError:
                return _http_error(400, "invalid connect request")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _http_error(400, "Bad Request")
        if not self.origins.allowed(request.headers.get("Origin")):
            return _http_error(403, "Forbidden")
        ping = self.node.config.client.ping_interval
        ws = web.WebSocketResponse(
            max_msg_size=cfg.message_size_limit or 65536,
            heartbeat=ping if ping > 0 else None,
            autoping=True,
        )
        await ws.prepare(request)
        if self.node.shutting_down:
            await ws.close(code=3001, message=b"shutdown")
            return ws
        transport = UniWebSocketTransport(self.node, ws, request)
        client = transport.client
        connect: asyncio.Task[None] | None = None
        if req is not None:
            connect = asyncio.get_running_loop().create_task(uni_connect(client, req))
        async for msg in ws:
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY) or connect is not None:
                continue  # later messages are read and dropped
            data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
            try:
                first = parse_connect_request(data)
            except DecodeError:
                log.info("error unmarshalling connect request (uni_websocket)")
                transport.no_disconnect_push = True  # a close frame only (uniws handler.go)
                client.disconnect(DISCONNECT_BAD_REQUEST)
                continue
            connect = asyncio.get_running_loop().create_task(uni_connect(client, first))
        client.on_transport_closed()
        if not transport.writer.done():
            transport.writer.cancel()
        return ws


def setup(app: web.Application, node: Node, handlers: frozenset[str], workers: int = 1) -> None:
    """Register the uni-directional endpoints this listener serves (``ports.py``)."""
    cfg = node.config
    admit = Admit(node, workers)
    streams = _UniStreams(node, admit)
    routes = (
        (UNI_WEBSOCKET, cfg.uni_websocket.handler_prefix, _UniWebsocket(node, admit).handler),
        (UNI_SSE, cfg.uni_sse.handler_prefix, streams.uni_sse),
        (UNI_HTTP_STREAM, cfg.uni_http_stream.handler_prefix, streams.uni_http_stream),
    )
    for name, prefix, handler in routes:
        if name in handlers:
            app.router.add_route("*", prefix.rstrip("/") or "/", handler)
