"""One connection's subscriptions: their lifecycle and the engine work of subscribing.

A subscription is ``PENDING`` from the moment it is registered in the hub until its
subscribe reply is written: publications that arrive meanwhile wait in ``pending``
(spec client-protocol §7.11). Then it is ``ACTIVE``; ``CLOSING`` once it is being
removed. The pure decisions live in ``protocol/commands.py``; this module does the
I/O they call for, through the node. A subscribe_stream subscription also holds its
backend stream (``stream``), cancelled when the subscription is removed.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from relay.config import ChannelOptions
from relay.errors import ERROR_UNRECOVERABLE_POSITION, ReplyError
from relay.hub import Connection
from relay.protocol.channels import SubscribeFeatures
from relay.protocol.commands import (
    Result,
    recovery_fields,
    since_position,
    subscribe_flags,
    subscription_ttl,
)
from relay.protocol.delta import recovered_chain
from relay.protocol.messages import ClientInfo, HistoryFilter, Publication, StreamPosition
from relay.protocol.recovery import recovered_publications

if TYPE_CHECKING:
    from relay.context import ClientContext
    from relay.node import Node
    from relay.timers import Timers

__all__ = [
    "SubState",
    "Subscription",
    "SubscriptionOwner",
    "SubscriptionStream",
    "subscribe",
    "activate",
    "unsubscribe",
]

log = logging.getLogger("relay.client")


class SubState(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    CLOSING = "closing"


class SubscriptionStream(Protocol):
    """A subscription's backend stream (``proxied.StreamSubscription``): ended with the
    subscription; a bidirectional one takes the subscriber's publishes."""

    def cancel(self) -> None: ...

    async def publish(self, data: bytes) -> None: ...


@dataclass(slots=True)
class Subscription:
    """One channel this connection is subscribed to."""

    channel: str
    features: SubscribeFeatures
    chan_info: bytes | None = None
    expire_at: float | None = None
    server_side: bool = False
    #: refreshed by the sub_refresh proxy when it expires (the client may not sub_refresh)
    server_refresh: bool = False
    epoch: str = ""
    offset: int = 0
    state: SubState = SubState.PENDING
    #: a fossil-delta subscription that has its base: its next publication may be a delta
    delta_ready: bool = False
    #: publications that arrived while PENDING: (publication, encoded push, epoch)
    pending: list[tuple[Publication, bytes | None, str]] = field(default_factory=list)
    #: the subscribe_stream proxy's stream of this subscription (None: not a stream one)
    stream: SubscriptionStream | None = None


class SubscriptionOwner(Connection, Protocol):
    """What subscribing needs of a connection (``relay.client.Client``)."""

    node: Node
    ctx: ClientContext
    timers: Timers
    uid: str
    user: str
    closed: bool
    subs: dict[str, Subscription]

    def client_info(self, sub: Subscription | None = None) -> ClientInfo: ...

    def pub_dict(self, pub: Publication) -> dict[str, Any]: ...

    def send_push(self, push: dict[str, Any]) -> None: ...

    def sub_expired(self, sub: Subscription, force: bool = False) -> None: ...


async def subscribe(
    client: SubscriptionOwner,
    ch: str,
    opts: ChannelOptions,
    features: SubscribeFeatures,
    req: dict[str, Any],
    *,
    chan_info: bytes | None = None,
    expire_at: float | None = None,
    server_side: bool = False,
    server_refresh: bool = False,
    stream: SubscriptionStream | None = None,
) -> tuple[Result, Subscription]:
    """Register (buffering live publications), read the stream, build the result.
    ``stream`` (a subscribe_stream one) belongs to the subscription from here: whatever
    removes the subscription, even while this runs, cancels it."""
    node = client.node
    sub = Subscription(ch, features, chan_info, expire_at, server_side, server_refresh)
    sub.stream = stream
    client.subs[ch] = sub
    try:
        await node.add_subscription(ch, client)
        if features.delta:
            node.hub.set_delta(ch, client, True)
        result = await _position_result(client, ch, opts, sub, req)
        if features.presence:  # before the reply, as centrifuge: visible once answered
            await node.add_presence(ch, client.uid, client.client_info(sub))
    except BaseException:
        client.subs.pop(ch, None)
        await node.remove_subscription(ch, client)
        raise
    if expire_at is not None and not server_refresh:
        result["expires"] = True
        result["ttl"] = subscription_ttl(expire_at, client.timers.now())
    return result, sub


async def _position_result(
    client: SubscriptionOwner, ch: str, opts: ChannelOptions, sub: Subscription, req: dict[str, Any]
) -> Result:
    features = sub.features
    recover = bool(req.get("recover"))
    result = subscribe_flags(features, recover)
    if not features.positioned:
        return result
    node = client.node
    if recover and features.recoverable:
        pubs, top, recovered = await _recover(client, ch, opts, req, features.cache_recovery)
        node.metrics.recover(recovered, bool(pubs))
        if features.delta and recovered:
            # client.go: recovered publications chained as deltas; live ones follow as such
            json = client.codec.name == "json"
            recovery_fields(result, req, top, recovered, recovered_chain(pubs, json))
            sub.delta_ready = True
            if pubs:
                node.hub.seed_delta_base(ch, pubs[-1], top.epoch)
        else:
            recovery_fields(result, req, top, recovered, [client.pub_dict(p) for p in pubs])
    else:
        meta_ttl = opts.history_meta_ttl
        top = (await node.history(ch, HistoryFilter(), meta_ttl, "history_stream_top")).position
        result["epoch"] = top.epoch
        result["offset"] = top.offset
    sub.epoch, sub.offset = top.epoch, top.offset
    return result


async def _recover(
    client: SubscriptionOwner, ch: str, opts: ChannelOptions, req: dict[str, Any], cache_mode: bool
) -> tuple[list[Publication], StreamPosition, bool]:
    """Missed publications, the stream top, and whether nothing is missing."""
    node = client.node
    since = since_position(req)
    meta_ttl = opts.history_meta_ttl
    limit = client.ctx.session.client.recovery_max_publication_limit
    flt = HistoryFilter(since=since, limit=limit if limit > 0 else -1)
    if cache_mode:
        flt = HistoryFilter(limit=1, reverse=True)
    action = "history_recover_cache" if cache_mode else "history_recover"
    try:
        hist = await node.history(ch, flt, meta_ttl, action)
    except ReplyError as exc:
        if exc.error.code != ERROR_UNRECOVERABLE_POSITION.code:
            raise
        top_read = HistoryFilter(limit=0)
        top = (await node.history(ch, top_read, meta_ttl, "history_stream_top")).position
        return [], top, False
    pubs, ok = recovered_publications(since, hist.publications, hist.position, cache_mode)
    return pubs, hist.position, ok


async def activate(client: SubscriptionOwner, sub: Subscription) -> None:
    """After the reply: deliver buffered publications, then the join."""
    pending, sub.pending = sub.pending, []
    sub.state = SubState.ACTIVE
    for pub, payload, epoch in pending:
        if sub.features.delta and payload is not None:
            client.deliver_delta(sub.channel, pub, payload, payload, epoch)
        else:
            client.deliver_publication(sub.channel, pub, payload, epoch)
    if sub.expire_at is not None:
        delay = client.ctx.session.client.expired_sub_close_delay
        client.timers.at(
            "sub:" + sub.channel, sub.expire_at, delay, lambda: client.sub_expired(sub)
        )
    if client.closed or client.subs.get(sub.channel) is not sub:
        return
    info = client.client_info(sub)
    if sub.features.join_leave and sub.features.push_join_leave:
        # Its own join goes out before the next command, whatever the engine's latency.
        client.send_push({"channel": sub.channel, "join": {"info": info.to_dict()}})
    if sub.features.join_leave:
        await client.node.publish_join(sub.channel, info)


async def unsubscribe(client: SubscriptionOwner, ch: str) -> None:
    """Drop the subscription; an active one also leaves presence and announces the leave."""
    sub = client.subs.pop(ch, None)
    if sub is None:
        return
    was_active = sub.state is SubState.ACTIVE
    sub.state = SubState.CLOSING
    if sub.stream is not None:
        sub.stream.cancel()  # the backend sees its stream cancelled
    client.timers.cancel("sub:" + ch)
    node = client.node
    await node.remove_subscription(ch, client)
    if was_active:
        info: ClientInfo = client.client_info(sub)
        if sub.features.presence:
            await node.remove_presence(ch, client.uid, client.user)
        if sub.features.join_leave:
            await node.publish_leave(ch, info)
