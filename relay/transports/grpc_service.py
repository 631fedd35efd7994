"""The ``CentrifugoApi`` gRPC service: protobuf requests into ``Executor`` calls and back.

Imported by ``grpc_api.GrpcAPI.start`` only, so grpc and protobuf load when
``grpc_api.enabled``. Sources: centrifugo ``internal/api/grpc.go`` (API key, error mode),
``internal/api/grpc_handler_gen.go`` (one handler per method), ``internal/api/api.go``
(``Batch`` and the command order of ``processCmd``), ``internal/apiproto/errors.go``
(``MapErrorToGRPCCode``).

* Every reply is OK and carries ``error`` or ``result`` (an empty ``result`` message is
  still sent, as Go sets it); in transport error mode (``grpc_api.error_mode`` or metadata
  ``x-centrifugo-error-mode: transport``) an error is the call's status instead, with the
  API error packed in the ``grpc-status-details-bin`` trailer. Batch never uses it.
* Requests become what ``Executor.call`` takes over HTTP: a dict of the set fields (a
  ``PublishRequest`` for publish). ``bytes`` fields stay bytes; publication ``data``
  travels as if it came in ``b64data``: stored as sent, marked JSON or binary by content.
* ``presence`` and ``history`` are answered here, not by the executor: its replies parse
  stored data as JSON for HTTP, while gRPC returns the stored bytes as they are.
* Methods relay's HTTP API does not have (Centrifugo PRO's, map and shared poll
  channels) answer UNIMPLEMENTED ``method X not implemented``, as Go's generated stubs do.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message

from relay.api import Executor
from relay.api.grpc import centrifugo_api_pb2 as pb
from relay.api.grpc import rpc_status_pb2
from relay.api.payloads import Result, error_dict
from relay.config.tree import GrpcAPIConfig
from relay.errors import (
    API_ERROR_NOT_FOUND,
    ERROR_INTERNAL,
    Error,
    ReplyError,
)
from relay.node import Node
from relay.protocol.api_requests import publish_request
from relay.protocol.messages import ClientInfo
from relay.protocol.schema import API_MESSAGES

__all__ = ["SERVICE", "CentrifugoApiService", "UnknownMethods", "message_params"]

log = logging.getLogger("relay.grpc_api")

SERVICE = "centrifugal.centrifugo.api.CentrifugoApi"
PROTOCOL = "grpc"  # the ``protocol`` label of the API metrics, as Centrifugo's executor
DETAILS_KEY = "grpc-status-details-bin"

#: gRPC method -> relay's API method (the ones relay's HTTP API serves).
METHODS: dict[str, str] = {
    "Batch": "batch",
    "Publish": "publish",
    "Broadcast": "broadcast",
    "Subscribe": "subscribe",
    "Unsubscribe": "unsubscribe",
    "Disconnect": "disconnect",
    "Presence": "presence",
    "PresenceStats": "presence_stats",
    "History": "history",
    "HistoryRemove": "history_remove",
    "Info": "info",
    "RPC": "rpc",
    "Refresh": "refresh",
    "Channels": "channels",
}

#: The first set field of a batch ``Command`` picks its method, in ``processCmd`` order
#: (history before presence, unlike the field numbers). Others (map, PRO): 104.
BATCH_ORDER: tuple[str, ...] = (
    "publish",
    "broadcast",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "history",
    "history_remove",
    "presence",
    "presence_stats",
    "info",
    "rpc",
    "refresh",
    "channels",
)

#: API error code -> status in transport error mode (apiproto ``MapErrorToGRPCCode``).
TRANSPORT_CODES: dict[int, grpc.StatusCode] = {
    100: grpc.StatusCode.INTERNAL,
    102: grpc.StatusCode.NOT_FOUND,
    104: grpc.StatusCode.NOT_FOUND,
    107: grpc.StatusCode.INVALID_ARGUMENT,
    108: grpc.StatusCode.INVALID_ARGUMENT,
    112: grpc.StatusCode.OUT_OF_RANGE,
    113: grpc.StatusCode.ALREADY_EXISTS,
}

#: Field names relay's request tables know, per message (PRO-only fields are dropped,
#: as the HTTP decoder drops keys it does not know).
_KNOWN_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(f.name for f in fields) for name, fields in API_MESSAGES.items()
}
#: relay method -> the protobuf class of its result (the ``Reply`` field's type).
_RESULTS: dict[str, type[Message]] = {
    field.name: getattr(pb, field.message_type.name)
    for field in pb.Reply.DESCRIPTOR.fields
    if field.name in METHODS.values() and field.message_type is not None
}

Context = grpc.aio.ServicerContext[Any, Any]
_Behavior = Callable[[Any, Context], Awaitable[Message]]


def _decoding(request_cls: type[Message], behavior: _Behavior) -> _Behavior:
    """Parse the request here, not in grpc: a malformed one is INTERNAL ``grpc: error
    unmarshalling request`` (before the key check, as in Go) and logs no traceback."""

    async def decoded(raw: bytes, context: Context) -> Message:
        try:
            request = request_cls.FromString(raw)
        except DecodeError:
            await context.abort(grpc.StatusCode.INTERNAL, _UNMARSHAL)
        return await behavior(request, context)

    return decoded


_UNMARSHAL = "grpc: error unmarshalling request: proto: cannot parse invalid wire-format data"


class UnknownMethods(grpc.GenericRpcHandler):
    """Registered last: a call no other handler took is UNIMPLEMENTED with Go's texts."""

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        if service == SERVICE:
            text = f"unknown method {method} for service {SERVICE}"
        else:
            text = f"unknown service {service}"

        async def behavior(raw: bytes, context: Context) -> Message:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, text)

        return grpc.unary_unary_rpc_method_handler(behavior)


def message_params(msg: Message) -> dict[str, Any]:
    """The set fields of ``msg`` as the HTTP decoder leaves a request: a zero scalar or an
    unset message is absent, nested messages are dicts, ``bytes`` stay bytes."""
    known = _KNOWN_FIELDS.get(msg.DESCRIPTOR.name)
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        if known is not None and fd.name not in known:
            continue
        sub = fd.message_type
        if sub is not None and sub.GetOptions().map_entry:
            nested = sub.fields_by_name["value"].message_type is not None
            out[fd.name] = {k: message_params(v) if nested else v for k, v in value.items()}
        elif fd.is_repeated:
            out[fd.name] = [message_params(v) if sub is not None else v for v in value]
        elif sub is not None:
            out[fd.name] = message_params(value)
        else:
            out[fd.name] = value
    return out


def _bytes_data(params: dict[str, Any]) -> dict[str, Any]:
    """Publication ``data`` goes to the executor as ``b64data`` would: kept byte for byte
    (no newline stripping, as the raw JSON of an HTTP body gets) and marked JSON or binary
    by its content, as a protobuf client's publish. ``b64data`` set by the caller wins."""
    data = params.pop("data", b"")
    if data and not params.get("b64data"):
        params["b64data"] = base64.b64encode(data).decode("ascii")
    return params


def request_params(method: str, msg: Message) -> Any:
    """What ``Executor.call(method, ..., decoded=True)`` takes for the request ``msg``."""
    params = message_params(msg)
    if method == "publish":
        return publish_request(_bytes_data(params), None)
    if method == "broadcast":
        return _bytes_data(params)
    return params


def _client_info(info: ClientInfo) -> pb.ClientInfo:
    return pb.ClientInfo(
        user=info.user,
        client=info.client,
        conn_info=info.conn_info or b"",
        chan_info=info.chan_info or b"",
    )


def _set_error(target: pb.Error, error: Error) -> None:
    target.code = error.code
    target.message = error.message


class CentrifugoApiService:
    """The service of one worker: its node, its executor, the ``grpc_api`` config."""

    def __init__(self, node: Node, executor: Executor, config: GrpcAPIConfig) -> None:
        self.node = node
        self.executor = executor
        self.key = ("apikey " + config.key).encode() if config.key else b""
        self.transport_mode = config.error_mode == "transport"
        self._own: dict[str, Callable[[dict[str, Any]], Awaitable[Message]]] = {
            "presence": self._presence,
            "history": self._history,
        }

    # ---- registration ------------------------------------------------------------------
    def handler(self) -> grpc.GenericRpcHandler:
        """Handlers for every method of the service (UNIMPLEMENTED where relay has none)."""
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
        for desc in pb.DESCRIPTOR.services_by_name["CentrifugoApi"].methods:
            request_cls: type[Message] = getattr(pb, desc.input_type.name)
            response_cls: type[Message] = getattr(pb, desc.output_type.name)
            method = METHODS.get(desc.name)
            if method is None:
                behavior = self._unimplemented(desc.name)
            elif method == "batch":
                behavior = self._batch_behavior
            else:
                behavior = self._unary(method, response_cls)
            handlers[desc.name] = grpc.unary_unary_rpc_method_handler(
                _decoding(request_cls, behavior),
                response_serializer=response_cls.SerializeToString,
            )
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    # ---- call pipeline -----------------------------------------------------------------
    async def _authorize(self, context: Context) -> None:
        """``authorization: apikey <key>`` (the first value, compared in constant time)."""
        if not self.key:
            return
        for name, value in context.invocation_metadata() or ():
            if name == "authorization":
                given = value if isinstance(value, bytes) else value.encode("utf-8")
                if hmac.compare_digest(given, self.key):
                    return
                break
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unauthenticated")

    def _transport(self, context: Context) -> bool:
        if self.transport_mode:
            return True
        for name, value in context.invocation_metadata() or ():
            if name == "x-centrifugo-error-mode":
                return value == "transport"
        return False

    async def _abort(self, context: Context, error: Error) -> None:
        code = TRANSPORT_CODES.get(error.code, grpc.StatusCode.INTERNAL)
        detail = any_pb2.Any()
        detail.Pack(pb.Error(code=error.code, message=error.message))
        status = rpc_status_pb2.Status(code=code.value[0], message=error.message, details=[detail])
        await context.abort(
            code, error.message, trailing_metadata=((DETAILS_KEY, status.SerializeToString()),)
        )

    def _unimplemented(self, name: str) -> _Behavior:
        async def behavior(request: Any, context: Context) -> Message:
            await self._authorize(context)
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"method {name} not implemented")

        return behavior

    def _unary(self, method: str, response_cls: type[Message]) -> _Behavior:
        async def behavior(request: Any, context: Context) -> Message:
            await self._authorize(context)
            response = response_cls()
            reply: Any = response  # every response message has ``error`` and ``result``
            try:
                result = await self.run(method, request_params(method, request))
            except ReplyError as exc:
                if self._transport(context):
                    await self._abort(context, exc.error)
                _set_error(reply.error, exc.error)
                return response
            reply.result.CopyFrom(result)
            reply.result.SetInParent()
            return response

        return behavior

    async def run(self, method: str, params: Any) -> Message:
        """One method's result message; ``ReplyError`` as over HTTP."""
        own = self._own.get(method)
        if own is not None:
            return await self._measured(method, own, params)
        result = await self.executor.call(method, params, PROTOCOL, decoded=True)
        try:
            return _RESULTS[method](**result)
        except Exception as exc:  # a result the message cannot hold: a relay bug
            log.exception("cannot encode the gRPC reply of %s", method)
            raise ReplyError(ERROR_INTERNAL) from exc

    async def _measured(
        self,
        method: str,
        fn: Callable[[dict[str, Any]], Awaitable[Message]],
        params: dict[str, Any],
    ) -> Message:
        """``Executor.call``'s metrics and error rules around a method answered here."""
        metrics = self.node.metrics
        started = time.monotonic()
        try:
            return await fn(params)
        except ReplyError as exc:
            metrics.api_error(method, str(exc.error.code), PROTOCOL)
            raise
        except Exception as exc:
            log.exception("error executing API method %s", method)
            metrics.api_error(method, str(ERROR_INTERNAL.code), PROTOCOL)
            raise ReplyError(ERROR_INTERNAL) from exc
        finally:
            metrics.api_command(method, time.monotonic() - started, PROTOCOL)

    # ---- presence and history: stored bytes as they are ----------------------------------
    async def _presence(self, params: dict[str, Any]) -> Message:
        entries = await self.executor.read_presence(params)  # type: ignore[arg-type]
        return pb.PresenceResult(
            presence={cid: _client_info(info) for cid, info in entries.items()}
        )

    async def _history(self, params: dict[str, Any]) -> Message:
        res = await self.executor.read_history(params)  # type: ignore[arg-type]
        out = pb.HistoryResult(epoch=res.position.epoch, offset=res.position.offset)
        for p in res.publications:
            item = out.publications.add(data=p.data, offset=p.offset, tags=p.tags or {})
            if p.info is not None:
                item.info.CopyFrom(_client_info(p.info))
        return out

    # ---- batch --------------------------------------------------------------------------
    async def _batch_behavior(self, request: pb.BatchRequest, context: Context) -> Message:
        await self._authorize(context)
        return await self.batch(request)

    async def batch(self, request: pb.BatchRequest) -> pb.BatchResponse:
        """One reply per command, in order. Runs of publishes go to ``Executor.batch``
        together (one bus message per shard owner, as over HTTP); ``parallel`` runs every
        command at once."""
        commands: list[tuple[str | None, Any]] = []
        for cmd in request.commands:
            method = next((m for m in BATCH_ORDER if cmd.HasField(m)), None)
            params = None if method is None else request_params(method, getattr(cmd, method))
            commands.append((method, params))
        replies = [pb.Reply() for _ in commands]
        if request.parallel:
            publishes = [i for i, (m, _) in enumerate(commands) if m == "publish"]
            others = [i for i, (m, _) in enumerate(commands) if m != "publish"]
            await asyncio.gather(
                self._publish_run(publishes, commands, replies),
                *(self._batch_one(commands[i], replies[i]) for i in others),
            )
        else:
            run: list[int] = []
            for i, command in enumerate(commands):
                if command[0] == "publish":
                    run.append(i)
                    continue
                await self._publish_run(run, commands, replies)
                run = []
                await self._batch_one(command, replies[i])
            await self._publish_run(run, commands, replies)
        return pb.BatchResponse(replies=replies)

    async def _publish_run(
        self, run: list[int], commands: list[tuple[str | None, Any]], replies: list[pb.Reply]
    ) -> None:
        if not run:
            return
        try:
            result = await self.executor.batch([commands[i][1] for i in run])
            outcomes: list[Result] = result["replies"]
        except Exception:
            log.exception("error executing API method publish")
            outcomes = [{"error": error_dict(ERROR_INTERNAL)}] * len(run)
        for i, outcome in zip(run, outcomes, strict=True):
            reply = replies[i]
            error = outcome.get("error")
            if error is not None:
                reply.error.code = error["code"]
                reply.error.message = error["message"]
                continue
            reply.publish.CopyFrom(pb.PublishResult(**outcome["publish"]))
            reply.publish.SetInParent()

    async def _batch_one(self, command: tuple[str | None, Any], reply: pb.Reply) -> None:
        method, params = command
        try:
            if method is None:
                self.node.metrics.api_error("unknown", str(API_ERROR_NOT_FOUND.code), PROTOCOL)
                raise ReplyError(API_ERROR_NOT_FOUND)
            result = await self.run(method, params)
        except ReplyError as exc:
            _set_error(reply.error, exc.error)
            return
        target: Message = getattr(reply, method)
        target.CopyFrom(result)
        target.SetInParent()
