"""HTTP server API, health and Prometheus endpoints on the aiohttp application.

Spec: spec/server-surface.md §4.1 (transport, auth, statuses), §4.4 (batch), §4.5
(legacy ``POST /api`` stream), §8 (metrics, health). Sources: centrifugo
``internal/app/mux.go``, ``internal/middleware/{method,auth}.go``,
``internal/api/handler*.go``.

Request pipeline (numbered as Centrifugo's middleware chain):

1. unknown method path -> 404 ``404 page not found``;
2. not POST -> 405, empty body (before auth);
3. API key (``X-API-Key``, else ``Authorization: apikey K``, else ``?api_key=``) -> 401;
4. body decode against the method's schema -> 400 ``Bad Request``;
5. ``Executor.call`` -> 200 ``{"result": ...}`` / ``{"error": ...}``, or in transport
   error mode the error object with the HTTP status of ``TRANSPORT_STATUS``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Collection, Iterator
from typing import Any

from aiohttp import web

from relay.api import SCHEMAS, Executor, decode_body, error_dict
from relay.errors import API_ERROR_NOT_FOUND, ERROR_BAD_REQUEST, DecodeError, Error, ReplyError
from relay.node import Node
from relay.protocol import json_codec
from relay.protocol.json_decode import DECODER
from relay.transports import ports

__all__ = ["setup", "TRANSPORT_STATUS", "LEGACY_METHODS"]

log = logging.getLogger("relay.api")

#: Method names of Centrifugo's API enum that only Centrifugo PRO serves.
PRO_METHODS = frozenset(
    "connections update_user_status get_user_status delete_user_status block_user "
    "unblock_user revoke_token invalidate_user_tokens device_register device_update "
    "device_remove device_list device_topic_list device_topic_update user_topic_list "
    "user_topic_update send_push_notification update_push_status cancel_push "
    "rate_limit".split()
)

#: API error code -> HTTP status in transport error mode (apiproto ``MapErrorToHTTPCode``).
TRANSPORT_STATUS = {100: 500, 102: 404, 104: 404, 107: 400, 108: 400, 112: 416, 113: 409}
#: Legacy endpoint method numbers (apiproto ``Command_MethodType``).
LEGACY_METHODS = (
    "publish",
    "broadcast",
    "unsubscribe",
    "disconnect",
    "presence",
    "presence_stats",
    "history",
    "history_remove",
    "channels",
    "info",
    "rpc",
    "subscribe",
    "refresh",
)
JSON_TYPE = "application/json"
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NO_TRANSPORT_MODE = frozenset({"batch"})


@web.middleware
async def not_found_text(request: web.Request, handler: Any) -> web.StreamResponse:
    """Unknown paths answer as Go's ServeMux does: ``404 page not found``."""
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except web.HTTPNotFound:
        return plain(404, "404 page not found\n")


def setup(
    app: web.Application,
    node: Node,
    executor: Executor,
    handlers: Collection[str] = (ports.HEALTH, ports.PROMETHEUS, ports.API),
) -> None:
    """Register those of ``/health``, ``/metrics`` and the API routes that ``handlers``
    names (``transports/ports.py`` decides which port serves which)."""
    cfg = node.config
    app.middlewares.append(not_found_text)
    if ports.HEALTH in handlers:
        app.router.add_route("*", _prefix(cfg.health.handler_prefix, "/health"), _health)
    if ports.PROMETHEUS in handlers:
        handler = _MetricsHandler(node)
        app.router.add_route("*", _prefix(cfg.prometheus.handler_prefix, "/metrics"), handler)
    if ports.API not in handlers:
        return
    api = _APIHandler(node, executor)
    prefix = cfg.http_api.handler_prefix.rstrip("/")
    app.router.add_route("*", prefix or "/", api.legacy)
    app.router.add_route("*", prefix + "/{method}", api.method)


def _prefix(configured: str, default: str) -> str:
    return configured.rstrip("/") or default


async def _health(request: web.Request) -> web.Response:
    """Always 200 ``{}``, any method, no dependency checks."""
    return web.Response(body=b"{}", content_type=JSON_TYPE)


class _MetricsHandler:
    """Prometheus text exposition of the node's registry (any method)."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def __call__(self, request: web.Request) -> web.Response:
        resp = web.Response(body=self.node.metrics.exposition())
        resp.headers["Content-Type"] = PROMETHEUS_TYPE
        return resp


def _json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=json_codec.dumps(value), status=status, content_type=JSON_TYPE)


#: per epoch, the end of a publish reply after its offset: ``,"epoch":"E"}}``
_PUBLISH_TAILS: dict[str, bytes] = {}


def _publish_tail(epoch: str) -> bytes:
    if len(_PUBLISH_TAILS) > 10_000:
        _PUBLISH_TAILS.clear()
    tail = _PUBLISH_TAILS[epoch] = b',"epoch":%s}}' % json_codec.dumps(epoch)
    return tail


def encode_batch_result(result: dict[str, Any]) -> bytes:
    """The batch answer, byte for byte as ``json_codec.dumps`` writes it, faster for
    the common reply of a publish into a history stream:
    ``{"publish":{"offset":N,"epoch":"E"}}`` is written with a per-epoch tail."""
    replies = result.get("replies")
    if replies is None or len(result) != 1:
        return json_codec.dumps(result)
    parts: list[bytes] = []
    add = parts.append
    tails = _PUBLISH_TAILS
    dumps = json_codec.dumps
    for reply in replies:
        position = reply.get("publish")
        if type(position) is dict and len(reply) == 1 and len(position) == 2:
            offset, epoch = position.get("offset"), position.get("epoch")
            if type(offset) is int and type(epoch) is str:
                tail = tails.get(epoch) or _publish_tail(epoch)
                add(b'{"publish":{"offset":%d%s' % (offset, tail))
                continue
        elif position == {} and len(reply) == 1:  # into a channel without history
            add(b'{"publish":{}}')
            continue
        add(dumps(reply))
    return b'{"replies":[' + b",".join(parts) + b"]}"


def plain(status: int, text: str) -> web.Response:
    """A ``text/plain`` answer, as Go's ``http.Error`` writes them."""
    resp = web.Response(body=text.encode(), status=status)
    resp.headers["Content-Type"] = "text/plain; charset=utf-8"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


class _APIHandler:
    """The API routes of one node: per-method endpoints and the legacy stream endpoint."""

    def __init__(self, node: Node, executor: Executor) -> None:
        self.node = node
        self.executor = executor
        cfg = node.config.http_api
        self.insecure = cfg.insecure
        self.key = cfg.key.encode()
        self.transport_mode = cfg.error_mode == "transport"

    # ---- middleware -----------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        """Centrifugo's API key check (constant-time comparisons)."""
        if self.insecure:
            return True
        if not self.key:
            log.error("API key is empty")
            return False
        header = request.headers.get("X-API-Key", "")
        if header:
            valid = self._matches(header)
        else:
            parts = request.headers.get("Authorization", "").split()
            valid = len(parts) == 2 and parts[0].lower() == "apikey" and self._matches(parts[1])
        if not valid and request.query_string:
            valid = self._matches(request.query.get("api_key", ""))
        return valid

    def _matches(self, candidate: str) -> bool:
        return hmac.compare_digest(self.key, candidate.encode("utf-8", "surrogateescape"))

    def _gate(self, request: web.Request) -> web.Response | None:
        """405 for non-POST, 401 for a bad key; ``None`` lets the request through."""
        if request.method != "POST":
            return web.Response(status=405)
        if not self._authorized(request):
            return web.Response(status=401)
        return None

    def _transport_mode(self, request: web.Request, method: str) -> bool:
        if method in _NO_TRANSPORT_MODE:
            return False
        header = request.headers.get("X-Centrifugo-Error-Mode", "")
        return self.transport_mode or header.lower() == "transport"

    # ---- POST <prefix>/<method> -------------------------------------------------------------
    async def method(self, request: web.Request) -> web.Response:
        """One API method; the body is that method's request object."""
        method = request.match_info["method"]
        if method not in SCHEMAS:
            return plain(404, "404 page not found\n")
        denied = self._gate(request)
        if denied is not None:
            return denied
        body = await request.read()
        try:
            params = decode_body(method, body)
        except (ValueError, RecursionError, DecodeError):
            self.node.metrics.api_error(method, "unmarshal")
            return plain(400, "Bad Request\n")
        try:
            result = await self.executor.call(method, params, decoded=True)
        except ReplyError as exc:
            return self._error_response(request, method, exc.error)
        if method == "batch":
            return web.Response(body=encode_batch_result(result), content_type=JSON_TYPE)
        return _json_response({"result": result})

    def _error_response(self, request: web.Request, method: str, error: Error) -> web.Response:
        if self._transport_mode(request, method):
            return _json_response(error_dict(error), TRANSPORT_STATUS.get(error.code, 500))
        return _json_response({"error": error_dict(error)})

    # ---- POST <prefix> (legacy) -------------------------------------------------------------
    async def legacy(self, request: web.Request) -> web.Response:
        """A stream of ``{"id","method","params"}`` commands; one reply per line."""
        denied = self._gate(request)
        if denied is not None:
            return denied
        return await legacy_stream(self.node, self.executor, request, "http")


async def legacy_stream(
    node: Node, executor: Executor, request: web.Request, protocol: str
) -> web.Response:
    """Answer a legacy ``POST /api`` stream (also the admin UI's ``/admin/api``)."""
    if node.shutting_down:
        return plain(503, "Service Unavailable\n")
    try:
        commands = list(_iter_stream(await request.read()))
    except (ValueError, RecursionError):
        node.metrics.api_error("legacy", "unmarshal", protocol)
        return plain(400, "Bad Request\n")
    replies = [await _legacy_one(executor, cmd) for cmd in commands]
    return web.Response(
        body=b"\n".join(replies), content_type=JSON_TYPE, headers={"Cache-Control": "no-store"}
    )


async def _legacy_one(executor: Executor, command: dict[str, Any]) -> bytes:
    reply: dict[str, Any] = {}
    if command["id"]:
        reply["id"] = command["id"]
    method = command["method"]
    try:
        if method is None:
            raise ReplyError(API_ERROR_NOT_FOUND)
        if command["params"] is None:  # Go fails to unmarshal absent params: 107
            raise ReplyError(ERROR_BAD_REQUEST)
        reply["result"] = await executor.call(method, command["params"])
    except ReplyError as exc:
        reply["error"] = error_dict(exc.error)
    return json_codec.dumps(reply)


def _iter_stream(body: bytes) -> Iterator[dict[str, Any]]:
    """Decode back-to-back JSON commands; ``ValueError`` on a malformed stream or empty body."""
    text = body.decode("utf-8", errors="replace")
    decoder = DECODER
    pos, end, seen = 0, len(text), False
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            break
        value, pos = decoder.raw_decode(text, pos)
        seen = True
        yield _legacy_command(value)
    if not seen:
        raise ValueError("empty body")


def _legacy_command(value: Any) -> dict[str, Any]:
    """Normalize one legacy command: ``id`` (uint32), ``method`` (name/number), ``params``."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError("command object expected")
    fields = {k.lower(): v for k, v in value.items()}
    cid = fields.get("id") or 0
    if isinstance(cid, bool) or not isinstance(cid, int) or not 0 <= cid < 2**32:
        raise ValueError("bad id")
    params = fields.get("params")
    return {"id": cid, "method": _legacy_method(fields.get("method")), "params": params}


def _legacy_method(value: Any) -> str | None:
    """A method name (case-insensitive) or number; ``None`` when unknown (104)."""
    if value is None:
        return LEGACY_METHODS[0]
    if isinstance(value, str):
        name = value.lower()
        if name in LEGACY_METHODS:
            return name
        if name in PRO_METHODS:  # in Centrifugo's enum, not routed in OSS: 104
            return None
        raise ValueError("unknown method")  # not an enum name: the whole request is 400
    if isinstance(value, int) and not isinstance(value, bool):
        return LEGACY_METHODS[value] if 0 <= value < len(LEGACY_METHODS) else None
    raise ValueError("bad method")
