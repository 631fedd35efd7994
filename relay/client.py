"""One client connection: the I/O glue around the pure session logic.

A ``Client`` is fed decoded frames by its transport, runs their commands one by one,
and performs what ``protocol/commands.py`` decides: engine work through the node,
writes through the transport's coalescing buffer, timers. A subscription buffers its
channel's publications until the subscribe reply is written (``subscriptions.py``);
other pushes go out as they come, so a client's own publication may precede its
publish reply, as in Centrifugo.

Source of behaviour: centrifugal/centrifuge ``client.go``, centrifugo
``internal/client/handler.go``; spec client-protocol.md §7.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from relay import subscriptions
from relay.errors import (
    DISCONNECT_BAD_REQUEST,
    DISCONNECT_EXPIRED,
    DISCONNECT_INAPPROPRIATE_PROTOCOL,
    DISCONNECT_INSUFFICIENT_STATE,
    DISCONNECT_NO_PONG,
    DISCONNECT_STALE,
    DISCONNECT_SUB_EXPIRED,
    ERROR_INTERNAL,
    UNSUBSCRIBE_EXPIRED,
    UNSUBSCRIBE_INSUFFICIENT_STATE,
    UNSUBSCRIBE_SERVER,
    DecodeError,
    Disconnect,
    DisconnectError,
    ReplyError,
    Unsubscribe,
)
from relay.handlers import HANDLERS, server_refresh, server_sub_refresh
from relay.protocol.channels import Override
from relay.protocol.codecs import Codec
from relay.protocol.messages import ClientInfo, Publication, StreamPosition
from relay.protocol.positions import DELIVER, GAP, next_publication
from relay.protocol.session import CONNECTED, PONG, Session
from relay.subscriptions import Subscription, SubState
from relay.timers import Timers

if TYPE_CHECKING:
    from relay.node import Node

__all__ = ["Client", "ClientTransport", "Subscription"]

log = logging.getLogger("relay.client")

Request = dict[str, Any]
Result = dict[str, Any]


#: a push's key -> its frame type in Centrifugo's transport metrics
PUSH_FRAME_TYPES = {"pub": "push_publication", "message": "push_message"}


class ClientTransport(Protocol):
    """What a client needs from its transport (websocket, later emulation)."""

    name: str

    def write_message(self, message: bytes) -> None:
        """Queue one encoded Reply; frames are coalesced per loop turn."""

    def close(self, disconnect: Disconnect) -> None:
        """Flush (except for 3008), send the close frame and close."""


class Client:
    """A connection's protocol logic (centrifuge's ``Client``)."""

    #: set by the uni-directional transports (``transports/uni.py``): no pong is expected
    unidirectional = False
    #: fields the emulation and uni transports add to the connect result (session, node)
    connect_extra: Result | None = None

    def __init__(
        self,
        node: Node,
        transport: ClientTransport,
        codec: Codec,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.node = node
        #: the upgrade request's headers that a proxy forwards (``Proxies.header_names``)
        self.headers = headers or {}
        #: the connection's meta (token or connect proxy), for ``include_connection_meta``
        self.meta: bytes | None = None
        self.ctx = node.client_context
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
        self.after_reply: list[Callable[[], Any]] = []
        self._ping_sent = 0.0  # when the unanswered server ping went out (perf_counter)
        self._reply_size = 0  # bytes of the reply of the command being handled
        self._loop = asyncio.get_running_loop()
        self.timers = Timers(self._loop, self.ctx.clock)
        node.hub.open(self)
        self.timers.set("stale", self.ctx.session.client.stale_close_delay, self._on_stale)

    @property
    def transport_name(self) -> str:
        """The transport's name in metrics (``websocket``, ...)."""
        return self.transport.name

    # ---- transport side -----------------------------------------------------------------
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
            self.timers.cancel_all()
            self._loop.create_task(self._cleanup())

    def disconnect(self, disconnect: Disconnect) -> None:
        """Close this connection with ``disconnect`` (idempotent)."""
        if self.closed:
            return
        self.node.metrics.server_disconnect(disconnect.code)
        try:
            self.transport.close(disconnect)
        finally:
            self.on_transport_closed()

    async def _drain_frames(self) -> None:
        try:
            while self._frames and not self.closed:
                await self._handle_frame(self._frames.popleft())
        finally:
            self._task = None

    async def _handle_frame(self, payload: bytes) -> None:
        size = len(payload)  # counted with the frame's first command
        try:
            for command in self.codec.iter_commands(payload):
                if self.closed:
                    return
                await self._handle_command(command, size)
                size = 0
        except DecodeError as exc:
            log.info("bad request from client %s: %s", self.uid, exc)
            self.disconnect(DISCONNECT_BAD_REQUEST)

    # ---- dispatch -----------------------------------------------------------------------
    async def _handle_command(self, command: Request, size: int = 0) -> None:
        try:
            method = self.session.dispatch(command)
        except DisconnectError as exc:
            self.disconnect(exc.disconnect)
            return
        metrics = self.node.metrics
        if method == PONG:
            metrics.frame_received("client_pong", size, self.transport.name)
            self.timers.cancel("pong")
            if self._ping_sent:
                metrics.ping_pong(time.perf_counter() - self._ping_sent, self.transport.name)
                self._ping_sent = 0.0
            return
        self._reply_size = 0
        cmd_id = command.get("id", 0)
        started = time.perf_counter()
        try:
            result = await HANDLERS[method](self, command[method])
            if method != "send":
                self._write_reply({"id": cmd_id, method: result})
        except ReplyError as exc:
            self.node.metrics.reply_error(method, exc.error.code)
            self._write_reply({"id": cmd_id, "error": exc.error.to_dict()})
            if method == "connect" and self.session.state is not CONNECTED:
                self.session.connect_failed()
            self.after_reply.clear()
        except DisconnectError as exc:
            self.after_reply.clear()
            self.disconnect(exc.disconnect)
        except Exception:
            log.exception("error handling %s of client %s", method, self.uid)
            self.after_reply.clear()
            if method == "connect":
                self.disconnect(DISCONNECT_BAD_REQUEST)
            elif cmd_id:
                self._write_reply({"id": cmd_id, "error": ERROR_INTERNAL.to_dict()})
        finally:
            seconds = time.perf_counter() - started
            metrics.command(method, seconds, size, self._reply_size, self.transport.name)
        while self.after_reply and not self.closed:
            outcome = self.after_reply.pop(0)()
            if asyncio.iscoroutine(outcome):
                await outcome

    # ---- writing ------------------------------------------------------------------------
    def _write_reply(self, reply: Result) -> None:
        """Write a command's reply (its size goes to the command's metrics)."""
        if not self.closed:
            data = self.codec.encode_reply(reply)
            self.transport.write_message(data)
            self._reply_size = len(data)

    def send_push(self, push: Result) -> None:
        """Encode and queue a push (``{"channel": ..., "<kind>": {...}}``)."""
        if not self.closed:
            data = self.codec.encode_reply({"push": push})
            self.transport.write_message(data)
            kind = next((k for k in push if k != "channel"), "")
            frame_type = PUSH_FRAME_TYPES.get(kind, "push_" + kind)
            self.node.metrics.frames_sent(frame_type, 1, len(data), self.transport.name)

    def pub_dict(self, pub: Publication) -> Result:
        if self.codec.name == "json" and not pub.data_json:
            raise DisconnectError(DISCONNECT_INAPPROPRIATE_PROTOCOL)
        return pub.to_dict()

    def client_info(self, sub: Subscription | None = None) -> ClientInfo:
        return ClientInfo(self.user, self.uid, self.conn_info, sub.chan_info if sub else None)

    # ---- hub callbacks ------------------------------------------------------------------
    def deliver_publication(
        self, channel: str, pub: Publication, payload: bytes | None, epoch: str = ""
    ) -> None:
        sub = self.subs.get(channel)
        if sub is None or self.closed:
            return
        if sub.state is SubState.PENDING:
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
        self.transport.write_message(payload)

    def deliver_delta(
        self, channel: str, pub: Publication, full: bytes, delta: bytes, epoch: str = ""
    ) -> None:
        """A fossil-delta subscription's publication: ``full`` until one went out, then
        ``delta`` if the subscription is positioned (centrifuge client.go
        ``writePublicationUpdatePosition``: others get full data, there is no base)."""
        sub = self.subs.get(channel)
        if sub is None or self.closed:
            return
        if sub.state is SubState.PENDING:
            sub.pending.append((pub, full, epoch))
            return
        ready = sub.delta_ready and sub.features.positioned and pub.offset
        # the position check of deliver_publication, repeated: that one is the hot path
        if sub.features.positioned and pub.offset:
            verdict = next_publication(sub.offset, sub.epoch, pub.offset, epoch)
            if verdict is not DELIVER:
                if verdict is GAP:
                    self._insufficient_state(sub)
                return
            sub.offset = pub.offset
        self.transport.write_message(delta if ready else full)
        sub.delta_ready = True

    def deliver_join_leave(
        self, channel: str, payload: bytes, client_id: str = "", kind: str = "join"
    ) -> None:
        if client_id == self.uid:
            return  # a client's own join was written right after its subscribe reply
        sub = self.subs.get(channel)
        if sub is not None and sub.state is SubState.ACTIVE and sub.features.push_join_leave:
            if not self.closed:
                self.transport.write_message(payload)
                frame_type = PUSH_FRAME_TYPES.get(kind, "push_" + kind)
                self.node.metrics.frames_sent(frame_type, 1, len(payload), self.transport.name)

    def stream_lost(self, channel: str) -> None:
        """The channel's stream is gone (owner restarted): positioned subs must resync."""
        sub = self.subs.get(channel)
        if sub is not None and sub.features.positioned:
            self._insufficient_state(sub)

    def presence_entries(self) -> list[tuple[str, ClientInfo]]:
        return [
            (sub.channel, self.client_info(sub))
            for sub in self.subs.values()
            if sub.features.presence and sub.state is SubState.ACTIVE
        ]

    def _insufficient_state(self, sub: Subscription) -> None:
        if sub.server_side:
            self.disconnect(DISCONNECT_INSUFFICIENT_STATE)
        else:
            self.unsubscribe_server(sub.channel, UNSUBSCRIBE_INSUFFICIENT_STATE)

    # ---- connect, ping ------------------------------------------------------------------
    def _on_stale(self) -> None:
        if self.session.state is not CONNECTED:
            self.disconnect(DISCONNECT_STALE)

    def on_expire(self) -> None:
        if self.exp is None or self.closed:
            return
        proxies = self.node.proxies
        if proxies is not None and proxies.refresh is not None:
            self._spawn(server_refresh(self), "refresh")
        elif self.exp <= self.timers.now():
            self.disconnect(DISCONNECT_EXPIRED)

    def _spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``work`` beside the command queue; a bug in it is logged, never lost."""

        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("%s of client %s failed", what, self.uid)

        self._loop.create_task(run())

    def on_ping(self) -> None:
        cfg = self.ctx.session.client
        ping = self.codec.encode_reply({})
        self.transport.write_message(ping)
        self.node.metrics.frames_sent("server_ping", 1, len(ping), self.transport.name)
        self._ping_sent = time.perf_counter()
        if cfg.pong_timeout > 0 and not self.unidirectional:
            self.session.ping_sent()
            self.timers.set("pong", cfg.pong_timeout, lambda: self.disconnect(DISCONNECT_NO_PONG))
        self.timers.set("ping", cfg.ping_interval, self.on_ping)

    # ---- subscribe, unsubscribe ---------------------------------------------------------
    def sub_expired(self, sub: Subscription, force: bool = False) -> None:
        """``sub`` reached its expiry (plus the close delay): end it, or ask its
        sub_refresh proxy first; ``force``: the proxy said expired."""
        if self.subs.get(sub.channel) is not sub or self.closed:
            return
        if not force:
            if sub.expire_at is None or sub.expire_at > self.timers.now():
                return
            if sub.server_refresh:
                self._spawn(server_sub_refresh(self, sub), "sub_refresh")
                return
        if sub.server_side:
            self.disconnect(DISCONNECT_SUB_EXPIRED)
        else:
            self.unsubscribe_server(sub.channel, UNSUBSCRIBE_EXPIRED)

    def unsubscribe_server(self, ch: str, unsub: Unsubscribe = UNSUBSCRIBE_SERVER) -> None:
        """Server-side unsubscribe: push ``unsubscribe`` and drop the subscription."""
        if ch not in self.subs or self.closed:
            return
        self.node.metrics.server_unsubscribe(unsub.code)
        self.send_push({"channel": ch, "unsubscribe": {"code": unsub.code, "reason": unsub.reason}})
        self._loop.create_task(subscriptions.unsubscribe(self, ch))

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
        rules = self.ctx.session.rules
        opts = rules.resolve(ch)
        features = rules.features(opts, self.user, override=override)
        req: Request = {}
        if recover_since is not None:
            req = {"recover": True, "offset": recover_since.offset, "epoch": recover_since.epoch}
        result, sub = await subscriptions.subscribe(
            self, ch, opts, features, req, chan_info=info, expire_at=expire_at, server_side=True
        )
        keys = ("recoverable", "epoch", "offset", "positioned")
        push: Result = {k: result[k] for k in keys if k in result}
        if data:
            push["data"] = data
        self.send_push({"channel": ch, "subscribe": push})
        await subscriptions.activate(self, sub)

    def set_expiry(self, exp: float | None, expire_in: float | None) -> None:
        self.exp = exp
        if expire_in is None:
            self.timers.cancel("expire")
        else:
            self.timers.set("expire", expire_in, self.on_expire)

    def refresh_server(self, expired: bool, expire_at: int, info: bytes | None) -> None:
        """Server API refresh of this connection."""
        if expired:
            self.disconnect(DISCONNECT_EXPIRED)
            return
        if info is not None:
            self.conn_info = info
        if not expire_at:
            self.set_expiry(None, None)
            return
        now = self.timers.now()
        self.set_expiry(
            float(expire_at), expire_at - now + self.ctx.session.client.expired_close_delay
        )
        self.send_push({"refresh": {"expires": True, "ttl": max(0, int(expire_at - now))}})

    # ---- cleanup ------------------------------------------------------------------------
    async def _cleanup(self) -> None:
        try:
            for ch in list(self.subs):
                await subscriptions.unsubscribe(self, ch)
        except Exception:
            log.exception("cleanup of client %s failed", self.uid)
        finally:
            if self.node.hub.clients.get(self.uid) is self:
                self.node.metrics.connection_closed(self.transport.name, self.name, self.version)
            self.node.remove_client(self)
