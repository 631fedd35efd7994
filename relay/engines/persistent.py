"""The memory engine with its streams kept on disk (``engine.memory.persistence.dir``).

``PersistentMemoryEngine`` is a ``MemoryEngine`` whose publish paths write ahead: each
publish or batch is first encoded as one record of the owner's log (``engines/store.py``)
and written to the OS, and only then appended to the in-memory streams, recorded for
idempotency and delivered. The in-memory streams stay the index reads are served from;
at construction the log is replayed into them, so a restarted process (or worker)
resumes every channel's epoch, top offset, retained publications and idempotency
results.

Guarantees (on top of ``MemoryEngine``'s):

1. A publish that was answered with a position survives a kill of the process: its
   record was written before the answer (and fdatasynced first with ``sync: always``).
2. A publish whose record cannot be written (disk full, quota) fails with error 100 and
   changes nothing: not the stream, not the idempotency table, no delivery.
3. A stream's epoch is persisted when the stream is created, also by a history read or a
   subscribe that only asks for the position.
4. Disk use is bounded by the retained state: when the log grows past twice the last
   snapshot (and 16 MiB), it is replaced by a snapshot of what is retained.

A history read's extension of a stream's meta TTL is written by the next housekeeping
pass (``expire``, every second), in one record for all channels read meanwhile.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from relay.engines.base import (
    SUPPRESSED_IDEMPOTENCY,
    SUPPRESSED_VERSION,
    PublishOptions,
    stale_version,
)
from relay.engines.memory import IDEMPOTENCY_TTL, MemoryEngine, _Stream
from relay.engines.store import (
    IDEM,
    PUB,
    SNAPSHOT_CHUNK,
    STATE,
    StoreError,
    StreamStore,
    pub_entry,
)
from relay.errors import ERROR_INTERNAL, ReplyError
from relay.protocol.messages import HistoryFilter, HistoryResult, Publication, StreamPosition

__all__ = ["PersistentMemoryEngine"]

log = logging.getLogger("relay.engine")

PublishOutcome = tuple[StreamPosition, str] | ReplyError
#: A channel's part of one batch: [stream, options, new publications, top offset so far].
#: a stream a batch touches: [stream, options, new items, top, version, version epoch]
_Held = list[Any]
#: One item to apply after the write: channel, publication, position, its _Held, key.
_Planned = tuple[str, Publication, StreamPosition, "_Held | None", str]
_NO_POSITION = StreamPosition(0, "")


class PersistentMemoryEngine(MemoryEngine):
    """``MemoryEngine`` + write-ahead to a ``StreamStore`` (replayed at construction)."""

    def __init__(
        self,
        store: StreamStore,
        default_meta_ttl: float = 720 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(default_meta_ttl=default_meta_ttl, clock=clock)
        self.store = store
        self._wall = wall
        self._dirty: set[str] = set()  # channels whose new epoch is not written yet
        self._read: set[str] = set()  # channels read since the last ``expire``
        started = time.monotonic()
        collecting = gc.isenabled()
        gc.disable()  # millions of new objects, none of them garbage: no collections meanwhile
        try:
            loaded = store.load(wall())
        finally:
            if collecting:
                gc.enable()
        delta = clock() - wall()  # Unix seconds -> this engine's clock
        for channel, ls in loaded.streams.items():
            stream = _Stream(ls.epoch, ls.top, items_expire=ls.items_expire + delta)
            stream.items.extend(ls.items)
            stream.meta_expire = ls.meta_expire + delta
            stream.version, stream.version_epoch = ls.version, ls.version_epoch
            self._streams[channel] = stream
        for key, (offset, epoch, expire) in loaded.idempotency.items():
            self._idempotency[key] = (StreamPosition(offset, epoch), expire + delta)
        log.info(
            "history loaded from %s: %d channels, %d publications kept of %d replayed, "
            "%d records, %.2f s", store.directory, len(self._streams),
            sum(len(s.items) for s in self._streams.values()), loaded.publications,
            loaded.records, time.monotonic() - started,
        )  # fmt: skip
        store.start_sync_thread()

    async def close(self) -> None:
        """Persist every stream's state (meta TTLs extended by reads), let a running
        compaction finish, fsync, close."""
        self.store.poll_compaction(block=True)
        try:
            self.store.append(self._states(list(self._streams)))
        except StoreError:
            pass
        self.store.close()

    # ---- entries -----------------------------------------------------------------------
    def _state_entry(self, channel: str, stream: _Stream, delta: float) -> tuple[Any, ...]:
        return (
            STATE,
            channel,
            stream.epoch,
            stream.top,
            len(stream.items),
            stream.items_expire + delta,
            stream.meta_expire + delta,
            stream.version,
            stream.version_epoch,
        )

    def _states(self, channels: Sequence[str]) -> list[Any]:
        delta = self._wall() - self._clock()
        streams = self._streams
        return [self._state_entry(ch, streams[ch], delta) for ch in channels if ch in streams]

    def _stream(self, channel: str, now: float, meta_ttl: float) -> _Stream:
        old = self._streams.get(channel)
        stream = super()._stream(channel, now, meta_ttl)
        if stream is not old:
            self._dirty.add(channel)
        return stream

    def _commit_dirty(self) -> None:
        if self._dirty:
            entries = self._states(sorted(self._dirty))
            try:
                self.store.append(entries)
            except StoreError:
                return  # retried with the next commit
            self._dirty.clear()

    # ---- publish -----------------------------------------------------------------------
    def publish_sync(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[StreamPosition, str]:
        copy = Publication(pub.data, pub.info, 0, pub.tags, pub.time, pub.data_json, pub.delta)
        result = self.publish_many_sync([(channel, copy, opts)])[0]
        if isinstance(result, ReplyError):
            raise result
        return result

    def publish_many_sync(
        self, items: Sequence[tuple[str, Publication, PublishOptions]]
    ) -> list[PublishOutcome]:
        """Two passes: assign offsets and write the batch's record; then apply and deliver.

        If the record cannot be written, every item that needed it (history or an
        idempotency key) fails with error 100 and nothing of it is applied. The first
        loop's plain-history branch is the persistent batch path's hot loop.
        """
        now = self._clock()
        delta = self._wall() - now
        entries: list[Any] = []
        out: list[PublishOutcome] = []
        plan: list[_Planned] = []
        held_by: dict[str, _Held] = {}
        keys: dict[tuple[str, str], StreamPosition] = {}
        add_entry, add_out, add_plan = entries.append, out.append, plan.append
        for channel, pub, opts in items:
            if (
                opts.idempotency_key
                or opts.version
                or opts.history_size <= 0
                or opts.history_ttl <= 0
            ):
                self._plan_other(channel, pub, opts, now, delta, held_by, keys, entries, out, plan)
                continue
            held = held_by.get(channel)
            if held is None:
                held = held_by[channel] = self._hold(channel, opts, now)
            top = held[3] = held[3] + 1
            held[2] += 1
            if held[4] or held[5]:
                held[4], held[5] = 0, ""  # each publication sets the version
            pub.offset = top
            info = pub.info
            add_entry(
                (PUB, channel, top, pub.data,
                 None if info is None else (info.user, info.client, info.conn_info, info.chan_info),
                 pub.tags, pub.time, pub.data_json, pub.delta)
            )  # fmt: skip
            sp = StreamPosition(top, held[0].epoch)
            add_out((sp, ""))
            add_plan((channel, pub, sp, held, ""))
        if entries:
            for channel, (stream, opts, new, top, version, v_epoch) in held_by.items():
                kept = min(opts.history_size, len(stream.items) + new)
                entries.append(
                    (STATE, channel, stream.epoch, top, kept, now + opts.history_ttl + delta,
                     stream.meta_expire + delta, version, v_epoch)
                )  # fmt: skip
                self._dirty.discard(channel)
            if self._dirty:
                entries.extend(self._states(sorted(self._dirty)))
            try:
                self.store.append(entries)
            except StoreError:
                self._dirty.update(held_by)
                return self._failed(out, plan)
            self._dirty.clear()
        for stream, opts, _, top, version, v_epoch in held_by.values():
            stream.top = top
            stream.items_expire = now + opts.history_ttl
            stream.version, stream.version_epoch = version, v_epoch
        idem = self._idempotency
        delivered: list[tuple[str, Publication, StreamPosition]] = []
        deliver = delivered.append
        for channel, pub, sp, held, key in plan:
            if held is not None:
                queue = held[0].items
                queue.append(pub)
                size = held[1].history_size
                while len(queue) > size:
                    queue.popleft()
            if key:
                idem[(channel, key)] = (sp, now + IDEMPOTENCY_TTL)
            deliver((channel, pub, sp))
        self._deliver(delivered)
        return out

    def _hold(self, channel: str, opts: PublishOptions, now: float) -> _Held:
        stream = self._stream(channel, now, opts.history_meta_ttl)
        if stream.items and stream.items_expire <= now:
            stream.items.clear()
        return [stream, opts, 0, stream.top, stream.version, stream.version_epoch]

    def _plan_other(
        self,
        channel: str,
        pub: Publication,
        opts: PublishOptions,
        now: float,
        delta: float,
        held_by: dict[str, _Held],
        keys: dict[tuple[str, str], StreamPosition],
        entries: list[Any],
        out: list[PublishOutcome],
        plan: list[_Planned],
    ) -> None:
        """An item with an idempotency key or without history (first pass)."""
        key = opts.idempotency_key
        if key:
            cached = self._idempotency.get((channel, key))
            if cached is not None and cached[1] > now:
                out.append((cached[0], SUPPRESSED_IDEMPOTENCY))
                return
            seen = keys.get((channel, key))
            if seen is not None:  # the same key twice in one batch
                out.append((seen, SUPPRESSED_IDEMPOTENCY))
                return
        held = None
        sp = _NO_POSITION
        if opts.history_size > 0 and opts.history_ttl > 0:
            held = held_by.get(channel)
            if held is None:
                held = held_by[channel] = self._hold(channel, opts, now)
            if stale_version(opts, held[4], held[5]):
                out.append((StreamPosition(held[3], held[0].epoch), SUPPRESSED_VERSION))
                return
            held[4], held[5] = opts.version, opts.version_epoch
            top = held[3] = held[3] + 1
            held[2] += 1
            pub.offset = top
            entries.append(pub_entry(channel, pub))
            sp = StreamPosition(top, held[0].epoch)
        if key:
            keys[(channel, key)] = sp
            expire = now + delta + IDEMPOTENCY_TTL
            entries.append((IDEM, channel, key, sp.offset, sp.epoch, expire))
        out.append((sp, ""))
        plan.append((channel, pub, sp, held, key))

    def _failed(self, out: list[PublishOutcome], plan: list[_Planned]) -> list[PublishOutcome]:
        """The record was not written: fail what needed it, deliver the rest."""
        handler = self._handler
        result = list(out)
        planned = iter(plan)
        for i, outcome in enumerate(out):
            if isinstance(outcome, ReplyError) or outcome[1]:
                continue  # an idempotent repeat: answered from the table, not planned
            channel, pub, sp, held, key = next(planned)
            if held is not None or key:
                pub.offset = 0
                result[i] = ReplyError(ERROR_INTERNAL)
            elif handler is not None:
                handler.handle_publication(channel, pub, sp)
        return result

    # ---- reads and removal ---------------------------------------------------------------
    def history_sync(
        self, channel: str, flt: HistoryFilter, meta_ttl: float = 0.0
    ) -> HistoryResult:
        result = super().history_sync(channel, flt, meta_ttl)
        self._commit_dirty()
        self._read.add(channel)  # its meta TTL moved: written by the next ``expire``
        return result

    async def remove_history(self, channel: str) -> None:
        await super().remove_history(channel)
        if channel in self._streams:
            try:
                self.store.append(self._states([channel]))
            except StoreError as exc:
                raise ReplyError(ERROR_INTERNAL) from exc

    # ---- housekeeping --------------------------------------------------------------------
    def expire(self) -> None:
        """As ``MemoryEngine.expire``; then write pending epochs, finish or start a
        compaction."""
        super().expire()
        if self._read:
            self._dirty |= self._read
            self._read.clear()
        self._commit_dirty()
        self.store.poll_compaction()
        if self.store.should_compact():
            self.compact()

    def compact(self, wait: bool = False) -> bool:
        """Snapshot what is retained now (in a forked child) and drop the log before it.

        Epochs not written yet are written first (to the segment being closed)."""
        self._commit_dirty()
        return self.store.compact(self._snapshot, wait)

    def _snapshot(self) -> Iterator[list[Any]]:
        delta = self._wall() - self._clock()
        chunk: list[Any] = []
        for channel, stream in self._streams.items():
            for pub in stream.items:
                chunk.append(pub_entry(channel, pub))
            chunk.append(self._state_entry(channel, stream, delta))
            if len(chunk) >= SNAPSHOT_CHUNK:
                yield chunk
                chunk = []
        now = self._clock()
        for (channel, key), (sp, expire) in self._idempotency.items():
            if expire > now:
                chunk.append((IDEM, channel, key, sp.offset, sp.epoch, expire + delta))
        yield chunk
