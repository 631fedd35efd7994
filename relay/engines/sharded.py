"""The memory engine partitioned over a node's workers (``engine.type: memory``, workers > 1).

Each channel belongs to one worker (``cluster/shards.py``), whose ``MemoryEngine`` keeps
the channel's stream, presence and publish order. Any worker may call any method:
calls for a channel owned elsewhere cross the bus. The owner remembers which workers
have local subscribers (``subscribe``/``unsubscribe`` are interest messages) and emits
each publication, join and leave once to each of them.

Rules:

* Only the owner changes a stream or presence; others ask it.
* A batch of publishes crosses the bus as one message per owner (``publish_many``).
* When a worker restarts, owners forget its interest and presence entries; its own
  streams start over on a new epoch, which subscribers detect (recovered: false).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from relay.cluster.bus import Bus, BusError
from relay.cluster.shards import ShardMap
from relay.engines.base import EventHandler, PublishOptions
from relay.engines.memory import MemoryEngine
from relay.errors import ERROR_INTERNAL, ReplyError
from relay.protocol.messages import (
    ClientInfo,
    HistoryFilter,
    HistoryResult,
    Publication,
    StreamPosition,
)

__all__ = ["ShardedEngine", "PublishItem"]


def _notify(handler: EventHandler, hook: str, channels: list[str]) -> None:
    """Call an optional handler hook (``handle_broker_lost`` / ``_resubscribed``)."""
    method = getattr(handler, hook, None)
    if method is not None:
        method(channels)


log = logging.getLogger("relay.engine")

PublishItem = tuple[str, Publication, PublishOptions]
PublishOutcome = tuple[StreamPosition, bool] | ReplyError


class _OwnerEvents:
    """The local memory engine's event handler: fan out to interested workers."""

    def __init__(self, engine: ShardedEngine) -> None:
        self.engine = engine

    def handle_publication(self, channel: str, pub: Publication, sp: StreamPosition) -> None:
        self.engine.emit(channel, "pub", pub, sp)

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        self.engine.emit(channel, "join", info)

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        self.engine.emit(channel, "leave", info)


class ShardedEngine:
    """Engine interface over shards owned by the node's workers."""

    def __init__(self, bus: Bus, local: MemoryEngine, request_timeout: float = 5.0) -> None:
        self.bus = bus
        self.local = local
        self.shards = ShardMap(bus.workers)
        self.timeout = request_timeout
        self._handler: EventHandler | None = None
        self._interest: dict[str, set[int]] = defaultdict(set)
        self._presence_from: dict[str, dict[str, int]] = defaultdict(dict)
        self._subscribed: set[str] = set()  # channels this worker has local subscribers in
        local.set_event_handler(_OwnerEvents(self))
        self._register()

    def _register(self) -> None:
        bus = self.bus
        bus.on_gap = self.worker_restarted
        bus.on("pub", self._on_pub)
        bus.on("join", lambda _s, ch, info: self._deliver(ch, "join", info))
        bus.on("leave", lambda _s, ch, info: self._deliver(ch, "leave", info))
        bus.on("interest", self._on_interest)
        bus.serve("interest", self._on_interest)
        bus.serve("presence_add", self._on_presence_add)
        bus.on("presence_remove", self._on_presence_remove)
        bus.on("emit_join", lambda _s, ch, kind, info: self.emit(ch, kind, info))
        bus.serve("publish", lambda _s, ch, pub, opts: self.local.publish_sync(ch, pub, opts))
        bus.serve("publish_many", lambda _s, items: self.local.publish_many_sync(items))
        bus.serve("history", lambda _s, ch, flt, ttl: self.local.history_sync(ch, flt, ttl))
        bus.serve("remove_history", lambda _s, ch: self.local.remove_history(ch))
        bus.serve("presence", lambda _s, ch: self.local.presence(ch))
        bus.serve("presence_stats", lambda _s, ch: self.local.presence_stats(ch))

    # ---- lifecycle --------------------------------------------------------------------
    def set_event_handler(self, handler: EventHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def owns(self, channel: str) -> bool:
        return self.shards.owner(channel) == self.bus.id

    # ---- owner side ---------------------------------------------------------------------
    def emit(self, channel: str, kind: str, *args: Any) -> None:
        """Owner: deliver an event once to every worker with local subscribers."""
        for worker in tuple(self._interest.get(channel, ())):
            if worker == self.bus.id:
                self._deliver(channel, kind, *args)
            elif kind == "pub":
                self.bus.cast(worker, "pub", channel, *args)
            else:
                self.bus.cast(worker, kind, channel, *args)

    def _deliver(self, channel: str, kind: str, *args: Any) -> None:
        handler = self._handler
        if handler is None:
            return
        if kind == "pub":
            handler.handle_publication(channel, args[0], args[1])
        elif kind == "join":
            handler.handle_join(channel, args[0])
        else:
            handler.handle_leave(channel, args[0])

    def _on_pub(self, _sender: int, channel: str, pub: Publication, sp: StreamPosition) -> None:
        self._deliver(channel, "pub", pub, sp)

    def _on_interest(self, sender: int, channel: str, on: bool) -> None:
        workers = self._interest[channel]
        if on:
            workers.add(sender)
        else:
            workers.discard(sender)
            if not workers:
                del self._interest[channel]

    def _on_presence_add(self, sender: int, channel: str, client: str, info: ClientInfo) -> None:
        self.local.add_presence_sync(channel, client, info)
        self._presence_from[channel][client] = sender

    def _on_presence_remove(self, _sender: int, channel: str, client: str, user: str) -> None:
        self.local.remove_presence_sync(channel, client)
        entries = self._presence_from.get(channel)
        if entries is not None:
            entries.pop(client, None)
            if not entries:
                del self._presence_from[channel]

    def worker_restarted(self, worker: int) -> None:
        """``worker`` restarted (or its link lost messages): its shards' streams are gone.

        Owner side: forget what its previous life registered here. Subscriber side: as
        with a broker that lost PUB/SUB, tell the handler which channels lost their
        stream, register interest with the new owner, then tell it they are back (the
        node makes positioned subscriptions resync: they learn ``recovered: false``).
        """
        for channel in list(self._interest):
            self._on_interest(worker, channel, False)
        for channel, entries in list(self._presence_from.items()):
            for client, sender in list(entries.items()):
                if sender == worker:
                    self._on_presence_remove(worker, channel, client, "")
        lost = [ch for ch in self._subscribed if self.shards.owner(ch) == worker]
        if lost and self._handler is not None:
            _notify(self._handler, "handle_broker_lost", lost)
            asyncio.get_running_loop().create_task(self._resubscribe(lost))

    async def _resubscribe(self, channels: list[str]) -> None:
        for channel in channels:
            try:
                await self.subscribe(channel)
            except ReplyError:
                log.warning("interest in %s not registered again", channel)
        if self._handler is not None:
            _notify(self._handler, "handle_broker_resubscribed", channels)

    # ---- engine interface ----------------------------------------------------------------
    async def _call(self, channel: str, op: str, *args: Any) -> Any:
        owner = self.shards.owner(channel)
        try:
            return await self.bus.request(owner, op, channel, *args, timeout=self.timeout)
        except BusError as exc:
            log.warning("%s for %s failed: %s", op, channel, exc)
            raise ReplyError(ERROR_INTERNAL) from exc

    async def publish(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[StreamPosition, bool]:
        if self.owns(channel):
            return self.local.publish_sync(channel, pub, opts)
        result: tuple[StreamPosition, bool] = await self._call(channel, "publish", pub, opts)
        return result

    async def publish_many(self, items: Sequence[PublishItem]) -> list[PublishOutcome]:
        """Publish a batch: one bus message per owning worker, order kept per channel."""
        by_owner: dict[int, list[int]] = defaultdict(list)
        for i, (channel, _, _) in enumerate(items):
            by_owner[self.shards.owner(channel)].append(i)
        out: list[PublishOutcome] = [ReplyError(ERROR_INTERNAL)] * len(items)
        for owner, indexes in by_owner.items():
            part = [items[i] for i in indexes]
            try:
                if owner == self.bus.id:
                    results = self.local.publish_many_sync(part)
                else:
                    results = await self.bus.request(
                        owner, "publish_many", part, timeout=self.timeout
                    )
            except BusError as exc:
                log.warning("batch publish to worker %s failed: %s", owner, exc)
                continue
            for i, res in zip(indexes, results, strict=True):
                out[i] = res
        return out

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        self.bus.cast(self.shards.owner(channel), "emit_join", channel, "join", info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        self.bus.cast(self.shards.owner(channel), "emit_join", channel, "leave", info)

    async def subscribe(self, channel: str) -> None:
        """Register interest and wait for the owner's ack: once a subscribe is answered,
        every later publication reaches this worker (as a broker SUBSCRIBE does)."""
        self._subscribed.add(channel)
        owner = self.shards.owner(channel)
        if owner == self.bus.id:
            self._on_interest(owner, channel, True)
            return
        await self._call(channel, "interest", True)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)
        self.bus.cast(self.shards.owner(channel), "interest", channel, False)

    async def history(
        self, channel: str, flt: HistoryFilter, meta_ttl: float = 0.0
    ) -> HistoryResult:
        if self.owns(channel):
            return self.local.history_sync(channel, flt, meta_ttl)
        result: HistoryResult = await self._call(channel, "history", flt, meta_ttl)
        return result

    async def remove_history(self, channel: str) -> None:
        await self._call(channel, "remove_history")

    async def add_presence(self, channel: str, client_id: str, info: ClientInfo) -> None:
        """Acknowledged: once a subscribe is answered, presence queries include it."""
        owner = self.shards.owner(channel)
        if owner == self.bus.id:
            self._on_presence_add(owner, channel, client_id, info)
            return
        await self._call(channel, "presence_add", client_id, info)

    async def remove_presence(self, channel: str, client_id: str, user: str) -> None:
        self.bus.cast(self.shards.owner(channel), "presence_remove", channel, client_id, user)

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        result: dict[str, ClientInfo] = await self._call(channel, "presence")
        return result

    async def presence_stats(self, channel: str) -> tuple[int, int]:
        result: tuple[int, int] = await self._call(channel, "presence_stats")
        return result

    def expire(self) -> None:
        self.local.expire()
