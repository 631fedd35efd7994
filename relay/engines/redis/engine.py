"""Redis engine: broker (PUB/SUB + history streams + idempotency) and presence manager.

Same contract as :mod:`relay.engines.base` / ``MemoryEngine``, with Centrifugo v6's key
layout (spec/server-surface.md §9.3) so the data is laid out the way Centrifugo lays
it out:

* ``P.client.<ch>``: PUB/SUB channel; payload = protobuf ``Publication`` (no history),
  ``__p1:<offset>:<epoch>__`` + protobuf ``Publication`` (history), ``__j__`` / ``__l__``
  + protobuf ``ClientInfo`` (join / leave).
* ``P.stream.<ch>``: Redis stream, entry id ``<offset>-0``, field ``d`` = ``Publication``.
* ``P.stream.meta.<ch>``: HASH ``e`` = epoch, ``s`` = top offset.
* ``P.result.<ch>.<key>``: HASH ``e``, ``s``; idempotency result, 300 s.
* ``P.presence.data.<ch>`` (HASH client -> ``ClientInfo``) and
  ``P.presence.expire.<ch>`` (ZSET client scored by expire-at, unix seconds).

Every command is bounded by ``io_timeout``; a Redis failure raises
``ReplyError(ERROR_INTERNAL)`` and never hangs. Several ``address`` entries are
independent shards: a channel lives on shard ``jump_hash(fnv1a_64(channel), n)``.

Each shard has one dedicated PUB/SUB connection (:class:`PubSubLink`) that follows
``subscribe``/``unsubscribe``, batches SUBSCRIBE/UNSUBSCRIBE commands, reconnects on its
own with capped exponential backoff and resubscribes every channel. Besides the three
``EventHandler`` methods the engine calls two optional hooks on the handler, when the
handler has them (see :class:`BrokerStateHandler`):

* ``handle_broker_lost(channels)`` right after a shard's PUB/SUB connection is lost:
  publications of those channels may be missed from now on, so the node should make
  their clients resubscribe (positioned/recoverable ones then recover from history).
* ``handle_broker_resubscribed(channels)`` once the new connection has resubscribed
  those channels (all confirmations received): delivery is live again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from relay.config import RedisConfig
from relay.config.redis_address import shard_addresses
from relay.engines.base import EventHandler, PublishOptions
from relay.engines.memory import IDEMPOTENCY_TTL, new_epoch
from relay.engines.redis.cluster import ClusterShard, tagged
from relay.engines.redis.pubsub import PubSubLink
from relay.engines.redis.scripts import (
    HISTORY,
    PRESENCE_ADD,
    PRESENCE_GET,
    PRESENCE_REMOVE,
    PUBLISH,
)
from relay.engines.redis.shard import REDIS_FAILURES, Shard, execute, internal
from relay.engines.redis.wire import (
    JOIN,
    LEAVE,
    P1,
    decode_info,
    decode_pub,
    encode_pub,
    entry_to_pub,
    ms,
    publish_result,
    range_ids,
    shard_index,
    split_p1,
    text,
)
from relay.errors import ERROR_INTERNAL, ERROR_UNRECOVERABLE_POSITION, ReplyError
from relay.protocol.messages import (
    ClientInfo,
    HistoryFilter,
    HistoryResult,
    Publication,
    StreamPosition,
)
from relay.protocol.protobuf_codec import encode_message

__all__ = ["RedisEngine", "BrokerStateHandler", "PublishItem", "PublishOutcome"]

log = logging.getLogger("relay.engines.redis")

T = TypeVar("T")

#: One publish of a batch: channel, publication, options.
PublishItem = tuple[str, Publication, PublishOptions]
#: What ``publish_many`` gives for one item: the ``publish`` result or the error.
PublishOutcome = tuple[StreamPosition, str] | ReplyError


# ---- optional handler hooks -------------------------------------------------------------
class BrokerStateHandler(Protocol):
    """Optional methods an ``EventHandler`` may have to learn about PUB/SUB outages."""

    def handle_broker_lost(self, channels: list[str]) -> None:
        """The PUB/SUB connection carrying ``channels`` broke; publications may be lost."""

    def handle_broker_resubscribed(self, channels: list[str]) -> None:
        """``channels`` are subscribed again on a new PUB/SUB connection."""


# ---- the engine -------------------------------------------------------------------------
def _go_int(version: int) -> int:
    """A version as centrifuge hands it to its Lua script (``strconv.Itoa(int(v))``: a
    uint64 of 2**63 or more wraps negative), so that relay and Centrifugo nodes sharing a
    Redis during a migration store and compare the same ``v``."""
    return version - 2**64 if version >= 2**63 else version


class RedisEngine:
    """``engine.type: redis``: broker + presence manager on one or several Redis shards.

    ``default_meta_ttl`` is used when a publication's ``history_meta_ttl`` (or a
    history read's ``meta_ttl``) is 0; 0 here too means the position never expires.
    ``node_id`` names this node (control channels come later).
    """

    def __init__(self, config: RedisConfig, default_meta_ttl: float, node_id: str) -> None:
        self._targets = shard_addresses(config)  # ValueError: validate() said it first
        self._cfg = config
        self._prefix = config.prefix
        self._default_meta_ttl = default_meta_ttl
        self._io_timeout = config.io_timeout
        self.node_id = node_id
        self._handler: EventHandler | None = None
        self._shards: list[Shard | ClusterShard] = []
        #: Redis Cluster: every key and PUB/SUB channel tags the channel (``{ch}``)
        self._cluster = any(t.mode == "cluster" for t in self._targets)
        self._links: list[PubSubLink] = []
        self._client_prefix = f"{self._prefix}.client.".encode()
        self._control_names: set[bytes] = set()
        self._on_control: Callable[[bytes], None] | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def set_event_handler(self, handler: EventHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        """Create the shard clients and start PUB/SUB links; never waits for Redis."""
        self._shards = [
            ClusterShard(i, a, self._cfg) if a.mode == "cluster" else Shard(i, a, self._cfg)
            for i, a in enumerate(self._targets)
        ]
        self._links = [
            PubSubLink(s, self._io_timeout, self._on_message, self._on_lost, self._on_resub)
            for s in self._shards
        ]
        for link in self._links:
            link.start()

    async def close(self) -> None:
        for link in self._links:
            await link.close()
        for shard in self._shards:
            await shard.close()

    @property
    def shard_count(self) -> int:
        return len(self._targets)

    def shard_of(self, channel: str) -> int:
        """Index of the shard (``address`` or ``sentinel_address`` entry) owning ``channel``."""
        return shard_index(channel, len(self._targets))

    # ---- key names ----------------------------------------------------------------------
    def _tag(self, channel: str) -> str:
        return tagged(channel) if self._cluster else channel

    def _client_channel(self, channel: str) -> str:
        return f"{self._prefix}.client.{self._tag(channel)}"

    def _stream_key(self, channel: str) -> str:
        return f"{self._prefix}.stream.{self._tag(channel)}"

    def _meta_key(self, channel: str) -> str:
        return f"{self._prefix}.stream.meta.{self._tag(channel)}"

    def _result_key(self, channel: str, key: str) -> str:
        """``P.result.<ch>.<key>`` (with no key too, as centrifuge passes it: unused)."""
        return f"{self._prefix}.result.{self._tag(channel)}.{key}"

    def _presence_keys(self, channel: str) -> list[str]:
        return [
            f"{self._prefix}.presence.expire.{self._tag(channel)}",
            f"{self._prefix}.presence.data.{self._tag(channel)}",
        ]

    # ---- calls --------------------------------------------------------------------------
    async def _call(self, op: Awaitable[T]) -> T:
        """Run one Redis operation bounded by ``io_timeout``; failures -> error 100."""
        try:
            async with asyncio.timeout(self._io_timeout):
                return await op
        except REDIS_FAILURES as exc:
            raise internal(exc) from exc

    def _shard(self, channel: str) -> Shard | ClusterShard:
        return self._shards[self.shard_of(channel)]

    # ---- broker -------------------------------------------------------------------------
    async def publish(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[StreamPosition, str]:
        """Append (history on when ``history_size`` and ``history_ttl`` are > 0) and PUBLISH.

        Atomic per channel (one Lua script). Delivery to handlers, this node's included,
        goes through Redis PUB/SUB to nodes subscribed to the channel.
        """
        shard = self._shard(channel)
        call = self._publish_call(channel, pub, opts)
        keys, args = call[3:6], call[6:]  # ("EVALSHA", sha, 3, *keys, *args)
        reply = await self._call(shard.run_script(PUBLISH, keys, args))
        return publish_result(reply, pub)

    async def publish_many(self, items: Sequence[PublishItem]) -> list[PublishOutcome]:
        """Publish a batch: one pipelined round trip per shard, order kept per channel.

        Returns one outcome per item, in input order: ``(position, suppressed)`` like
        ``publish``, or the ``ReplyError`` for that item (a failed shard fails its items).
        """
        by_shard: dict[int, list[int]] = {}
        for i, (channel, _, _) in enumerate(items):
            by_shard.setdefault(self.shard_of(channel), []).append(i)
        out: list[PublishOutcome] = [ReplyError(ERROR_INTERNAL)] * len(items)

        async def run(shard_idx: int, indexes: list[int]) -> None:
            calls = [self._publish_call(*items[i]) for i in indexes]
            try:
                replies = await self._call(self._shards[shard_idx].run_batch(calls))
            except ReplyError as err:
                replies = [err] * len(indexes)
            for i, reply in zip(indexes, replies, strict=True):
                out[i] = self._outcome(reply, items[i][1])

        await asyncio.gather(*(run(s, idx) for s, idx in by_shard.items()))
        return out

    @staticmethod
    def _outcome(reply: Any, pub: Publication) -> PublishOutcome:
        if isinstance(reply, ReplyError):
            return reply
        if isinstance(reply, BaseException):
            return internal(reply)
        return publish_result(reply, pub)

    def _publish_call(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[Any, ...]:
        history = opts.history_size > 0 and opts.history_ttl > 0
        meta_ttl = opts.history_meta_ttl or self._default_meta_ttl
        return (
            "EVALSHA",
            PUBLISH.sha,
            3,
            self._stream_key(channel),
            self._meta_key(channel),
            self._result_key(channel, opts.idempotency_key),
            self._client_channel(channel),
            encode_pub(pub),
            opts.history_size,
            ms(opts.history_ttl) if history else 0,
            ms(meta_ttl) if meta_ttl > 0 else 0,
            new_epoch(),
            ms(IDEMPOTENCY_TTL) if opts.idempotency_key else 0,
            "1" if history else "0",
            str(_go_int(opts.version)),
            opts.version_epoch,
        )

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        """PUBLISH ``__j__`` + ClientInfo to the channel's subscribers."""
        await self._publish_raw(channel, JOIN + encode_message("ClientInfo", info.to_dict()))

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        """PUBLISH ``__l__`` + ClientInfo to the channel's subscribers."""
        await self._publish_raw(channel, LEAVE + encode_message("ClientInfo", info.to_dict()))

    async def _publish_raw(self, channel: str, payload: bytes) -> None:
        shard = self._shard(channel)
        await self._call(execute(shard.client, "PUBLISH", self._client_channel(channel), payload))

    async def subscribe(self, channel: str) -> None:
        """SUBSCRIBE ``P.client.<ch>``; returns once Redis confirmed (or raises 100)."""
        await self._links[self.shard_of(channel)].subscribe(self._client_channel(channel).encode())

    async def unsubscribe(self, channel: str) -> None:
        """UNSUBSCRIBE ``P.client.<ch>``; delivery for it stops at once."""
        self._links[self.shard_of(channel)].unsubscribe(self._client_channel(channel).encode())

    async def history(
        self, channel: str, flt: HistoryFilter, meta_ttl: float = 0.0
    ) -> HistoryResult:
        """Read position and publications; creates the epoch when the channel has none."""
        since = flt.since
        start, end = range_ids(flt)
        ttl = meta_ttl or self._default_meta_ttl
        args = [
            "1" if flt.limit != 0 else "0",
            max(flt.limit, 0),
            "1" if flt.reverse else "0",
            ms(ttl) if ttl > 0 else 0,
            new_epoch(),
            since.epoch if since is not None else "",
            start,
            end,
        ]
        keys = [self._stream_key(channel), self._meta_key(channel)]
        reply = await self._call(self._shard(channel).run_script(HISTORY, keys, args))
        top, epoch = int(reply[0]), text(reply[1])
        if since is not None and since.epoch and since.epoch != epoch:
            raise ReplyError(ERROR_UNRECOVERABLE_POSITION)
        pubs = [entry_to_pub(entry) for entry in reply[2]]
        return HistoryResult(pubs, StreamPosition(top, epoch))

    async def remove_history(self, channel: str) -> None:
        """Drop the stream; the position (meta) stays."""
        await self._call(execute(self._shard(channel).client, "DEL", self._stream_key(channel)))

    # ---- presence -----------------------------------------------------------------------
    async def add_presence(self, channel: str, client_id: str, info: ClientInfo) -> None:
        """Add or refresh an entry; it expires ``presence_ttl`` after the last refresh."""
        ttl = self._cfg.presence_ttl
        args = [
            ms(ttl),
            int(time.time() + ttl),
            client_id,
            encode_message("ClientInfo", info.to_dict()),
        ]
        shard = self._shard(channel)
        await self._call(shard.run_script(PRESENCE_ADD, self._presence_keys(channel), args))

    async def remove_presence(self, channel: str, client_id: str, user: str) -> None:
        shard = self._shard(channel)
        await self._call(
            shard.run_script(PRESENCE_REMOVE, self._presence_keys(channel), [client_id])
        )

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        """Live entries (expired ones are purged first): client id -> info."""
        shard = self._shard(channel)
        args = [int(time.time())]
        flat = await self._call(shard.run_script(PRESENCE_GET, self._presence_keys(channel), args))
        return {text(flat[i]): decode_info(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def presence_stats(self, channel: str) -> tuple[int, int]:
        entries = await self.presence(channel)
        return len(entries), len({info.user for info in entries.values()})

    # ---- PUB/SUB callbacks ----------------------------------------------------------------
    def _channel_of(self, name: bytes) -> str:
        channel = name[len(self._client_prefix) :].decode()
        if self._cluster and len(channel) >= 2 and channel[0] == "{" and channel[-1] == "}":
            return channel[1:-1]
        return channel

    # ---- control channels (cluster-wide node operations) -----------------------------
    def _control_name(self, node_id: str = "") -> bytes:
        return (f"{self._prefix}.node.{node_id}" if node_id else f"{self._prefix}.control").encode()

    async def start_control(self, on_control: Callable[[bytes], None]) -> None:
        """Receive ``P.control`` (everyone) and ``P.node.<node_id>`` (this node) messages.

        The subscriptions survive reconnects; delivery is at most once (Redis PUB/SUB).
        """
        self._on_control = on_control
        link = self._links[0]
        for name in (self._control_name(), self._control_name(self.node_id)):
            self._control_names.add(name)
            try:
                await link.subscribe(name)
            except ReplyError:
                log.warning("redis engine: control channel not subscribed yet (Redis down?)")

    async def publish_control(self, data: bytes, node_id: str = "") -> None:
        """PUBLISH to every node (``P.control``) or one node (``P.node.<node_id>``)."""
        shard = self._shards[0]
        await self._call(shard.client.publish(self._control_name(node_id), data))

    def _on_message(self, name: bytes, data: bytes) -> None:
        if name in self._control_names:
            if self._on_control is not None:
                try:
                    self._on_control(data)
                except Exception:
                    log.exception("redis engine: control message handling failed")
            return
        handler = self._handler
        if handler is None or not name.startswith(self._client_prefix):
            return
        channel = self._channel_of(name)
        try:
            self._deliver(handler, channel, data)
        except Exception:  # a bad payload or a failing handler must not kill the reader
            log.exception("redis engine: cannot deliver a message of %r", channel)

    @staticmethod
    def _deliver(handler: EventHandler, channel: str, data: bytes) -> None:
        if data.startswith(P1):
            offset, epoch, body = split_p1(data)
            handler.handle_publication(
                channel, decode_pub(body, offset), StreamPosition(offset, epoch)
            )
        elif data.startswith(JOIN):
            handler.handle_join(channel, decode_info(data[len(JOIN) :]))
        elif data.startswith(LEAVE):
            handler.handle_leave(channel, decode_info(data[len(LEAVE) :]))
        elif data.startswith(b"__"):
            log.debug("redis engine: unsupported payload on %r", channel)
        else:
            handler.handle_publication(channel, decode_pub(data), StreamPosition(0, ""))

    def _notify(self, hook: str, names: list[bytes]) -> None:
        method = getattr(self._handler, hook, None)
        if method is None:
            return
        channels = [self._channel_of(n) for n in names if n.startswith(self._client_prefix)]
        try:
            method(channels)
        except Exception:
            log.exception("redis engine: %s failed", hook)

    def _on_lost(self, names: list[bytes]) -> None:
        self._notify("handle_broker_lost", names)

    def _on_resub(self, names: list[bytes]) -> None:
        self._notify("handle_broker_resubscribed", names)
