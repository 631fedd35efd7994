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

from collections.abc import Iterable
from typing import Protocol

from relay.errors import UNSUBSCRIBE_SERVER, Disconnect, Unsubscribe
from relay.protocol.channels import Override
from relay.protocol.codecs import Codec
from relay.protocol.messages import ClientInfo, Publication, StreamPosition

__all__ = ["Subscriber", "Connection", "Hub"]


class Subscriber(Protocol):
    """The hub's view of a connection."""

    uid: str
    codec: Codec

    def deliver_publication(
        self, channel: str, pub: Publication, payload: bytes | None, epoch: str
    ) -> None:
        """Queue an encoded ``pub`` push (``None``: cannot be encoded for this client)."""

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
        subs[sub.uid] = sub
        return first

    def subscribed(self, channel: str, sub: Subscriber) -> bool:
        return sub.uid in self._channels.get(channel, ())

    def remove(self, channel: str, sub: Subscriber) -> bool:
        """Unregister ``sub``; True when the channel has no local subscribers left."""
        subs = self._channels.get(channel)
        if subs is None or subs.pop(sub.uid, None) is None:
            return False
        if not subs:
            del self._channels[channel]
            return True
        return False

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
