"""The memory engine partitioned over a node's workers (``engine.type: memory``, workers > 1).

Each channel belongs to one worker (``cluster/shards.py``), whose ``MemoryEngine`` keeps
the channel's stream, presence and publish order. Any worker may call any method:
calls for a channel owned elsewhere cross the bus. The owner remembers which workers
have local subscribers (``subscribe``/``unsubscribe`` are interest messages) and emits
each publication, join and leave once to each of them.

Rules:

* Only the owner changes a stream or presence; others ask it.
* A batch of publishes crosses the bus as one message per owner (``publish_many``).
* Events for another worker (publications, joins, leaves) are queued on the bus: all
  that one loop turn emits for a worker leave as one message, in order.
* Everything crosses as plain tuples (``engines/wire.py``), which pickle in C.
* When a worker restarts, owners forget its interest and presence entries, and its
  channels' subscribers on other workers resync (publications emitted just before the
  death may be lost on the way). Its streams start over on a new epoch (recovered:
  false), unless ``engine.memory.persistence`` is on: then the new life replays them
  from disk with the same epochs, and the resync recovers (recovered: true).
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
from relay.engines.wire import (
    info_from_wire,
    info_to_wire,
    items_from_wire,
    items_to_wire,
    outcomes_from_wire,
    outcomes_to_wire,
    pub_from_wire,
    pub_to_wire,
)
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
PublishOutcome = tuple[StreamPosition, str] | ReplyError


class _OwnerEvents:
    """The local memory engine's event handler: fan out to interested workers."""

    def __init__(self, engine: ShardedEngine) -> None:
        self.engine = engine

    def handle_publication(self, channel: str, pub: Publication, sp: StreamPosition) -> None:
        self.engine.emit(channel, "pub", pub, sp)

    def handle_publications(self, batch: Sequence[tuple[str, Publication, StreamPosition]]) -> None:
        self.engine.emit_publications(batch)

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
        bus.on("events", self._on_events)
        bus.on("interest", self._on_interest)
        bus.serve("interest", self._on_interest)
        bus.serve("presence_add", self._serve_presence_add)
        bus.on("presence_remove", self._on_presence_remove)
        bus.on("emit_join", self._on_emit_join)
        bus.serve("publish", self._serve_publish)
        bus.serve("publish_many", self._serve_publish_many)
        bus.serve("history", self._serve_history)
        bus.serve("remove_history", lambda _s, ch: self.local.remove_history(ch))
        bus.serve("presence", self._serve_presence)
        bus.serve("presence_stats", lambda _s, ch: self.local.presence_stats(ch))

    # ---- owner side: requests from other workers ----------------------------------------
    def _serve_publish(
        self, _sender: int, channel: str, pub: Any, opts: PublishOptions
    ) -> tuple[int, str, str]:
        sp, dup = self.local.publish_sync(channel, pub_from_wire(pub), opts)
        return sp.offset, sp.epoch, dup

    def _serve_publish_many(self, _sender: int, wire: Any) -> list[Any]:
        return outcomes_to_wire(self.local.publish_many_sync(items_from_wire(wire)))

    def _serve_history(
        self, _sender: int, channel: str, flt: HistoryFilter, meta_ttl: float
    ) -> tuple[list[Any], int, str]:
        result = self.local.history_sync(channel, flt, meta_ttl)
        pubs = [pub_to_wire(p) for p in result.publications]
        return pubs, result.position.offset, result.position.epoch

    async def _serve_presence(self, _sender: int, channel: str) -> dict[str, Any]:
        entries = await self.local.presence(channel)
        return {client: info_to_wire(info) for client, info in entries.items()}

    def _serve_presence_add(self, sender: int, channel: str, client: str, info: Any) -> None:
        self._on_presence_add(sender, channel, client, info_from_wire(info))

    def _on_emit_join(self, _sender: int, channel: str, kind: str, info: Any) -> None:
        self.emit(channel, kind, info_from_wire(info))

    # ---- lifecycle --------------------------------------------------------------------
    def set_event_handler(self, handler: EventHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        await self.local.close()  # a persistent local engine writes its state and fsyncs

    def owns(self, channel: str) -> bool:
        return self.shards.owner(channel) == self.bus.id

    # ---- owner side ---------------------------------------------------------------------
    def emit(self, channel: str, kind: str, *args: Any) -> None:
        """Owner: deliver an event once to every worker with local subscribers."""
        workers = self._interest.get(channel)
        if not workers:
            return
        wire: tuple[Any, ...] | None = None
        for worker in tuple(workers):
            if worker == self.bus.id:
                self._deliver(channel, kind, *args)
                continue
            if wire is None:
                if kind == "pub":
                    wire = (kind, channel, pub_to_wire(args[0]), args[1].offset, args[1].epoch)
                else:
                    wire = (kind, channel, info_to_wire(args[0]))
            self.bus.queue(worker, "events", wire)

    def emit_publications(self, batch: Sequence[tuple[str, Publication, StreamPosition]]) -> None:
        """Owner: ``emit`` each publication of a batch, in order (only channels some
        worker is interested in cost more than a lookup)."""
        interest = self._interest
        for channel, pub, sp in batch:
            if channel in interest:
                self.emit(channel, "pub", pub, sp)

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

    def _on_events(self, _sender: int, events: list[tuple[Any, ...]]) -> None:
        """Events an owner queued for this worker in one loop turn, in order."""
        handler = self._handler
        if handler is None:
            return
        for event in events:
            kind, channel = event[0], event[1]
            if kind == "pub":
                sp = StreamPosition(event[3], event[4])
                handler.handle_publication(channel, pub_from_wire(event[2]), sp)
            elif kind == "join":
                handler.handle_join(channel, info_from_wire(event[2]))
            else:
                handler.handle_leave(channel, info_from_wire(event[2]))

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
    ) -> tuple[StreamPosition, str]:
        if self.owns(channel):
            return self.local.publish_sync(channel, pub, opts)
        offset, epoch, dup = await self._call(channel, "publish", pub_to_wire(pub), opts)
        return StreamPosition(offset, epoch), dup

    async def publish_many(self, items: Sequence[PublishItem]) -> list[PublishOutcome]:
        """Publish a batch: one bus message per owning worker, order kept per channel."""
        by_owner: dict[int, list[int]] = defaultdict(list)
        for i, (channel, _, _) in enumerate(items):
            by_owner[self.shards.owner(channel)].append(i)
        out: list[PublishOutcome] = [ReplyError(ERROR_INTERNAL)] * len(items)
        bus = self.bus
        # Other owners get their parts first and work on them while this worker does its own.
        remote = {
            owner: bus.request_nowait(
                owner, "publish_many", items_to_wire([items[i] for i in part])
            )
            for owner, part in by_owner.items()
            if owner != bus.id
        }
        local = by_owner.get(bus.id)
        if local:
            results = self.local.publish_many_sync([items[i] for i in local])
            for i, res in zip(local, results, strict=True):
                out[i] = res
        for owner, future in remote.items():
            try:
                wire = await bus.wait(future, "publish_many", owner, self.timeout)
            except BusError as exc:
                log.warning("batch publish to worker %s failed: %s", owner, exc)
                continue
            for i, res in zip(by_owner[owner], outcomes_from_wire(wire), strict=True):
                out[i] = res
        return out

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        self.bus.cast(self.shards.owner(channel), "emit_join", channel, "join", info_to_wire(info))

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        wire = info_to_wire(info)
        self.bus.cast(self.shards.owner(channel), "emit_join", channel, "leave", wire)

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
        pubs, offset, epoch = await self._call(channel, "history", flt, meta_ttl)
        return HistoryResult([pub_from_wire(p) for p in pubs], StreamPosition(offset, epoch))

    async def remove_history(self, channel: str) -> None:
        await self._call(channel, "remove_history")

    async def add_presence(self, channel: str, client_id: str, info: ClientInfo) -> None:
        """Acknowledged: once a subscribe is answered, presence queries include it."""
        owner = self.shards.owner(channel)
        if owner == self.bus.id:
            self._on_presence_add(owner, channel, client_id, info)
            return
        await self._call(channel, "presence_add", client_id, info_to_wire(info))

    async def remove_presence(self, channel: str, client_id: str, user: str) -> None:
        self.bus.cast(self.shards.owner(channel), "presence_remove", channel, client_id, user)

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        entries: dict[str, Any] = await self._call(channel, "presence")
        return {client: info_from_wire(info) for client, info in entries.items()}

    async def presence_stats(self, channel: str) -> tuple[int, int]:
        result: tuple[int, int] = await self._call(channel, "presence_stats")
        return result

    def expire(self) -> None:
        self.local.expire()
