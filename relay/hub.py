"""Per-worker index of local subscribers and synchronous fan-out.

Rules (written once):

* The hub never awaits. A broadcast encodes the push once per codec and hands the
  same bytes to every subscriber, which only appends them to its outbound buffer.
* Only the node adds and removes entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from relay.protocol.codecs import Codec
from relay.protocol.messages import ClientInfo, Publication

__all__ = ["Subscriber", "Hub"]


class Subscriber(Protocol):
    """The hub's view of a connection."""

    uid: str
    codec: Codec

    def deliver_publication(
        self, channel: str, pub: Publication, payload: bytes | None, epoch: str
    ) -> None:
        """Queue an encoded ``pub`` push (``None``: cannot be encoded for this client)."""

    def deliver_join_leave(self, channel: str, payload: bytes, client_id: str = "") -> None:
        """Queue an encoded join/leave push of ``client_id`` if this subscription wants them."""


class Hub:
    """channel -> {client id -> subscriber}."""

    def __init__(self) -> None:
        self._channels: dict[str, dict[str, Subscriber]] = {}

    def add(self, channel: str, sub: Subscriber) -> bool:
        """Register ``sub``; True when it is the channel's first local subscriber."""
        subs = self._channels.get(channel)
        first = subs is None
        if subs is None:
            subs = self._channels[channel] = {}
        subs[sub.uid] = sub
        return first

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
        """Encode once per codec and queue to every local subscriber; returns count."""
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
            sub.deliver_join_leave(channel, payload, info.client)
