"""Per-worker index of connections, users and channel subscribers; synchronous fan-out.

As centrifugal/centrifuge's ``Hub``: it owns the connection and user index and the
channel -> subscribers index, and finds the targets of user- and client-targeted
actions. Rules (written once):

* The hub never awaits. A broadcast encodes the push once per codec and hands the
  same bytes to every subscriber, which only appends them to its outbound buffer.
* Connections register themselves (``open`` / ``connected`` / ``closed``); only the node
  adds and removes channel subscriptions (it also tells the engine).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from relay.errors import UNSUBSCRIBE_SERVER, Disconnect, Unsubscribe
from relay.protocol.channels import Override
from relay.protocol.codecs import Codec
from relay.protocol.delta import delta_payloads
from relay.protocol.messages import ClientInfo, Publication, StreamPosition

__all__ = ["Subscriber", "Connection", "Hub"]


class Subscriber(Protocol):
    """The hub's view of a connection."""

    uid: str
    codec: Codec

    @property
    def transport_name(self) -> str:
        """``websocket``, ``sse``, ``uni_http_stream``... (the metrics' label)."""

    def deliver_publication(
        self, channel: str, pub: Publication, payload: bytes | None, epoch: str
    ) -> None:
        """Queue an encoded ``pub`` push (``None``: cannot be encoded for this client)."""

    def deliver_delta(
        self, channel: str, pub: Publication, full: bytes, delta: bytes, epoch: str
    ) -> None:
        """Queue ``pub`` to a delta subscription: its ``full`` or its ``delta`` push."""

    def deliver_join_leave(
        self, channel: str, payload: bytes, client_id: str = "", kind: str = "join"
    ) -> None:
        """Queue an encoded ``kind`` (join/leave) push of ``client_id`` if this subscription
        wants them."""


class Connection(Subscriber, Protocol):
    """The hub's and the node's view of a client connection."""

    user: str
    name: str  # the client's name from its connect request (a metrics label)

    def disconnect(self, disconnect: Disconnect) -> None:
        """Close the connection with ``disconnect``."""

    def stream_lost(self, channel: str) -> None:
        """The channel's stream may have lost publications: resync positioned subs."""

    def presence_entries(self) -> list[tuple[str, ClientInfo]]:
        """(channel, info) of each active subscription that keeps presence."""

    # server API actions on this connection (the executor finds the targets here)
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
        """Add a server-side subscription and push ``subscribe``."""

    def unsubscribe_server(self, ch: str, unsub: Unsubscribe = UNSUBSCRIBE_SERVER) -> None:
        """Push ``unsubscribe`` and drop the subscription."""

    def refresh_server(self, expired: bool, expire_at: int, info: bytes | None) -> None:
        """Refresh (or expire) the connection."""


class Hub:
    """Connections by client id and user; channel -> {client id -> subscriber}."""

    def __init__(self) -> None:
        self._channels: dict[str, dict[str, Subscriber]] = {}
        #: every open transport's connection, connected or not (connection limits, shutdown)
        self.connections: set[Connection] = set()
        #: connected clients by client id, and client ids by user
        self.clients: dict[str, Connection] = {}
        self.users: dict[str, set[str]] = {}
        self.last_push_size = 0
        #: channel -> client ids of its fossil-delta subscriptions on this worker, and the
        #: last publication (and epoch) the channel delivered, the base of the next delta
        self._other_transports: dict[str, dict[str, int]] = {}
        self._delta: dict[str, set[str]] = {}
        self._last: dict[str, tuple[Publication, str]] = {}

    # ---- connections --------------------------------------------------------------------
    def open(self, conn: Connection) -> None:
        self.connections.add(conn)

    def connected(self, conn: Connection) -> None:
        self.clients[conn.uid] = conn
        self.users.setdefault(conn.user, set()).add(conn.uid)

    def closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if self.clients.pop(conn.uid, None) is None:
            return
        uids = self.users.get(conn.user)
        if uids is not None:
            uids.discard(conn.uid)
            if not uids:
                del self.users[conn.user]

    def num_user_connections(self, user: str) -> int:
        return len(self.users.get(user, ()))

    def user_connections(self, user: str, client: str = "") -> list[Connection]:
        """This worker's connections of exactly ``user``, narrowed to ``client`` if set."""
        return [
            self.clients[uid]
            for uid in self.users.get(user, ())
            if uid in self.clients and (not client or uid == client)
        ]

    @property
    def num_clients(self) -> int:
        return len(self.clients)

    @property
    def num_users(self) -> int:
        return len(self.users)

    # ---- channel subscribers ------------------------------------------------------------

    def add(self, channel: str, sub: Subscriber) -> bool:
        """Register ``sub``; True when it is the channel's first local subscriber."""
        subs = self._channels.get(channel)
        first = subs is None
        if subs is None:
            subs = self._channels[channel] = {}
        if sub.uid not in subs and sub.transport_name != "websocket":
            counts = self._other_transports.setdefault(channel, {})
            counts[sub.transport_name] = counts.get(sub.transport_name, 0) + 1
        subs[sub.uid] = sub
        return first

    def subscribed(self, channel: str, sub: Subscriber) -> bool:
        return sub.uid in self._channels.get(channel, ())

    def remove(self, channel: str, sub: Subscriber) -> bool:
        """Unregister ``sub``; True when the channel has no local subscribers left."""
        subs = self._channels.get(channel)
        if subs is None or subs.pop(sub.uid, None) is None:
            return False
        if sub.transport_name != "websocket":
            self._forget_transport(channel, sub.transport_name)
        if self._delta:
            self.set_delta(channel, sub, False)
        if not subs:
            del self._channels[channel]
            return True
        return False

    def _forget_transport(self, channel: str, name: str) -> None:
        counts = self._other_transports.get(channel)
        if counts is not None and name in counts:
            counts[name] -= 1
            if counts[name] <= 0:
                del counts[name]
            if not counts:
                del self._other_transports[channel]

    def other_transports(self, channel: str) -> dict[str, int] | None:
        """Local subscribers of ``channel`` by transport, WebSocket left out (None: all
        are WebSocket): the metrics' ``transport`` label of their publication frames."""
        return self._other_transports.get(channel)

    def set_delta(self, channel: str, sub: Subscriber, on: bool) -> None:
        """Mark ``sub``'s subscription to ``channel`` as a fossil-delta one (or not)."""
        uids = self._delta.get(channel)
        if on:
            if uids is None:
                uids = self._delta[channel] = set()
            uids.add(sub.uid)
        elif uids is not None:
            uids.discard(sub.uid)
            if not uids:
                del self._delta[channel]
                self._last.pop(channel, None)

    def seed_delta_base(self, channel: str, pub: Publication, epoch: str) -> None:
        """A recovered delta subscription's last publication is the base of the next
        delta unless this worker has delivered a newer one meanwhile."""
        if channel not in self._delta:
            return
        last = self._last.get(channel)
        if last is None or last[1] != epoch or last[0].offset < pub.offset:
            self._last[channel] = (pub, epoch)

    @property
    def subscribed_channels(self) -> Mapping[str, object]:
        """The channels with a subscriber here (a live view, for membership tests)."""
        return self._channels

    def has(self, channel: str) -> bool:
        return channel in self._channels

    def subscribers(self, channel: str) -> Iterable[Subscriber]:
        return tuple(self._channels.get(channel, {}).values())

    def num_subscribers(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    def channels(self) -> list[str]:
        return list(self._channels)

    @property
    def num_channels(self) -> int:
        return len(self._channels)

    @property
    def num_subscriptions(self) -> int:
        return sum(len(s) for s in self._channels.values())

    # ---- fan-out ----------------------------------------------------------------------
    def broadcast_publication(self, channel: str, pub: Publication, epoch: str = "") -> int:
        """Encode once per codec and queue to every local subscriber; returns count.

        ``last_push_size`` is then the size of one encoded push (for the metrics).
        """
        subs = self._channels.get(channel)
        if not subs:
            return 0
        if self._delta and channel in self._delta:
            return self._broadcast_delta(channel, subs, pub, epoch)
        encoded: dict[str, bytes | None] = {}
        for sub in tuple(subs.values()):
            codec = sub.codec
            payload = encoded.get(codec.name, b"")
            if payload == b"":
                binary_to_json = codec.name == "json" and not pub.data_json
                payload = None if binary_to_json else codec.encode_pub_push(channel, pub)
                encoded[codec.name] = payload
                if payload is not None:
                    self.last_push_size = len(payload)
            sub.deliver_publication(channel, pub, payload, epoch)
        return len(subs)

    def _broadcast_delta(
        self, channel: str, subs: dict[str, Subscriber], pub: Publication, epoch: str
    ) -> int:
        """``broadcast_publication`` for a channel with delta subscriptions here.

        The delta base is the channel's previous publication, as centrifuge's brokers
        provide it (``prevPub``: the stream's last publication, read only for a publish
        with ``delta``): here the one this worker delivered last, used when its offset
        is the one right before (same epoch), so every positioned subscriber has it.
        Full and delta pushes are encoded once per codec (hub.go ``broadcastPublication``).
        """
        last = self._last.get(channel)
        self._last[channel] = (pub, epoch)
        base = None
        if pub.delta and pub.offset and last is not None:
            prev, prev_epoch = last
            if prev.offset == pub.offset - 1 and prev_epoch == epoch:
                base = prev
        delta_uids = self._delta[channel]
        encoded: dict[str, bytes | None] = {}
        prepared: dict[str, tuple[bytes, bytes]] = {}
        for sub in tuple(subs.values()):
            name = sub.codec.name
            if sub.uid in delta_uids:
                pair = prepared.get(name)
                if pair is None:
                    pair = prepared[name] = delta_payloads(name, channel, pub, base)
                    self.last_push_size = len(pair[0])
                sub.deliver_delta(channel, pub, pair[0], pair[1], epoch)
                continue
            payload = encoded.get(name, b"")
            if payload == b"":
                binary_to_json = name == "json" and not pub.data_json
                payload = None if binary_to_json else sub.codec.encode_pub_push(channel, pub)
                encoded[name] = payload
                if payload is not None:
                    self.last_push_size = len(payload)
            sub.deliver_publication(channel, pub, payload, epoch)
        return len(subs)

    def broadcast_join_leave(self, channel: str, kind: str, info: ClientInfo) -> None:
        """Queue a ``join`` or ``leave`` push to subscribers that asked for them."""
        subs = self._channels.get(channel)
        if not subs:
            return
        encoded: dict[str, bytes] = {}
        push = {"push": {"channel": channel, kind: {"info": info.to_dict()}}}
        for sub in tuple(subs.values()):
            codec = sub.codec
            payload = encoded.get(codec.name)
            if payload is None:
                payload = encoded[codec.name] = codec.encode_reply(push)
            sub.deliver_join_leave(channel, payload, info.client, kind)
