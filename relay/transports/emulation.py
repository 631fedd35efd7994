"""Bidirectional emulation: ``/connection/sse``, ``/connection/http_stream``, ``/emulation``.

A client opens one long response (SSE or HTTP-stream) carrying its first commands in the
request, and posts later commands to the emulation endpoint with the ``session`` and
``node`` its connect result gave it. The session is held by one worker; a command that
lands on another worker (or another node) is broadcast as the ``emulation`` control
operation, and the worker holding the session runs it (centrifuge ``emulation.go``:
``sendEmulation`` over a survey to the node of ``req.Node``).

Sources: centrifuge ``handler_sse.go``, ``handler_http_stream.go``, ``emulation.go``;
centrifugo ``internal/app/mux.go`` (paths, CORS middleware).
"""

from __future__ import annotations

import json
import logging
import uuid
import weakref
from typing import Any

from aiohttp import web

from relay.client import Client
from relay.node import Node
from relay.protocol.codecs import JSON, PROTOBUF
from relay.protocol.glob import OriginChecker
from relay.transports.ports import EMULATION, HTTP_STREAM, SSE
from relay.transports.streaming import (
    STREAM_HEADERS,
    Admit,
    StreamConnection,
    cors,
    frame_http_stream_json,
    frame_http_stream_protobuf,
    frame_sse,
    read_body,
)

__all__ = ["Sessions", "parse_emulation_request", "setup"]

log = logging.getLogger("relay.emulation")

CONTROL_OP = "emulation"
#: the status Centrifugo writes when the body could not be read (nginx's "client closed")
STATUS_CLIENT_CLOSED = 499
_CONNECT_PARAM = "cf_connect"


class Sessions:
    """This worker's emulation sessions: session id -> client."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.clients: dict[str, Client] = {}
        node.control_handlers[CONTROL_OP] = self.on_control

    def open(self, client: Client) -> str:
        session = str(uuid.uuid4())
        client.connect_extra = {"session": session, "node": self.node.uid}
        self.clients[session] = client
        return session

    def close(self, session: str) -> None:
        self.clients.pop(session, None)

    async def on_control(self, req: dict[str, Any]) -> None:
        """Run posted commands if this worker holds the session (``HandleEmulation``);
        other workers ignore them, as a node without the session answers code 2."""
        client = self.clients.get(str(req.get("session", "")))
        if client is None or client.closed:
            return
        data = req.get("data", b"")
        if not isinstance(data, bytes | bytearray):
            return
        if client.codec is JSON:
            try:
                text = json.loads(data)
            except ValueError:
                return  # emulationErrorCodeBadRequest: nothing runs
            if not isinstance(text, str):
                return
            data = text.encode()
        client.on_frame(bytes(data))


_SESSIONS: weakref.WeakKeyDictionary[Node, Sessions] = weakref.WeakKeyDictionary()


def sessions_of(node: Node) -> Sessions:
    found = _SESSIONS.get(node)
    if found is None:
        found = _SESSIONS[node] = Sessions(node)
    return found


# ---- the emulation request ------------------------------------------------------------
def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _parse_protobuf(data: bytes) -> dict[str, Any]:
    """``protocol.EmulationRequest``: node = 1, session = 2, data = 3."""
    out: dict[str, Any] = {"node": "", "session": "", "data": b""}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n, pos = _read_varint(data, pos)
            if pos + n > len(data):
                raise ValueError("truncated field")
            value = data[pos : pos + n]
            pos += n
            if number in (1, 2):
                out[("node", "session")[number - 1]] = value.decode("utf-8")
            elif number == 3:
                out["data"] = value
        else:
            raise ValueError(f"bad wire type {wire}")
        if pos > len(data):
            raise ValueError("truncated field")
    return out


def parse_emulation_request(data: bytes, protobuf: bool) -> dict[str, Any]:
    """The request as ``{"node", "session", "data"}``; ValueError when malformed.

    JSON ``data`` stays the raw JSON value (a string of commands for JSON sessions), as
    ``protocol.EmulationRequest`` keeps it.
    """
    if protobuf:
        return _parse_protobuf(data)
    obj = json.loads(data)
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    out: dict[str, Any] = {"node": "", "session": "", "data": b""}
    for key in ("node", "session"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{key} is not a string")
        out[key] = value or ""
    if obj.get("data") is not None:
        out["data"] = json.dumps(obj["data"], separators=(",", ":")).encode()
    return out


# ---- handlers -------------------------------------------------------------------------
class _Endpoints:
    def __init__(self, node: Node, workers: int) -> None:
        self.node = node
        self.admit = Admit(node, workers)
        self.sessions = sessions_of(node)
        self.origins = OriginChecker(node.config.client.allowed_origins)

    def cors(self, request: web.BaseRequest, headers: dict[str, str]) -> None:
        headers.update(cors(request, self.origins))

    async def _stream(
        self, request: web.Request, name: str, body: bytes, protobuf: bool, headers: dict[str, str]
    ) -> web.StreamResponse:
        headers.update(STREAM_HEADERS)
        if request.version.major == 1:
            headers["Connection"] = "keep-alive"
        if name == SSE:
            headers["Content-Type"] = "text/event-stream; charset=utf-8"
        else:  # what Go sniffs from the first write
            headers["Content-Type"] = (
                "application/octet-stream" if protobuf else "text/plain; charset=utf-8"
            )
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        if name == SSE:
            await response.write(b"\r\n")
            framer = frame_sse
        else:
            framer = frame_http_stream_protobuf if protobuf else frame_http_stream_json
        conn = StreamConnection(self.node, response, PROTOBUF if protobuf else JSON, name, framer)
        session = self.sessions.open(conn.client)
        try:
            conn.client.on_frame(body)  # an empty one: 3501, as HandleReadFrame decides
            await conn.serve(request)
        finally:
            self.sessions.close(session)
        return response

    async def http_stream(self, request: web.Request) -> web.StreamResponse:
        """centrifuge ``HTTPStreamHandler.ServeHTTP``."""
        if (refused := self.admit.refused()) is not None:
            return refused
        headers: dict[str, str] = {}
        self.cors(request, headers)
        if request.method == "OPTIONS":
            headers.update(
                {"Access-Control-Max-Age": "300", "Access-Control-Allow-Methods": "POST, OPTIONS"}
            )
            return web.Response(status=204, headers=headers)
        if request.method != "POST":
            return web.Response(status=405, headers=headers)
        protobuf = request.headers.get("Content-Type") == "application/octet-stream"
        body = await read_body(request, self.node.config.http_stream.max_request_body_size)
        if body is None:
            return web.Response(status=413, headers=headers)
        return await self._stream(request, HTTP_STREAM, body, protobuf, headers)

    async def sse(self, request: web.Request) -> web.StreamResponse:
        """centrifuge ``SSEHandler.ServeHTTP`` (JSON only; GET reads ``cf_connect``)."""
        if (refused := self.admit.refused()) is not None:
            return refused
        headers: dict[str, str] = {}
        self.cors(request, headers)
        if request.method == "GET":
            body = request.query.get(_CONNECT_PARAM, "").encode()
            if not body:
                return web.Response(status=400, headers=headers)
        elif request.method == "POST":
            read = await read_body(request, self.node.config.sse.max_request_body_size)
            if read is None:
                return web.Response(status=413, headers=headers)
            body = read
        else:
            return web.Response(status=405, headers=headers)
        return await self._stream(request, SSE, body, False, headers)

    async def emulation(self, request: web.Request) -> web.StreamResponse:
        """centrifuge ``EmulationHandler.ServeHTTP``: 204 once the command is passed on."""
        headers: dict[str, str] = {}
        self.cors(request, headers)
        if request.method == "OPTIONS":
            headers.update(
                {"Access-Control-Max-Age": "300", "Access-Control-Allow-Methods": "POST, OPTIONS"}
            )
            return web.Response(status=204, headers=headers)
        if request.method != "POST":
            return web.Response(status=405, headers=headers)
        body = await read_body(request, self.node.config.emulation.max_request_body_size)
        if body is None:
            return web.Response(status=413, headers=headers)
        protobuf = request.headers.get("Content-Type") == "application/octet-stream"
        try:
            req = parse_emulation_request(body, protobuf)
        except (ValueError, UnicodeDecodeError) as exc:
            log.info("can't unmarshal emulation request: %s", exc)
            return web.Response(status=400, headers=headers)
        if not self._known_node(req["node"]):
            return web.Response(status=404, headers=headers)
        client = self.sessions.clients.get(req["session"])
        if client is not None:
            await self.sessions.on_control(req)  # held here: no broadcast
        else:
            await self.node.control(CONTROL_OP, req)
        return web.Response(status=204, headers=headers)

    def _known_node(self, node_id: str) -> bool:
        """``n.nodes.get(req.Node)``: this node, or a node of the cluster heard from."""
        if node_id == self.node.uid:
            return True
        live_peers = getattr(self.node.link, "live_peers", None)
        if live_peers is None:
            return False
        return any(key.rsplit(".", 1)[0] == node_id for key in live_peers())


def setup(app: web.Application, node: Node, handlers: frozenset[str], workers: int = 1) -> None:
    """Register the emulation endpoints this listener serves (``ports.py``)."""
    endpoints = _Endpoints(node, workers)
    for name, cfg_prefix, handler in (
        (HTTP_STREAM, node.config.http_stream.handler_prefix, endpoints.http_stream),
        (SSE, node.config.sse.handler_prefix, endpoints.sse),
        (EMULATION, node.config.emulation.handler_prefix, endpoints.emulation),
    ):
        if name in handlers:
            path = cfg_prefix.rstrip("/") or "/"
            app.router.add_route("*", path, handler)
