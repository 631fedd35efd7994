"""One client connection: command handlers on top of the pure session.

A ``Client`` is fed decoded frames by its transport, runs them one by one (commands
of one frame in order), and writes replies and pushes through the transport's
coalescing buffer. A subscription buffers its channel's publications until the subscribe
reply is written (spec client-protocol §7.11); other pushes go out as they come, so a
client's own publication may precede its publish reply, as in Centrifugo.

Source of behaviour: centrifugal/centrifuge ``client.go``, centrifugo
``internal/client/handler.go``; spec client-protocol.md §7.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from relay.auth import TokenExpired, TokenInvalid
from relay.config import ChannelOptions
from relay.errors import (
    DISCONNECT_BAD_REQUEST,
    DISCONNECT_CHANNEL_LIMIT,
    DISCONNECT_CONNECTION_LIMIT,
    DISCONNECT_EXPIRED,
    DISCONNECT_INAPPROPRIATE_PROTOCOL,
    DISCONNECT_INSUFFICIENT_STATE,
    DISCONNECT_INVALID_TOKEN,
    DISCONNECT_NO_PONG,
    DISCONNECT_NOT_AVAILABLE,
    DISCONNECT_PERMISSION_DENIED,
    DISCONNECT_STALE,
    DISCONNECT_SUB_EXPIRED,
    ERROR_ALREADY_SUBSCRIBED,
    ERROR_BAD_REQUEST,
    ERROR_EXPIRED,
    ERROR_INTERNAL,
    ERROR_LIMIT_EXCEEDED,
    ERROR_NOT_AVAILABLE,
    ERROR_PERMISSION_DENIED,
    ERROR_TOKEN_EXPIRED,
    ERROR_UNKNOWN_CHANNEL,
    ERROR_UNRECOVERABLE_POSITION,
    UNSUBSCRIBE_EXPIRED,
    UNSUBSCRIBE_INSUFFICIENT_STATE,
    UNSUBSCRIBE_SERVER,
    DecodeError,
    Disconnect,
    DisconnectError,
    ReplyError,
    Unsubscribe,
)
from relay.protocol import json_codec
from relay.protocol.channels import Override, SubscribeFeatures
from relay.protocol.codecs import Codec
from relay.protocol.messages import ClientInfo, HistoryFilter, Publication, StreamPosition
from relay.protocol.positions import DELIVER, GAP, next_publication
from relay.protocol.recovery import recovered_publications
from relay.protocol.session import CONNECTED, PONG, Session

if TYPE_CHECKING:
    from relay.node import Node

__all__ = ["Client", "ClientTransport", "Subscription"]

log = logging.getLogger("relay.client")

Request = dict[str, Any]
Result = dict[str, Any]


class ClientTransport(Protocol):
    """What a client needs from its transport (websocket, later emulation)."""

    name: str

    def write_message(self, message: bytes) -> None:
        """Queue one encoded Reply; frames are coalesced per loop turn."""

    def close(self, disconnect: Disconnect) -> None:
        """Flush (except for 3008), send the close frame and close."""


@dataclass(slots=True)
class Subscription:
    """One channel this connection is subscribed to."""

    channel: str
    features: SubscribeFeatures
    chan_info: bytes | None = None
    expire_at: float | None = None
    server_side: bool = False
    epoch: str = ""
    offset: int = 0
    pending: list[tuple[Publication, bytes | None, str]] | None = field(default_factory=list)


class Client:
    """A connection's protocol logic (centrifuge's ``Client``)."""

    def __init__(self, node: Node, transport: ClientTransport, codec: Codec) -> None:
        self.node = node
        self.transport = transport
        self.codec = codec
        self.uid = str(uuid.uuid4())
        self.session = Session()
        self.user = ""
        self.conn_info: bytes | None = None
        self.exp: float | None = None
        self.name = ""
        self.version = ""
        self.subs: dict[str, Subscription] = {}
        self.closed = False
        self._frames: deque[bytes] = deque()
        self._task: asyncio.Task[None] | None = None
        self._after_reply: list[Callable[[], Any]] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._loop = asyncio.get_running_loop()
        node.connections.add(self)
        self._set_timer("stale", node.config.client.stale_close_delay, self._on_stale)

    # =====================================================================================
    # transport side
    # =====================================================================================
    def on_frame(self, payload: bytes) -> None:
        """A data message arrived; commands run in order on one task at a time."""
        if self.closed:
            return
        self._frames.append(payload)
        if self._task is None:
            self._task = self._loop.create_task(self._drain_frames())

    def on_transport_closed(self) -> None:
        """The socket is gone (peer closed or we closed it)."""
        if not self.closed:
            self.closed = True
            self.session.closed()
            self._cancel_timers()
            self._loop.create_task(self._cleanup())

    def disconnect(self, disconnect: Disconnect) -> None:
        """Close this connection with ``disconnect`` (idempotent)."""
        if self.closed:
            return
        self.node.metrics.server_disconnect(disconnect.code)
        self.transport.close(disconnect)
        self.on_transport_closed()

    async def _drain_frames(self) -> None:
        try:
            while self._frames and not self.closed:
                await self._handle_frame(self._frames.popleft())
        finally:
            self._task = None

    async def _handle_frame(self, payload: bytes) -> None:
        self.node.metrics.frame_received(len(payload))
        try:
            for cmd in self.codec.iter_commands(payload):
                if self.closed:
                    return
                await self._handle_command(cmd)
        except DecodeError as exc:
            log.info("bad request from client %s: %s", self.uid, exc)
            self.disconnect(DISCONNECT_BAD_REQUEST)

    # =====================================================================================
    # dispatch
    # =====================================================================================
    async def _handle_command(self, cmd: Request) -> None:
        try:
            method = self.session.dispatch(cmd)
        except DisconnectError as exc:
            self.disconnect(exc.disconnect)
            return
        if method == PONG:
            self._on_pong()
            return
        cmd_id = cmd.get("id", 0)
        started = time.perf_counter()
        try:
            result = await getattr(self, "handle_" + method)(cmd[method])
            if method != "send":
                self._write_reply({"id": cmd_id, method: result})
        except ReplyError as exc:
            self.node.metrics.reply_error(method, exc.error.code)
            self._write_reply({"id": cmd_id, "error": exc.error.to_dict()})
            if method == "connect" and self.session.state is not CONNECTED:
                self.session.connect_failed()
            self._after_reply.clear()
        except DisconnectError as exc:
            self._after_reply.clear()
            self.disconnect(exc.disconnect)
        except Exception:
            log.exception("error handling %s of client %s", method, self.uid)
            self._after_reply.clear()
            if method == "connect":
                self.disconnect(DISCONNECT_BAD_REQUEST)
            elif cmd_id:
                self._write_reply({"id": cmd_id, "error": ERROR_INTERNAL.to_dict()})
        finally:
            self.node.metrics.command(method, time.perf_counter() - started)
        await self._run_after_reply()

    async def _run_after_reply(self) -> None:
        while self._after_reply and not self.closed:
            outcome = self._after_reply.pop(0)()
            if asyncio.iscoroutine(outcome):
                await outcome

    # =====================================================================================
    # writing
    # =====================================================================================
    def _write_reply(self, reply: Result) -> None:
        if not self.closed:
            self.transport.write_message(self.codec.encode_reply(reply))

    def _write_push(self, payload: bytes) -> None:
        if not self.closed:
            self.transport.write_message(payload)

    def send_push(self, push: Result) -> None:
        """Encode and queue a push (``{"channel": ..., "<kind>": {...}}``)."""
        self._write_push(self.codec.encode_reply({"push": push}))

    # ---- hub callbacks ------------------------------------------------------------------
    def deliver_publication(
        self, channel: str, pub: Publication, payload: bytes | None, epoch: str = ""
    ) -> None:
        sub = self.subs.get(channel)
        if sub is None or self.closed:
            return
        if sub.pending is not None:
            sub.pending.append((pub, payload, epoch))
            return
        if payload is None:
            self.disconnect(DISCONNECT_INAPPROPRIATE_PROTOCOL)
            return
        if sub.features.positioned and pub.offset:
            verdict = next_publication(sub.offset, sub.epoch, pub.offset, epoch)
            if verdict is not DELIVER:
                if verdict is GAP:
                    self._insufficient_state(sub)  # never a silent gap
                return
            sub.offset = pub.offset
        self.transport.write_message(payload)  # hot path: one call less than _write_push

    def deliver_join_leave(self, channel: str, payload: bytes, client_id: str = "") -> None:
        if client_id == self.uid:
            return  # a client's own join was written right after its subscribe reply
        sub = self.subs.get(channel)
        if sub is not None and sub.pending is None and sub.features.push_join_leave:
            self._write_push(payload)

    def stream_lost(self, channel: str) -> None:
        """The channel's stream is gone (owner restarted): positioned subs must resync."""
        sub = self.subs.get(channel)
        if sub is not None and sub.features.positioned:
            self._insufficient_state(sub)

    def _insufficient_state(self, sub: Subscription) -> None:
        if sub.server_side:
            self.disconnect(DISCONNECT_INSUFFICIENT_STATE)
        else:
            self.unsubscribe_server(sub.channel, UNSUBSCRIBE_INSUFFICIENT_STATE)

    # =====================================================================================
    # connect
    # =====================================================================================
    async def handle_connect(self, req: Request) -> Result:
        node = self.node
        cfg = node.config.client
        token = req.get("token", "")
        claims = None
        if token:
            claims = self._verify_connect_token(token)
            self.user, self.conn_info = claims.user, claims.info
            exp = claims.expires_at()
            self.exp = None if (exp is None or cfg.insecure) else float(exp)
        elif cfg.allow_anonymous_connect_without_token or cfg.insecure:
            self.user = ""
        else:
            log.info("client credentials not found (client %s)", self.uid)
            raise DisconnectError(DISCONNECT_BAD_REQUEST)
        now = time.time()
        if self.exp is not None and self.exp <= now:
            raise ReplyError(ERROR_EXPIRED)
        limit = cfg.user_connection_limit
        if limit and self.user and node.num_user_connections(self.user) >= limit:
            raise DisconnectError(DISCONNECT_CONNECTION_LIMIT)
        self.name, self.version = req.get("name", ""), req.get("version", "")
        wanted = self._server_side_channels(claims, req.get("subs") or {})
        if len(wanted) > cfg.channel_limit:
            raise DisconnectError(DISCONNECT_CHANNEL_LIMIT)
        self.session.connected()
        self._cancel_timer("stale")
        node.add_client(self)
        result: Result = {"client": self.uid, "version": node.version}
        if self.exp is not None:
            result["expires"] = True
            result["ttl"] = max(1, int(self.exp) - int(now))
            self._set_timer("expire", self.exp - now + cfg.expired_close_delay, self._on_expire)
        if cfg.ping_interval > 0:
            result["ping"] = int(cfg.ping_interval)
            if cfg.pong_timeout > 0:
                result["pong"] = True
            first = random.uniform(cfg.ping_interval / 2, cfg.ping_interval)
            self._set_timer("ping", first, self._on_ping_timer)
        if cfg.connect_include_server_time:
            result["time"] = int(now * 1000)
        subs = await self._connect_subscriptions(wanted, req.get("subs") or {})
        if subs:
            result["subs"] = subs
        return result

    def _verify_connect_token(self, token: str) -> Any:
        try:
            claims = self.node.conn_verifier.verify_connect_token(token)
        except TokenExpired:
            raise ReplyError(ERROR_TOKEN_EXPIRED) from None
        except TokenInvalid as exc:
            log.info("invalid connection token (client %s): %s", self.uid, exc)
            raise DisconnectError(DISCONNECT_INVALID_TOKEN) from None
        if not claims.user and self.node.config.client.disallow_anonymous_connection_tokens:
            raise DisconnectError(DISCONNECT_PERMISSION_DENIED)
        return claims

    def _server_side_channels(self, claims: Any, requested: dict[str, Request]) -> dict[str, Any]:
        """channel -> token SubOptions (or None): token claims, personal channel, connect.subs."""
        node = self.node
        rules = node.rules
        wanted: dict[str, Any] = {}
        if claims is not None:
            if claims.subs:
                wanted.update(claims.subs)
            else:
                wanted.update(dict.fromkeys(claims.channels))
        for ch in wanted:
            rules.resolve(ch)  # unknown namespace in claims -> 102
        personal = node.config.client.subscribe_to_user_personal_channel
        if personal.enabled and self.user:
            ns = personal.personal_channel_namespace
            ch = f"{ns}{node.config.channel.namespace_boundary}" if ns else ""
            wanted.setdefault(f"{ch}{node.config.channel.user_boundary}{self.user}", None)
        for ch in requested:
            if ch in wanted or rules.is_private(ch):
                continue
            try:
                opts = rules.resolve(ch)
                rules.check_name(ch)
            except ReplyError as exc:
                if exc.error.code == ERROR_UNKNOWN_CHANNEL.code:
                    raise DisconnectError(DISCONNECT_BAD_REQUEST) from None
                continue
            if rules.can_subscribe_without_token(ch, opts, self.user):
                wanted[ch] = None
        return wanted

    async def _connect_subscriptions(
        self, wanted: dict[str, Any], requested: dict[str, Request]
    ) -> dict[str, Result]:
        results: dict[str, Result] = {}
        rules = self.node.rules
        for ch, sub_opts in wanted.items():
            opts = rules.resolve(ch)
            req = requested.get(ch) or {}
            override = _override(sub_opts.override) if sub_opts is not None else None
            features = rules.features(opts, self.user, override=override)
            res, sub = await self._subscribe(
                ch,
                opts,
                features,
                req,
                chan_info=sub_opts.info if sub_opts is not None else None,
                server_side=True,
            )
            if sub_opts is not None and sub_opts.data:
                res["data"] = sub_opts.data
            results[ch] = res
            self._after_reply.append(functools.partial(self._activate, sub))
        return results

    def _on_stale(self) -> None:
        if self.session.state is not CONNECTED:
            self.disconnect(DISCONNECT_STALE)

    def _on_expire(self) -> None:
        if self.exp is not None and self.exp <= time.time():
            self.disconnect(DISCONNECT_EXPIRED)

    # ---- ping / pong ------------------------------------------------------------------
    def _on_ping_timer(self) -> None:
        cfg = self.node.config.client
        self.transport.write_message(self.codec.encode_reply({}))
        self.node.metrics.message_sent("ping")
        if cfg.pong_timeout > 0:
            self.session.ping_sent()
            self._set_timer("pong", cfg.pong_timeout, self._on_no_pong)
        self._set_timer("ping", cfg.ping_interval, self._on_ping_timer)

    def _on_pong(self) -> None:
        self._cancel_timer("pong")

    def _on_no_pong(self) -> None:
        self.disconnect(DISCONNECT_NO_PONG)

    # =====================================================================================
    # subscribe / unsubscribe
    # =====================================================================================
    async def handle_subscribe(self, req: Request) -> Result:
        node = self.node
        ch = req.get("channel", "")
        if not ch:
            raise DisconnectError(DISCONNECT_BAD_REQUEST)
        delta = req.get("delta", "")
        if delta and delta != "fossil":
            raise DisconnectError(DISCONNECT_BAD_REQUEST)
        if len(ch) > node.config.channel.max_length:
            raise ReplyError(ERROR_BAD_REQUEST)
        if ch in self.subs:
            raise ReplyError(ERROR_ALREADY_SUBSCRIBED)
        if len(self.subs) >= node.config.client.channel_limit:
            raise ReplyError(ERROR_LIMIT_EXCEEDED)
        opts = node.rules.resolve(ch)
        node.rules.check_name(ch)
        if req.get("type"):
            raise ReplyError(ERROR_NOT_AVAILABLE)
        if "tf" in req:
            raise ReplyError(ERROR_BAD_REQUEST)
        chan_info = data = None
        override = None
        expire_at: float | None = None
        token = req.get("token", "")
        if token:
            claims = self._verify_subscribe_token(token, ch)
            chan_info, data = claims.info, claims.data
            override = _override(claims.override)
            exp = claims.expires_at()
            if exp is not None and not node.config.client.insecure:
                if exp <= time.time():
                    raise ReplyError(ERROR_EXPIRED)
                expire_at = float(exp)
        elif node.rules.is_private(ch) or not node.rules.can_subscribe_without_token(
            ch, opts, self.user
        ):
            raise ReplyError(ERROR_PERMISSION_DENIED)
        features = node.rules.features(
            opts,
            self.user,
            want_positioned=bool(req.get("positioned")),
            want_recoverable=bool(req.get("recoverable")),
            want_join_leave=bool(req.get("join_leave")),
            override=override,
        )
        result, sub = await self._subscribe(
            ch, opts, features, req, chan_info=chan_info, expire_at=expire_at
        )
        if data:
            result["data"] = data
        self._after_reply.append(functools.partial(self._activate, sub))
        return result

    def _verify_subscribe_token(self, token: str, channel: str) -> Any:
        try:
            claims = self.node.sub_verifier.verify_subscribe_token(token)
        except TokenExpired:
            raise ReplyError(ERROR_TOKEN_EXPIRED) from None
        except TokenInvalid as exc:
            log.info("invalid subscription token (client %s): %s", self.uid, exc)
            raise ReplyError(ERROR_PERMISSION_DENIED) from None
        if (
            claims.channel != channel
            or claims.user != self.user
            or (claims.client and claims.client != self.uid)
        ):
            raise DisconnectError(DISCONNECT_INVALID_TOKEN)
        return claims

    async def _subscribe(
        self,
        ch: str,
        opts: ChannelOptions,
        features: SubscribeFeatures,
        req: Request,
        *,
        chan_info: bytes | None = None,
        expire_at: float | None = None,
        server_side: bool = False,
    ) -> tuple[Result, Subscription]:
        """Register (buffering live publications), read the stream, build the result."""
        node = self.node
        sub = Subscription(ch, features, chan_info, expire_at, server_side)
        self.subs[ch] = sub
        try:
            await node.add_subscription(ch, self)
            result = await self._position_result(ch, opts, sub, req)
            if features.presence:  # before the reply, as centrifuge: visible once answered
                await node.engine.add_presence(ch, self.uid, self.client_info(sub))
        except BaseException:
            self.subs.pop(ch, None)
            await node.remove_subscription(ch, self)
            raise
        if expire_at is not None:
            result["expires"] = True
            result["ttl"] = max(1, int(expire_at) - int(time.time()))
        return result, sub

    async def _position_result(
        self, ch: str, opts: ChannelOptions, sub: Subscription, req: Request
    ) -> Result:
        features = sub.features
        result: Result = {}
        if features.recoverable:
            result["recoverable"] = True
        if features.positioned:
            result["positioned"] = True
        recover = bool(req.get("recover"))
        if recover:
            result["was_recovering"] = True
        if not features.positioned:
            return result
        engine = self.node.engine
        meta_ttl = opts.history_meta_ttl
        if recover and features.recoverable:
            pubs, top, recovered = await self._recover(ch, opts, req, features.cache_recovery)
            self.node.metrics.recover(recovered)
            if not recovered and int(req.get("flag", 0)) & 2:
                raise ReplyError(ERROR_UNRECOVERABLE_POSITION)
            result["epoch"] = top.epoch
            if recovered:
                result["recovered"] = True
                result["offset"] = int(req.get("offset", 0))
                if pubs:
                    result["publications"] = [self._pub_dict(p) for p in pubs]
            else:
                result["offset"] = top.offset
        else:
            top = (await engine.history(ch, HistoryFilter(limit=0), meta_ttl)).position
            result["epoch"] = top.epoch
            result["offset"] = top.offset
        sub.epoch, sub.offset = top.epoch, top.offset
        return result

    async def _recover(
        self, ch: str, opts: ChannelOptions, req: Request, cache_mode: bool
    ) -> tuple[list[Publication], StreamPosition, bool]:
        """Missed publications, the stream top, and whether nothing is missing."""
        engine = self.node.engine
        since = StreamPosition(int(req.get("offset", 0)), req.get("epoch", ""))
        meta_ttl = opts.history_meta_ttl
        limit = self.node.config.client.recovery_max_publication_limit
        flt = HistoryFilter(since=since, limit=limit if limit > 0 else -1)
        if cache_mode:
            flt = HistoryFilter(limit=1, reverse=True)
        try:
            hist = await engine.history(ch, flt, meta_ttl)
        except ReplyError as exc:
            if exc.error.code != ERROR_UNRECOVERABLE_POSITION.code:
                raise
            top = (await engine.history(ch, HistoryFilter(limit=0), meta_ttl)).position
            return [], top, False
        pubs, ok = recovered_publications(since, hist.publications, hist.position, cache_mode)
        return pubs, hist.position, ok

    def _pub_dict(self, pub: Publication) -> Result:
        if self.codec.name == "json" and not pub.data_json:
            raise DisconnectError(DISCONNECT_INAPPROPRIATE_PROTOCOL)
        return pub.to_dict()

    async def _activate(self, sub: Subscription) -> None:
        """After the reply: deliver buffered publications, then the join."""
        pending, sub.pending = sub.pending or [], None
        for pub, payload, epoch in pending:
            self.deliver_publication(sub.channel, pub, payload, epoch)
        if sub.expire_at is not None:
            delay = sub.expire_at - time.time() + self.node.config.client.expired_sub_close_delay
            self._set_timer("sub:" + sub.channel, delay, lambda: self._on_sub_expire(sub))
        if self.closed or self.subs.get(sub.channel) is not sub:
            return
        info = self.client_info(sub)
        if sub.features.join_leave and sub.features.push_join_leave:
            # Its own join goes out before the next command, whatever the engine's latency.
            self.send_push({"channel": sub.channel, "join": {"info": info.to_dict()}})
        if sub.features.join_leave:
            await self.node.engine.publish_join(sub.channel, info)

    def _on_sub_expire(self, sub: Subscription) -> None:
        if self.subs.get(sub.channel) is not sub or sub.expire_at is None:
            return
        if sub.expire_at > time.time():
            return
        if sub.server_side:
            self.disconnect(DISCONNECT_SUB_EXPIRED)
        else:
            self.unsubscribe_server(sub.channel, UNSUBSCRIBE_EXPIRED)

    def client_info(self, sub: Subscription | None = None) -> ClientInfo:
        return ClientInfo(self.user, self.uid, self.conn_info, sub.chan_info if sub else None)

    async def handle_unsubscribe(self, req: Request) -> Result:
        ch = req.get("channel", "")
        if not ch:
            raise DisconnectError(DISCONNECT_BAD_REQUEST)
        await self._unsubscribe(ch)
        return {}

    async def _unsubscribe(self, ch: str) -> None:
        sub = self.subs.pop(ch, None)
        if sub is None:
            return
        self._cancel_timer("sub:" + ch)
        await self.node.remove_subscription(ch, self)
        if sub.pending is None:
            info = self.client_info(sub)
            if sub.features.presence:
                await self.node.engine.remove_presence(ch, self.uid, self.user)
            if sub.features.join_leave:
                await self.node.engine.publish_leave(ch, info)

    def unsubscribe_server(self, ch: str, unsub: Unsubscribe = UNSUBSCRIBE_SERVER) -> None:
        """Server-side unsubscribe: push ``unsubscribe`` and drop the subscription."""
        if ch not in self.subs or self.closed:
            return
        self.node.metrics.server_unsubscribe(unsub.code)
        self.send_push({"channel": ch, "unsubscribe": {"code": unsub.code, "reason": unsub.reason}})
        self._loop.create_task(self._unsubscribe(ch))

    async def subscribe_server(
        self,
        ch: str,
        *,
        info: bytes | None = None,
        data: bytes | None = None,
        override: Override | None = None,
        expire_at: float | None = None,
        recover_since: StreamPosition | None = None,
    ) -> None:
        """Server API subscribe: add a server-side subscription and push ``subscribe``."""
        if ch in self.subs or self.closed:
            return
        opts = self.node.rules.resolve(ch)
        features = self.node.rules.features(opts, self.user, override=override)
        req: Request = {}
        if recover_since is not None:
            req = {"recover": True, "offset": recover_since.offset, "epoch": recover_since.epoch}
        result, sub = await self._subscribe(
            ch, opts, features, req, chan_info=info, expire_at=expire_at, server_side=True
        )
        push: Result = {}
        for key in ("recoverable", "epoch", "offset", "positioned"):
            if key in result:
                push[key] = result[key]
        if data:
            push["data"] = data
        self.send_push({"channel": ch, "subscribe": push})
        await self._activate(sub)

    # =====================================================================================
    # publish, presence, history
    # =====================================================================================
    def _channel_options(self, req: Request) -> tuple[str, ChannelOptions]:
        ch = req.get("channel", "")
        if not ch:
            raise DisconnectError(DISCONNECT_BAD_REQUEST)
        opts = self.node.rules.resolve(ch)
        self.node.rules.check_name(ch)
        return ch, opts

    async def handle_publish(self, req: Request) -> Result:
        ch, opts = self._channel_options(req)
        if req.get("type"):
            raise ReplyError(ERROR_NOT_AVAILABLE)
        data: bytes = req.get("data", b"")
        data_json = self.codec.name == "json" or json_codec.is_json(data)
        self.node.check_data_format(opts, data, data_json)
        sub = self.subs.get(ch)
        self.node.rules.check_publish(opts, self.user, sub is not None)
        pub = Publication(data, info=self.client_info(sub), data_json=data_json)
        await self.node.publish(ch, pub, opts)
        return {}

    async def handle_presence(self, req: Request) -> Result:
        ch, opts = self._channel_options(req)
        self.node.rules.check_presence(opts, self.user, ch in self.subs)
        entries = await self.node.engine.presence(ch)
        return {"presence": {cid: info.to_dict() for cid, info in entries.items()}}

    async def handle_presence_stats(self, req: Request) -> Result:
        ch, opts = self._channel_options(req)
        self.node.rules.check_presence(opts, self.user, ch in self.subs)
        clients, users = await self.node.engine.presence_stats(ch)
        return {"num_clients": clients, "num_users": users}

    async def handle_history(self, req: Request) -> Result:
        ch, opts = self._channel_options(req)
        self.node.rules.check_history(opts, self.user, ch in self.subs)
        limit = int(req.get("limit", 0))
        cap = self.node.config.client.history_max_publication_limit
        if cap > 0 and (limit < 0 or limit > cap):
            limit = cap
        since = req.get("since")
        flt = HistoryFilter(
            since=StreamPosition(int(since.get("offset", 0)), since.get("epoch", ""))
            if since is not None
            else None,
            limit=limit,
            reverse=bool(req.get("reverse")),
        )
        hist = await self.node.engine.history(ch, flt, opts.history_meta_ttl)
        return {
            "publications": [self._pub_dict(p) for p in hist.publications],
            "epoch": hist.position.epoch,
            "offset": hist.position.offset,
        }

    # =====================================================================================
    # rpc, send, refresh, sub_refresh
    # =====================================================================================
    async def handle_rpc(self, req: Request) -> Result:
        # Centrifugo OSS without an RPC proxy has no handler: 108.
        raise ReplyError(ERROR_NOT_AVAILABLE)

    async def handle_send(self, req: Request) -> Result:
        # Centrifugo OSS has no message handler: close 3508.
        raise DisconnectError(DISCONNECT_NOT_AVAILABLE)

    async def handle_refresh(self, req: Request) -> Result:
        token = req.get("token", "")
        if not token:
            raise DisconnectError(DISCONNECT_BAD_REQUEST)
        try:
            claims = self.node.conn_verifier.verify_connect_token(token)
        except TokenExpired:
            raise DisconnectError(DISCONNECT_EXPIRED) from None
        except TokenInvalid:
            raise DisconnectError(DISCONNECT_INVALID_TOKEN) from None
        if claims.user != self.user:
            raise DisconnectError(DISCONNECT_INVALID_TOKEN)
        exp = claims.expires_at()
        if claims.info is not None:
            self.conn_info = claims.info
        now = time.time()
        if exp is None or self.node.config.client.insecure:
            # Centrifugo keeps the old expiry here (a quirk); a token without expiry
            # means the connection no longer expires.
            self.exp = None
            self._cancel_timer("expire")
            return {}
        if exp <= now:
            raise ReplyError(ERROR_EXPIRED)
        self.exp = float(exp)
        delay = self.exp - now + self.node.config.client.expired_close_delay
        self._set_timer("expire", delay, self._on_expire)
        return {"expires": True, "ttl": max(1, int(self.exp) - int(now))}

    async def handle_sub_refresh(self, req: Request) -> Result:
        ch = req.get("channel", "")
        if not ch:
            raise DisconnectError(DISCONNECT_BAD_REQUEST)
        sub = self.subs.get(ch)
        if sub is None:
            raise ReplyError(ERROR_PERMISSION_DENIED)
        token = req.get("token", "")
        if not token:
            raise ReplyError(ERROR_BAD_REQUEST)
        try:
            claims = self.node.sub_verifier.verify_subscribe_token(token)
        except TokenExpired:
            # Centrifugo answers an already expired token with an empty success and the
            # subscription keeps going without expiry; clients rely on that, so relay does too.
            sub.expire_at = None
            self._cancel_timer("sub:" + ch)
            return {}
        except TokenInvalid:
            raise DisconnectError(DISCONNECT_INVALID_TOKEN) from None
        if (
            claims.channel != ch
            or claims.user != self.user
            or (claims.client and claims.client != self.uid)
        ):
            raise DisconnectError(DISCONNECT_INVALID_TOKEN)
        if claims.info is not None:
            sub.chan_info = claims.info
        exp = claims.expires_at()
        if exp is None:
            sub.expire_at = None
            self._cancel_timer("sub:" + ch)
            return {}
        if exp <= time.time():
            raise ReplyError(ERROR_EXPIRED)
        sub.expire_at = float(exp)
        delay = sub.expire_at - time.time() + self.node.config.client.expired_sub_close_delay
        self._set_timer("sub:" + ch, delay, lambda: self._on_sub_expire(sub))
        return {"expires": True, "ttl": max(1, int(sub.expire_at) - int(time.time()))}

    # =====================================================================================
    # server API actions on this connection
    # =====================================================================================
    def refresh_server(self, expired: bool, expire_at: int, info: bytes | None) -> None:
        if expired:
            self.disconnect(DISCONNECT_EXPIRED)
            return
        if info is not None:
            self.conn_info = info
        if expire_at:
            self.exp = float(expire_at)
            delay = self.exp - time.time() + self.node.config.client.expired_close_delay
            self._set_timer("expire", delay, self._on_expire)
            self.send_push(
                {"refresh": {"expires": True, "ttl": max(0, int(self.exp - time.time()))}}
            )
        else:
            self.exp = None
            self._cancel_timer("expire")

    # =====================================================================================
    # cleanup and timers
    # =====================================================================================
    async def _cleanup(self) -> None:
        try:
            for ch in list(self.subs):
                await self._unsubscribe(ch)
        except Exception:
            log.exception("cleanup of client %s failed", self.uid)
        finally:
            self.node.remove_client(self)
            self.node.connections.discard(self)

    def _set_timer(self, name: str, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer(name)
        self._timers[name] = self._loop.call_later(max(0.0, delay), self._fire, name, callback)

    def _fire(self, name: str, callback: Callable[[], None]) -> None:
        self._timers.pop(name, None)
        if not self.closed:
            callback()

    def _cancel_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _cancel_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()


def _override(claims_override: Any) -> Override | None:
    if claims_override is None:
        return None
    return Override(
        presence=claims_override.presence,
        join_leave=claims_override.join_leave,
        force_push_join_leave=claims_override.force_push_join_leave,
        force_recovery=claims_override.force_recovery,
        force_positioning=claims_override.force_positioning,
    )
