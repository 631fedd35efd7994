"""The server API executor: one coroutine per Centrifugo server API method.

It does not depend on a transport (as centrifugo ``internal/api/api.go``): the HTTP
handlers of ``relay/transports/http_api.py`` decode a body, call ``Executor.call`` and
encode what it returns. Spec: spec/server-surface.md §4 (target v6.6.2).

* A method either returns its result dict or raises ``ReplyError``. ``Executor.call``
  records metrics and turns any other exception into error 100, logged once and not
  raised again.
* Connection actions (subscribe, unsubscribe, disconnect, refresh) act on this node's
  connections whose user is exactly ``user`` (``""`` picks anonymous ones), narrowed
  to ``client`` when given.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from relay.api.batch import BatchMixin
from relay.api.params import (
    BroadcastParams,
    ChannelParams,
    ChannelsParams,
    DisconnectParams,
    HistoryParams,
    RefreshParams,
    RPCParams,
    SubscribeParams,
    UnsubscribeParams,
)
from relay.api.payloads import (
    Params,
    Result,
    b64_payload,
    client_info,
    error_dict,
    override,
    payload,
    position_result,
    publication,
    publish_payload,
    raw_or_none,
    require_channel,
    stream_position,
)
from relay.api.requests import decode_request
from relay.errors import (
    API_ERROR_NOT_FOUND,
    DISCONNECT_FORCE_NO_RECONNECT,
    ERROR_BAD_REQUEST,
    ERROR_INTERNAL,
    ERROR_NOT_AVAILABLE,
    ERROR_UNRECOVERABLE_POSITION,
    DecodeError,
    Disconnect,
    ReplyError,
)
from relay.protocol.api_requests import PublishRequest
from relay.protocol.glob import compile_glob
from relay.protocol.messages import (
    ClientInfo,
    HistoryFilter,
    HistoryResult,
    Publication,
    StreamPosition,
)

if TYPE_CHECKING:
    from relay.config import ChannelOptions
    from relay.hub import Connection
    from relay.node import Node

__all__ = ["Executor", "Method"]

# The name the single module had; log records (and tests that watch them) keep it.
log = logging.getLogger("relay.api")

#: A method takes its decoded request: a normalized dict, or a ``PublishRequest``.
Method = Callable[[Any], Awaitable[Result]]


class Executor(BatchMixin):
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
        data, data_json = publish_payload(req)
        node = self.node
        opts = node.rules.resolve(req.channel)
        node.check_data_format(opts, data, data_json)
        delta = req.delta or opts.delta_publish  # centrifugo internal/api/api.go
        pub = Publication(data=data, tags=req.tags or None, data_json=data_json, delta=delta)
        version = (req.version, req.version_epoch)
        sp = await self._publish(
            req.channel, pub, opts, req.skip_history, req.idempotency_key, version
        )
        return position_result(sp)

    async def _publish_one(
        self, channel: str, data: bytes, data_json: bool, req: BroadcastParams
    ) -> Result:
        node = self.node
        opts = node.rules.resolve(channel)
        node.check_data_format(opts, data, data_json)
        delta = req.get("delta", False) or opts.delta_publish
        pub = Publication(data=data, tags=req.get("tags") or None, data_json=data_json, delta=delta)
        skip = bool(req.get("skip_history", False))
        key = str(req.get("idempotency_key", ""))
        version = (int(req.get("version", 0)), str(req.get("version_epoch", "")))
        sp = await self._publish(channel, pub, opts, skip, key, version)
        return position_result(sp)

    async def _publish(
        self,
        channel: str,
        pub: Publication,
        opts: ChannelOptions,
        skip: bool,
        key: str,
        version: tuple[int, str] = (0, ""),
    ) -> StreamPosition:
        try:
            return await self.node.publish(
                channel,
                pub,
                opts,
                skip_history=skip,
                idempotency_key=key,
                version=version[0],
                version_epoch=version[1],
            )
        except Exception as exc:
            log.error("publish to %s failed: %r", channel, exc)
            raise ReplyError(ERROR_INTERNAL) from exc

    async def broadcast(self, req: BroadcastParams) -> Result:
        """Publish into many channels concurrently; per-channel responses in request order."""
        channels: list[str] = req.get("channels") or []
        if not channels:
            raise ReplyError(ERROR_BAD_REQUEST)
        data, data_json = payload(req)
        responses = await asyncio.gather(
            *(self._broadcast_one(ch, data, data_json, req) for ch in channels)
        )
        return {"responses": list(responses)}

    async def _broadcast_one(
        self, channel: str, data: bytes, data_json: bool, req: BroadcastParams
    ) -> Result:
        try:
            if not channel:
                raise ReplyError(ERROR_BAD_REQUEST)
            return {"result": await self._publish_one(channel, data, data_json, req)}
        except ReplyError as exc:
            self.node.metrics.api_error("broadcast_publish", str(exc.error.code))
            return {"error": error_dict(exc.error)}

    # ---- connection actions ------------------------------------------------------------
    def _targets(self, req: Params) -> list[Connection]:
        """This node's connections of exactly ``user``, narrowed to ``client`` if set."""
        return self.node.hub.user_connections(req.get("user", ""), req.get("client", ""))

    async def subscribe(self, req: SubscribeParams) -> Result:
        """Server-side subscribe of matching connections on every worker.

        ``b64data`` / ``b64info``, when set, replace ``data`` / ``info`` (invalid base64:
        107), as Centrifugo 6.9.1 does (6.6.2 dropped them)."""
        self.node.rules.resolve(require_channel(req))
        for b64_key, key in (("b64data", "data"), ("b64info", "info")):
            b64 = req.get(b64_key)
            if b64:
                req = {**req, key: b64_payload(str(b64))[0]}  # type: ignore[misc]
                req.pop(b64_key)  # type: ignore[misc]
        await self.node.control("subscribe", req)
        return {}

    async def _subscribe_local(self, req: SubscribeParams) -> None:
        channel = req["channel"]
        expire_at = req.get("expire_at", 0)
        for client in self._targets(req):
            try:
                await client.subscribe_server(
                    channel,
                    info=raw_or_none(req, "info"),
                    data=raw_or_none(req, "data"),
                    override=override(req.get("override")),
                    expire_at=float(expire_at) if expire_at else None,
                    recover_since=stream_position(req.get("recover_since")),
                )
            except ReplyError as exc:
                log.info("server-side subscribe of %s to %s failed: %s", client.uid, channel, exc)

    async def unsubscribe(self, req: UnsubscribeParams) -> Result:
        """Unsubscribe matching connections from ``channel`` (no-op when it is empty)."""
        channel = str(req.get("channel", ""))
        if channel:
            self.node.rules.resolve(channel)
            await self.node.control("unsubscribe", req)
        return {}

    async def _unsubscribe_local(self, req: UnsubscribeParams) -> None:
        for client in self._targets(req):
            client.unsubscribe_server(req["channel"])

    async def disconnect(self, req: DisconnectParams) -> Result:
        """Close matching connections (default 3503 ``force disconnect``), minus ``whitelist``."""
        await self.node.control("disconnect", req)
        return {}

    async def _disconnect_local(self, req: DisconnectParams) -> None:
        spec = req.get("disconnect")  # given, even as {}: its code goes as is (0 too)
        disconnect = (
            DISCONNECT_FORCE_NO_RECONNECT
            if spec is None
            else Disconnect(int(spec.get("code", 0)), str(spec.get("reason", "")))
        )
        keep = set(req.get("whitelist") or ())
        for client in self._targets(req):
            if client.uid not in keep:
                client.disconnect(disconnect)

    async def refresh(self, req: RefreshParams) -> Result:
        """Refresh (or expire with 3005) matching connections."""
        await self.node.control("refresh", req)
        return {}

    async def _refresh_local(self, req: RefreshParams) -> None:
        info = raw_or_none(req, "info")
        for client in self._targets(req):
            client.refresh_server(
                bool(req.get("expired", False)), int(req.get("expire_at", 0)), info
            )

    # ---- presence and history ----------------------------------------------------------
    def _options(self, req: Params) -> tuple[str, ChannelOptions]:
        channel = require_channel(req)
        return channel, self.node.rules.resolve(channel)

    def _presence_options(self, req: Params) -> str:
        channel, opts = self._options(req)
        if not opts.presence:
            raise ReplyError(ERROR_NOT_AVAILABLE)
        return channel

    def _history_options(self, req: Params) -> tuple[str, ChannelOptions]:
        channel, opts = self._options(req)
        if not opts.history_enabled:
            raise ReplyError(ERROR_NOT_AVAILABLE)
        return channel, opts

    async def read_presence(self, req: ChannelParams) -> dict[str, ClientInfo]:
        """The channel's presence as stored (each transport writes it its way); 107 without
        a channel, 102, 108 when the namespace has no presence."""
        return await self.node.presence(self._presence_options(req))

    async def presence(self, req: ChannelParams) -> Result:
        """``{"presence": {client_id: ClientInfo}}``."""
        entries = await self.read_presence(req)
        return {"presence": {cid: client_info(info) for cid, info in entries.items()}}

    async def presence_stats(self, req: ChannelParams) -> Result:
        """``{"num_clients", "num_users"}``; 108 when the namespace has no presence."""
        channel = self._presence_options(req)
        clients, users = await self.node.presence_stats(channel)
        return {"num_clients": clients, "num_users": users}

    async def read_history(self, req: HistoryParams) -> HistoryResult:
        """The stream read with publications as stored (each transport writes them its way);
        108 without history, 112 kept, other engine failures 100."""
        channel, opts = self._history_options(req)
        flt = HistoryFilter(
            since=stream_position(req.get("since")),
            limit=int(req.get("limit", 0)),
            reverse=bool(req.get("reverse", False)),
        )
        try:
            return await self.node.history(channel, flt, opts.history_meta_ttl)
        except ReplyError as exc:
            if exc.error.code == ERROR_UNRECOVERABLE_POSITION.code:
                raise
            raise ReplyError(ERROR_INTERNAL) from exc

    async def history(self, req: HistoryParams) -> Result:
        """Stream read: ``{"publications", "epoch", "offset"}``."""
        res = await self.read_history(req)
        return {
            "publications": [publication(p) for p in res.publications],
            "epoch": res.position.epoch,
            "offset": res.position.offset,
        }

    async def history_remove(self, req: ChannelParams) -> Result:
        """Drop a stream's publications (its position stays); 108 without history."""
        channel, _ = self._history_options(req)
        try:
            await self.node.remove_history(channel)
        except ReplyError as exc:  # an engine's failure (NATS has no history): 100
            raise ReplyError(ERROR_INTERNAL) from exc
        return {}

    # ---- node ---------------------------------------------------------------------------
    async def channels(self, req: ChannelsParams) -> Result:
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

    async def info(self, req: Params) -> Result:
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

    async def rpc(self, req: RPCParams) -> Result:
        """No server API RPC extensions exist: 107 for an empty method, else 104."""
        if not req.get("method"):
            raise ReplyError(ERROR_BAD_REQUEST)
        raise ReplyError(API_ERROR_NOT_FOUND)
