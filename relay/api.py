"""The server API executor: one coroutine per Centrifugo server API method.

Transport-agnostic (like centrifugo ``internal/api/api.go``): the HTTP handlers in
``relay/transports/http_api.py`` decode a body, call ``Executor.call`` and encode the
result. Spec: spec/server-surface.md §4 (target v6.6.2).

Rules, written once:

* A request is a JSON object as ``json.loads`` gives it. ``decode_request`` checks its
  field types against ``SCHEMAS`` (Go ``encoding/json`` semantics: unknown keys
  ignored, names matched case-insensitively, ``null`` = zero value, wrong type = error)
  and returns a normalized dict with canonical keys only.
* Every method returns its result dict or raises ``ReplyError``; ``Executor.call``
  adds metrics and turns any other exception into 100 (logged once, never re-raised).
* Raw-JSON fields (``data``, ``info``) are re-encoded compactly; the JSON value
  ``null`` counts as present. Stored raw JSON bytes come back as parsed JSON values.
* Connection actions (subscribe, unsubscribe, disconnect, refresh) reach this node's
  connections of exactly ``user`` (``""`` = anonymous ones), narrowed by ``client``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from relay.engines.base import PublishOptions
from relay.errors import (
    API_ERROR_NOT_FOUND,
    DISCONNECT_FORCE_NO_RECONNECT,
    ERROR_BAD_REQUEST,
    ERROR_INTERNAL,
    ERROR_NOT_AVAILABLE,
    ERROR_UNRECOVERABLE_POSITION,
    DecodeError,
    Disconnect,
    Error,
    ReplyError,
)
from relay.protocol import json_codec
from relay.protocol.api_requests import (
    PublishRequest,
    decode_batch_envelope,
    decode_publish_command_fast,
    decode_publish_fast,
    publish_request,
    raw_data,
)
from relay.protocol.channels import Override
from relay.protocol.glob import compile_glob
from relay.protocol.messages import ClientInfo, HistoryFilter, Publication, StreamPosition

if TYPE_CHECKING:
    from relay.config import ChannelOptions
    from relay.hub import Connection
    from relay.node import Node

__all__ = [
    "Executor",
    "SCHEMAS",
    "METHODS",
    "decode_body",
    "decode_request",
    "error_dict",
    "load_json",
]

log = logging.getLogger("relay.api")

Request = dict[str, Any]
Result = dict[str, Any]
#: A field type: a kind name (see ``_CONVERTERS``) or a nested object schema.
Spec = str | dict[str, Any]

# ---- request schemas (centrifugo internal/apiproto/api.proto) --------------------------
_STREAM_POSITION: dict[str, Spec] = {"offset": "uint64", "epoch": "str"}
_BOOL_VALUE: dict[str, Spec] = {"value": "bool"}
_OVERRIDE: dict[str, Spec] = {
    key: _BOOL_VALUE
    for key in (
        "presence",
        "join_leave",
        "force_recovery",
        "force_positioning",
        "force_push_join_leave",
    )
}
_PUBLISH_FIELDS: dict[str, Spec] = {
    "data": "json",
    "b64data": "str",
    "skip_history": "bool",
    "tags": "map_str",
    "idempotency_key": "str",
    "delta": "bool",
    "version": "uint64",
    "version_epoch": "str",
}
_TARGET: dict[str, Spec] = {"user": "str", "client": "str", "session": "str"}
_CHANNEL: dict[str, Spec] = {"channel": "str"}

SCHEMAS: dict[str, dict[str, Spec]] = {
    "publish": {**_CHANNEL, **_PUBLISH_FIELDS},
    "broadcast": {"channels": "list_str", **_PUBLISH_FIELDS},
    "subscribe": {
        **_TARGET,
        **_CHANNEL,
        "expire_at": "int64",
        "info": "json",
        "b64info": "str",
        "data": "json",
        "b64data": "str",
        "recover_since": _STREAM_POSITION,
        "override": _OVERRIDE,
    },
    "unsubscribe": {**_TARGET, **_CHANNEL},
    "disconnect": {
        **_TARGET,
        "whitelist": "list_str",
        "disconnect": {"code": "uint32", "reason": "str"},
    },
    "refresh": {**_TARGET, "expired": "bool", "expire_at": "int64", "info": "json"},
    "presence": dict(_CHANNEL),
    "presence_stats": dict(_CHANNEL),
    "history": {**_CHANNEL, "limit": "int32", "since": _STREAM_POSITION, "reverse": "bool"},
    "history_remove": dict(_CHANNEL),
    "channels": {"pattern": "str"},
    "info": {},
    "rpc": {"method": "str", "params": "json"},
    "batch": {"commands": "commands", "parallel": "bool"},
}

#: Methods a batch command may name, in Centrifugo's lookup order.
METHODS: tuple[str, ...] = (
    "publish",
    "broadcast",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "presence",
    "presence_stats",
    "history",
    "history_remove",
    "info",
    "rpc",
    "refresh",
    "channels",
)
_COMMAND_SCHEMA: dict[str, Spec] = {m: m for m in METHODS}
_INT_BOUNDS = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
_ABSENT = object()


def load_json(body: bytes) -> Any:
    """Parse a request body strictly (no NaN/Infinity); ``ValueError`` if it is not JSON."""
    return json.loads(body.decode("utf-8", errors="replace"), parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def decode_body(method: str, body: bytes) -> Any:
    """The request of ``method`` from its HTTP body: ``ValueError``/``DecodeError`` -> 400.

    Canonical publish and batch bodies are decoded by msgspec (``api_requests``); the rest,
    and any batch element that is not a canonical publish, by the exact decoder below.
    """
    if method == "publish":
        fast = decode_publish_fast(body)
        if fast is not None:
            return fast
    elif method == "batch":
        envelope = decode_batch_envelope(body)
        if envelope is not None:
            commands = [
                decode_publish_command_fast(item) or _to_command(load_json(bytes(item)))
                for item in envelope.commands
            ]
            return {"commands": commands, "parallel": envelope.parallel}
    return decode_request(method, load_json(body))


def decode_request(method: str, body: Any) -> Any:
    """Check ``body`` against the schema of ``method``; raise ``DecodeError`` if it fails.

    A normalized dict with canonical keys, or a ``PublishRequest`` for ``publish``.
    """
    schema = SCHEMAS.get(method)
    if schema is None:
        raise DecodeError(f"unknown method {method!r}")
    params = _decode_object(schema, body)
    if method == "publish":
        return publish_request(params, _raw(params["data"]) if "data" in params else None)
    return params


def _decode_object(schema: dict[str, Spec], value: Any) -> Request:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError("object expected")
    out: Request = {}
    for key, item in value.items():
        name = key if key in schema else _lowered(schema).get(key.lower())
        if name is None:
            continue
        converted = _convert(schema[name], item)
        if converted is _ABSENT:
            out.pop(name, None)
        else:
            out[name] = converted
    return out


_LOWERED: dict[int, dict[str, str]] = {}


def _lowered(schema: dict[str, Spec]) -> dict[str, str]:
    """lower-cased field name -> field name (Go's case-insensitive JSON keys), per schema."""
    table = _LOWERED.get(id(schema))
    if table is None:
        table = _LOWERED[id(schema)] = {name.lower(): name for name in schema}
    return table


def _convert(spec: Spec, value: Any) -> Any:
    if isinstance(spec, dict):
        return _ABSENT if value is None else _decode_object(spec, value)
    if spec == "json":
        return value
    if value is None:
        return _ABSENT
    return _CONVERTERS[spec](value)


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise DecodeError(f"{what} expected")


def _to_str(value: Any) -> str:
    _check(isinstance(value, str), "string")
    return str(value)


def _to_bool(value: Any) -> bool:
    _check(isinstance(value, bool), "bool")
    return bool(value)


def _int_converter(kind: str) -> Callable[[Any], int]:
    low, high = _INT_BOUNDS[kind]

    def convert(value: Any) -> int:
        _check(isinstance(value, int) and not isinstance(value, bool), kind)
        _check(low <= value <= high, kind)
        return int(value)

    return convert


def _to_list_str(value: Any) -> list[str]:
    _check(isinstance(value, list), "list")
    return ["" if v is None else _to_str(v) for v in value]


def _to_map_str(value: Any) -> dict[str, str]:
    _check(isinstance(value, dict), "object")
    return {k: "" if v is None else _to_str(v) for k, v in value.items()}


#: A decoded batch element: a publish, another command ``{method: params}``, or ``null``.
BatchCommand = PublishRequest | Request | None


def _to_commands(value: Any) -> list[BatchCommand]:
    _check(isinstance(value, list), "list")
    return [_to_command(v) for v in value]


def _to_command(value: Any) -> BatchCommand:
    """One batch element; ``publish`` comes first in Centrifugo's lookup order."""
    if value is None:
        return None
    command = _decode_object(_COMMAND_SCHEMA, value)
    publish: PublishRequest | None = command.get("publish")
    return publish if publish is not None else command


def _method_converter(method: str) -> Callable[[Any], Request]:
    return lambda value: decode_request(method, value)


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": _to_str,
    "bool": _to_bool,
    "list_str": _to_list_str,
    "map_str": _to_map_str,
    "commands": _to_commands,
    **{kind: _int_converter(kind) for kind in _INT_BOUNDS},
    **{m: _method_converter(m) for m in METHODS},
}


# ---- payload helpers ---------------------------------------------------------------------
def error_dict(error: Error) -> Result:
    """The API's error object: ``{"code": N, "message": "..."}`` (no ``temporary``)."""
    return {"code": error.code, "message": error.message}


def _raw(value: Any) -> bytes:
    """A raw-JSON field's value as compact JSON bytes."""
    return json_codec.dumps(value)


def _raw_or_none(req: Request, key: str) -> bytes | None:
    return _raw(req[key]) if key in req else None


def _json_value(data: bytes) -> Any:
    """Stored raw JSON back to a value (binary payloads cannot travel over JSON: 100)."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReplyError(ERROR_INTERNAL) from exc


def _b64_payload(b64: str) -> tuple[bytes, bool]:
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ReplyError(ERROR_BAD_REQUEST) from exc
    return data, json_codec.is_json(data)


def _payload(req: Request) -> tuple[bytes, bool]:
    """Publication data and whether it is JSON: ``b64data`` wins when non-empty (107 if bad)."""
    b64 = req.get("b64data", "")
    if b64:
        return _b64_payload(b64)
    if "data" in req:
        return _raw(req["data"]), True
    return b"", True


def _publish_payload(req: PublishRequest) -> tuple[bytes, bool]:
    """As ``_payload``, for a typed publish request (raw ``data`` kept as sent)."""
    if req.b64data:
        return _b64_payload(req.b64data)
    return raw_data(req), True


def _client_info(info: ClientInfo) -> Result:
    out: Result = {"user": info.user, "client": info.client}
    if info.conn_info:
        out["conn_info"] = _json_value(info.conn_info)
    if info.chan_info:
        out["chan_info"] = _json_value(info.chan_info)
    return out


def _publication(pub: Publication) -> Result:
    out: Result = {}
    if pub.data:
        out["data"] = _json_value(pub.data)
    if pub.info is not None:
        out["info"] = _client_info(pub.info)
    if pub.offset:
        out["offset"] = pub.offset
    if pub.tags:
        out["tags"] = dict(pub.tags)
    return out


def _position(sp: StreamPosition) -> Result:
    out: Result = {}
    if sp.offset:
        out["offset"] = sp.offset
    if sp.epoch:
        out["epoch"] = sp.epoch
    return out


def _stream_position(value: Request | None) -> StreamPosition | None:
    if value is None:
        return None
    return StreamPosition(int(value.get("offset", 0)), str(value.get("epoch", "")))


def _override(value: Request | None) -> Override | None:
    if value is None:
        return None
    flags = {k: bool(v.get("value", False)) for k, v in value.items() if v is not None}
    return Override(**flags)


def _require_channel(req: Request) -> str:
    channel = req.get("channel", "")
    if not channel:
        raise ReplyError(ERROR_BAD_REQUEST)
    return str(channel)


_NO_REPLY: Result = {}
#: A method takes its decoded request: a normalized dict, or a ``PublishRequest``.
Method = Callable[[Any], Awaitable[Result]]
_ChannelMemo = dict[str, tuple["ChannelOptions", PublishOptions]]


class Executor:
    """Runs server API commands against one node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.methods: dict[str, Method] = {
            "publish": self.publish,
            "broadcast": self.broadcast,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "disconnect": self.disconnect,
            "refresh": self.refresh,
            "presence": self.presence,
            "presence_stats": self.presence_stats,
            "history": self.history,
            "history_remove": self.history_remove,
            "channels": self.channels,
            "info": self.info,
            "rpc": self.rpc,
            "batch": self._batch_request,
        }
        node.control_handlers.update(
            {
                "subscribe": self._subscribe_local,
                "unsubscribe": self._unsubscribe_local,
                "disconnect": self._disconnect_local,
                "refresh": self._refresh_local,
            }
        )

    # ---- dispatch ---------------------------------------------------------------------
    async def call(
        self, method: str, req: Any, protocol: str = "http", decoded: bool = False
    ) -> Result:
        """Run ``method``: validate ``req`` (107) unless already ``decoded``, execute,
        record metrics; 104 if unknown."""
        handler = self.methods.get(method)
        if handler is None:
            raise ReplyError(API_ERROR_NOT_FOUND)
        metrics = self.node.metrics
        started = time.monotonic()
        try:
            return await handler(req if decoded else self._decode(method, req))
        except ReplyError as exc:
            metrics.api_error(method, str(exc.error.code), protocol)
            raise
        except Exception as exc:
            log.exception("error executing API method %s", method)
            metrics.api_error(method, str(ERROR_INTERNAL.code), protocol)
            raise ReplyError(ERROR_INTERNAL) from exc
        finally:
            metrics.api_command(method, time.monotonic() - started, protocol)

    @staticmethod
    def _decode(method: str, req: Any) -> Any:
        try:
            return decode_request(method, req)
        except DecodeError as exc:
            raise ReplyError(ERROR_BAD_REQUEST) from exc

    # ---- publishing -------------------------------------------------------------------
    async def publish(self, req: PublishRequest) -> Result:
        """Publish into one channel: ``{"offset", "epoch"}`` (both omitted without history)."""
        if not req.channel:
            raise ReplyError(ERROR_BAD_REQUEST)
        data, data_json = _publish_payload(req)
        node = self.node
        opts = node.rules.resolve(req.channel)
        node.check_data_format(opts, data, data_json)
        pub = Publication(data=data, tags=req.tags or None, data_json=data_json)
        sp = await self._publish(req.channel, pub, opts, req.skip_history, req.idempotency_key)
        return _position(sp)

    async def _publish_one(
        self, channel: str, data: bytes, data_json: bool, req: Request
    ) -> Result:
        node = self.node
        opts = node.rules.resolve(channel)
        node.check_data_format(opts, data, data_json)
        pub = Publication(data=data, tags=req.get("tags") or None, data_json=data_json)
        skip = bool(req.get("skip_history", False))
        sp = await self._publish(channel, pub, opts, skip, str(req.get("idempotency_key", "")))
        return _position(sp)

    async def _publish(
        self, channel: str, pub: Publication, opts: ChannelOptions, skip: bool, key: str
    ) -> StreamPosition:
        try:
            return await self.node.publish(
                channel, pub, opts, skip_history=skip, idempotency_key=key
            )
        except Exception as exc:
            log.error("publish to %s failed: %r", channel, exc)
            raise ReplyError(ERROR_INTERNAL) from exc

    async def broadcast(self, req: Request) -> Result:
        """Publish into many channels concurrently; per-channel responses in request order."""
        channels: list[str] = req.get("channels") or []
        if not channels:
            raise ReplyError(ERROR_BAD_REQUEST)
        data, data_json = _payload(req)
        responses = await asyncio.gather(
            *(self._broadcast_one(ch, data, data_json, req) for ch in channels)
        )
        return {"responses": list(responses)}

    async def _broadcast_one(
        self, channel: str, data: bytes, data_json: bool, req: Request
    ) -> Result:
        try:
            if not channel:
                raise ReplyError(ERROR_BAD_REQUEST)
            return {"result": await self._publish_one(channel, data, data_json, req)}
        except ReplyError as exc:
            self.node.metrics.api_error("broadcast_publish", str(exc.error.code))
            return {"error": error_dict(exc.error)}

    # ---- connection actions ------------------------------------------------------------
    def _targets(self, req: Request) -> list[Connection]:
        """This node's connections of exactly ``user``, narrowed to ``client`` if set."""
        return self.node.hub.user_connections(req.get("user", ""), req.get("client", ""))

    async def subscribe(self, req: Request) -> Result:
        """Server-side subscribe of matching connections on every worker (b64 ignored, v6.6)."""
        self.node.rules.resolve(_require_channel(req))
        await self.node.control("subscribe", req)
        return {}

    async def _subscribe_local(self, req: Request) -> None:
        channel = req["channel"]
        expire_at = req.get("expire_at", 0)
        for client in self._targets(req):
            try:
                await client.subscribe_server(
                    channel,
                    info=_raw_or_none(req, "info"),
                    data=_raw_or_none(req, "data"),
                    override=_override(req.get("override")),
                    expire_at=float(expire_at) if expire_at else None,
                    recover_since=_stream_position(req.get("recover_since")),
                )
            except ReplyError as exc:
                log.info("server-side subscribe of %s to %s failed: %s", client.uid, channel, exc)

    async def unsubscribe(self, req: Request) -> Result:
        """Unsubscribe matching connections from ``channel`` (no-op when it is empty)."""
        channel = str(req.get("channel", ""))
        if channel:
            self.node.rules.resolve(channel)
            await self.node.control("unsubscribe", req)
        return {}

    async def _unsubscribe_local(self, req: Request) -> None:
        for client in self._targets(req):
            client.unsubscribe_server(req["channel"])

    async def disconnect(self, req: Request) -> Result:
        """Close matching connections (default 3503 ``force disconnect``), minus ``whitelist``."""
        await self.node.control("disconnect", req)
        return {}

    async def _disconnect_local(self, req: Request) -> None:
        spec = req.get("disconnect") or {}
        code = int(spec.get("code", 0))
        disconnect = (
            Disconnect(code, str(spec.get("reason", ""))) if code else DISCONNECT_FORCE_NO_RECONNECT
        )
        keep = set(req.get("whitelist") or ())
        for client in self._targets(req):
            if client.uid not in keep:
                client.disconnect(disconnect)

    async def refresh(self, req: Request) -> Result:
        """Refresh (or expire with 3005) matching connections."""
        await self.node.control("refresh", req)
        return {}

    async def _refresh_local(self, req: Request) -> None:
        info = _raw_or_none(req, "info")
        for client in self._targets(req):
            client.refresh_server(
                bool(req.get("expired", False)), int(req.get("expire_at", 0)), info
            )

    # ---- presence and history ----------------------------------------------------------
    def _options(self, req: Request) -> tuple[str, ChannelOptions]:
        channel = _require_channel(req)
        return channel, self.node.rules.resolve(channel)

    def _presence_options(self, req: Request) -> str:
        channel, opts = self._options(req)
        if not opts.presence:
            raise ReplyError(ERROR_NOT_AVAILABLE)
        return channel

    def _history_options(self, req: Request) -> tuple[str, ChannelOptions]:
        channel, opts = self._options(req)
        if not opts.history_enabled:
            raise ReplyError(ERROR_NOT_AVAILABLE)
        return channel, opts

    async def presence(self, req: Request) -> Result:
        """``{"presence": {client_id: ClientInfo}}``; 108 when the namespace has no presence."""
        channel = self._presence_options(req)
        entries = await self.node.engine.presence(channel)
        return {"presence": {cid: _client_info(info) for cid, info in entries.items()}}

    async def presence_stats(self, req: Request) -> Result:
        """``{"num_clients", "num_users"}``; 108 when the namespace has no presence."""
        channel = self._presence_options(req)
        clients, users = await self.node.engine.presence_stats(channel)
        return {"num_clients": clients, "num_users": users}

    async def history(self, req: Request) -> Result:
        """Stream read: ``{"publications", "epoch", "offset"}``; 108 without history, 112."""
        channel, opts = self._history_options(req)
        flt = HistoryFilter(
            since=_stream_position(req.get("since")),
            limit=int(req.get("limit", 0)),
            reverse=bool(req.get("reverse", False)),
        )
        try:
            res = await self.node.engine.history(channel, flt, opts.history_meta_ttl)
        except ReplyError as exc:
            if exc.error.code == ERROR_UNRECOVERABLE_POSITION.code:
                raise
            raise ReplyError(ERROR_INTERNAL) from exc
        return {
            "publications": [_publication(p) for p in res.publications],
            "epoch": res.position.epoch,
            "offset": res.position.offset,
        }

    async def history_remove(self, req: Request) -> Result:
        """Drop a stream's publications (its position stays); 108 without history."""
        channel, _ = self._history_options(req)
        await self.node.engine.remove_history(channel)
        return {}

    # ---- node ---------------------------------------------------------------------------
    async def channels(self, req: Request) -> Result:
        """Channels with local subscribers matching the glob ``pattern`` (100 if invalid)."""
        pattern = str(req.get("pattern", ""))
        try:
            regex = compile_glob(pattern) if pattern else None
        except (ValueError, OverflowError) as exc:
            raise ReplyError(ERROR_INTERNAL) from exc
        counts: dict[str, int] = {}
        for part in await self.node.survey("channels"):
            for ch, n in part.items():
                counts[ch] = counts.get(ch, 0) + n
        return {
            "channels": {
                ch: {"num_clients": n}
                for ch, n in counts.items()
                if regex is None or regex.fullmatch(ch)
            }
        }

    async def info(self, req: Request) -> Result:
        """One entry per node (its workers summed), this node first; with Redis, every
        node of the cluster that answers the survey."""
        node = self.node
        by_node: dict[str, list[Result]] = {}
        for part in await node.survey("info"):
            by_node.setdefault(part["node"], []).append(part)
        nodes = [self._node_info(uid, parts) for uid, parts in by_node.items()]
        return {"nodes": nodes}

    def _node_info(self, uid: str, parts: list[Result]) -> Result:
        users: set[str] = set()
        channels: set[str] = set()
        for part in parts:
            users.update(part["users"])
            channels.update(part["channels"])
        first = parts[0]
        entry: Result = {
            "uid": uid,
            "name": first["name"],
            "version": first["version"],
            "num_clients": sum(p["num_clients"] for p in parts),
            "num_users": len(users),
            "num_channels": len(channels),
        }
        uptime = int(time.time() - min(p["started_at"] for p in parts))
        if uptime:
            entry["uptime"] = uptime
        if uid == self.node.uid:
            entry["metrics"] = {
                "interval": self.node.config.node.info_metrics_aggregate_interval,
                "items": self.node.metrics.snapshot(),
            }
        entry["num_subs"] = sum(p["num_subs"] for p in parts)
        return entry

    async def rpc(self, req: Request) -> Result:
        """No server API RPC extensions exist: 107 for an empty method, else 104."""
        if not req.get("method"):
            raise ReplyError(ERROR_BAD_REQUEST)
        raise ReplyError(API_ERROR_NOT_FOUND)

    # ---- batch --------------------------------------------------------------------------
    async def _batch_request(self, req: Request) -> Result:
        return await self.batch(req.get("commands") or [], bool(req.get("parallel", False)))

    async def batch(self, commands: list[BatchCommand], parallel: bool = False) -> Result:
        """``{"replies": [...]}`` in command order (``{}`` for no commands).

        ``commands`` are as ``decode_request("batch", ...)`` leaves them.

        Publishes are grouped so that a batch reaches each shard owner as one message:
        all of them when ``parallel``, runs of consecutive ones otherwise (so the order
        between a publish and other commands is kept).
        """
        if not commands:
            return {}
        replies: list[Result] = [_NO_REPLY] * len(commands)  # every slot is replaced
        run: list[tuple[int, PublishRequest]] = []
        others: list[int] = []
        for i, command in enumerate(commands):
            if type(command) is PublishRequest:
                run.append((i, command))
                continue
            if parallel:
                others.append(i)
                continue
            await self._flush_publishes(run, replies)
            run = []
            replies[i] = await self._batch_one(command)
        if parallel:
            results: list[Result] = list(
                await asyncio.gather(
                    *(self._batch_one(commands[i]) for i in others),
                    self._flush_publishes(run, replies),
                )
            )[: len(others)]
            for i, reply in zip(others, results, strict=True):
                replies[i] = reply
        else:
            await self._flush_publishes(run, replies)
        return {"replies": replies}

    async def _flush_publishes(
        self, run: list[tuple[int, PublishRequest]], replies: list[Result]
    ) -> Result:
        if not run:
            return {}
        node = self.node
        started = time.monotonic()
        items: list[tuple[str, Publication, PublishOptions]] = []
        slots: list[int] = []
        memo: _ChannelMemo = {}
        check_data_format = node.check_data_format
        for i, req in run:
            known = memo.get(req.channel)
            if known is None or req.b64data or req.skip_history or req.idempotency_key:
                try:
                    items.append(self._publish_item(req, memo))
                    slots.append(i)
                except ReplyError as exc:
                    node.metrics.api_error("publish", str(exc.error.code))
                    replies[i] = {"error": error_dict(exc.error)}
                continue
            # The common item (a channel seen before in this batch, raw JSON data): the
            # same checks as _publish_item, inline.
            data = raw_data(req)
            try:
                check_data_format(known[0], data, True)
            except ReplyError as exc:
                node.metrics.api_error("publish", str(exc.error.code))
                replies[i] = {"error": error_dict(exc.error)}
                continue
            items.append((req.channel, Publication(data, None, 0, req.tags or None), known[1]))
            slots.append(i)
        outcomes = await node.publish_many(items) if items else []
        for i, outcome in zip(slots, outcomes, strict=True):
            if isinstance(outcome, ReplyError):
                node.metrics.api_error("publish", str(outcome.error.code))
                replies[i] = {"error": error_dict(outcome.error)}
                continue
            offset, epoch = outcome[0]
            position = {"offset": offset, "epoch": epoch} if offset and epoch else None
            replies[i] = {"publish": position or _position(outcome[0])}
        node.metrics.api_commands("publish", len(run), time.monotonic() - started)
        return {}

    def _publish_item(
        self, req: PublishRequest, memo: _ChannelMemo
    ) -> tuple[str, Publication, PublishOptions]:
        """Validate one publish request into an engine item (same checks as ``publish``).

        ``memo`` keeps each channel's options for the rest of the batch (a batch usually
        repeats a few channels many times).
        """
        channel = req.channel
        if not channel:
            raise ReplyError(ERROR_BAD_REQUEST)
        data, data_json = _publish_payload(req)
        skip, key = req.skip_history, req.idempotency_key
        known = memo.get(channel) if not (skip or key) else None
        if known is None:
            node = self.node
            opts = node.rules.resolve(channel)
            known = (opts, node.publish_options(opts, skip, key))
            if not (skip or key):
                memo[channel] = known
        self.node.check_data_format(known[0], data, data_json)
        return channel, Publication(data, None, 0, req.tags or None, 0, data_json), known[1]

    async def _batch_one(self, command: BatchCommand) -> Result:
        """One (decoded) batch element: ``null`` -> 107, no known method -> 104."""
        try:
            if command is None:
                raise ReplyError(ERROR_BAD_REQUEST)
            if isinstance(command, PublishRequest):
                return {"publish": await self.call("publish", command, decoded=True)}
            method = next((m for m in METHODS if m in command), None)
            if method is None:
                raise ReplyError(API_ERROR_NOT_FOUND)
            return {method: await self.call(method, command[method], decoded=True)}
        except ReplyError as exc:
            return {"error": error_dict(exc.error)}
