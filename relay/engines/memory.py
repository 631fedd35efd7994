"""In-process engine: history streams, presence and idempotency in memory.

Everything here is synchronous underneath; the ``async`` methods never suspend, so a
caller that reads the stream and then registers a subscriber cannot be interleaved
with a publish (race-free join on one event loop).

Retention follows centrifuge's memory broker: at most ``history_size`` items; the
whole stream is dropped ``history_ttl`` after the last publish; the position (epoch +
top offset) lives ``history_meta_ttl`` after the last publish or read, then a new epoch
starts.
"""

from __future__ import annotations

import secrets
import string
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from relay.engines.base import (
    SUPPRESSED_IDEMPOTENCY,
    SUPPRESSED_VERSION,
    EventHandler,
    PublishOptions,
    stale_version,
)
from relay.errors import ERROR_UNRECOVERABLE_POSITION, ReplyError
from relay.protocol.messages import (
    ClientInfo,
    HistoryFilter,
    HistoryResult,
    Publication,
    StreamPosition,
    make_position,
)

__all__ = ["MemoryEngine", "new_epoch"]

IDEMPOTENCY_TTL = 300.0
_LETTERS = string.ascii_letters
_NO_POSITION = StreamPosition(0, "")


def new_epoch() -> str:
    """Eight random letters, like centrifuge's memory broker."""
    return "".join(secrets.choice(_LETTERS) for _ in range(8))


@dataclass(slots=True)
class _Stream:
    epoch: str
    top: int = 0
    items: deque[Publication] = field(default_factory=deque)
    items_expire: float = 0.0
    meta_expire: float = 0.0
    #: the last publication's version and version epoch (centrifuge's memstream keeps
    #: them from every publication, 0 and "" included)
    version: int = 0
    version_epoch: str = ""


class MemoryEngine:
    """The embedded default engine (``engine.type: memory``)."""

    def __init__(self, default_meta_ttl: float = 720 * 3600.0, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._handler: EventHandler | None = None
        self._streams: dict[str, _Stream] = {}
        self._idempotency: dict[tuple[str, str], tuple[StreamPosition, float]] = {}
        self._presence: dict[str, dict[str, ClientInfo]] = {}
        self._default_meta_ttl = default_meta_ttl
        self._clock = clock

    # ---- lifecycle --------------------------------------------------------------------
    def set_event_handler(self, handler: EventHandler) -> None:
        self._handler = handler

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # ---- broker -----------------------------------------------------------------------
    async def publish(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[StreamPosition, str]:
        return self.publish_sync(channel, pub, opts)

    def publish_sync(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[StreamPosition, str]:
        """Append and deliver without suspending (also used for batches)."""
        now = self._clock()
        if opts.idempotency_key:
            cached = self._idempotency.get((channel, opts.idempotency_key))
            if cached is not None and cached[1] > now:
                return cached[0], SUPPRESSED_IDEMPOTENCY
        sp = _NO_POSITION
        if opts.history_size > 0 and opts.history_ttl > 0:
            stale = self._stale_version(channel, opts, now)
            if stale is not None:
                return stale, SUPPRESSED_VERSION
            # The stream owns its copy; callers keep theirs (cheaper than dataclasses.replace).
            pub = Publication(pub.data, pub.info, 0, pub.tags, pub.time, pub.data_json, pub.delta)
            sp = self._append(channel, pub, opts, now)
        if opts.idempotency_key:
            self._idempotency[(channel, opts.idempotency_key)] = (sp, now + IDEMPOTENCY_TTL)
        if self._handler is not None:
            self._handler.handle_publication(channel, pub, sp)
        return sp, ""

    def _stale_version(
        self, channel: str, opts: PublishOptions, now: float
    ) -> StreamPosition | None:
        """The stream's top if ``opts`` carries a version not above the stream's last one
        (its version epoch unset or the same), else ``None``."""
        stream = self._streams.get(channel)
        if stream is None or stream.meta_expire <= now:
            return None
        if not stale_version(opts, stream.version, stream.version_epoch):
            return None
        return StreamPosition(stream.top, stream.epoch)

    def _append(
        self, channel: str, pub: Publication, opts: PublishOptions, now: float
    ) -> StreamPosition:
        stream = self._stream(channel, now, opts.history_meta_ttl)
        if stream.items and stream.items_expire <= now:
            stream.items.clear()
        stream.top += 1
        pub.offset = stream.top
        stream.items.append(pub)
        while len(stream.items) > opts.history_size:
            stream.items.popleft()
        stream.items_expire = now + opts.history_ttl
        stream.version, stream.version_epoch = opts.version, opts.version_epoch
        return StreamPosition(stream.top, stream.epoch)

    def _stream(self, channel: str, now: float, meta_ttl: float) -> _Stream:
        stream = self._streams.get(channel)
        if stream is None or stream.meta_expire <= now:
            stream = _Stream(epoch=new_epoch())
            self._streams[channel] = stream
        stream.meta_expire = now + (meta_ttl or self._default_meta_ttl)
        return stream

    async def publish_many(
        self, items: Sequence[tuple[str, Publication, PublishOptions]]
    ) -> list[tuple[StreamPosition, str] | ReplyError]:
        return self.publish_many_sync(items)

    def publish_many_sync(
        self, items: Sequence[tuple[str, Publication, PublishOptions]]
    ) -> list[tuple[StreamPosition, str] | ReplyError]:
        """A batch of publishes, in order; per-item errors are returned, not raised.

        The batch takes ownership of its ``Publication`` objects (they go into the
        streams as they are). One clock reading and one stream lookup per channel serve
        the whole batch: the loop below is the batch path's hot loop.
        """
        now = self._clock()
        streams: dict[str, _Stream] = {}
        out: list[tuple[StreamPosition, str] | ReplyError] = []
        delivered: list[tuple[str, Publication, StreamPosition]] = []
        append, deliver = out.append, delivered.append
        for channel, pub, opts in items:
            size = opts.history_size
            history = size > 0 and opts.history_ttl > 0
            if not history and not opts.idempotency_key:
                deliver((channel, pub, _NO_POSITION))  # no history: delivered as it is
                append((_NO_POSITION, ""))
                continue
            if opts.idempotency_key or opts.version or not history:
                streams.pop(channel, None)  # its state moves outside this loop
                if delivered:  # keep the order of deliveries
                    self._deliver(delivered)
                    delivered.clear()
                try:
                    append(self.publish_sync(channel, pub, opts))
                except ReplyError as exc:
                    append(exc)
                continue
            stream = streams.get(channel)
            if stream is None:
                stream = streams[channel] = self._stream(channel, now, opts.history_meta_ttl)
                if stream.items and stream.items_expire <= now:
                    stream.items.clear()
                stream.items_expire = now + opts.history_ttl
                stream.version, stream.version_epoch = 0, ""  # as each publication sets it
            top = pub.offset = stream.top = stream.top + 1
            queue = stream.items
            queue.append(pub)
            while len(queue) > size:
                queue.popleft()
            sp = make_position(StreamPosition, (top, stream.epoch))
            deliver((channel, pub, sp))
            append((sp, ""))
        if delivered:
            self._deliver(delivered)
        return out

    def _deliver(self, batch: list[tuple[str, Publication, StreamPosition]]) -> None:
        if self._handler is not None:
            self._handler.handle_publications(batch)

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        if self._handler is not None:
            self._handler.handle_join(channel, info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        if self._handler is not None:
            self._handler.handle_leave(channel, info)

    async def subscribe(self, channel: str) -> None:
        return None

    async def unsubscribe(self, channel: str) -> None:
        return None

    async def history(
        self, channel: str, flt: HistoryFilter, meta_ttl: float = 0.0
    ) -> HistoryResult:
        return self.history_sync(channel, flt, meta_ttl)

    def history_sync(
        self, channel: str, flt: HistoryFilter, meta_ttl: float = 0.0
    ) -> HistoryResult:
        now = self._clock()
        stream = self._stream(channel, now, meta_ttl)
        if stream.items and stream.items_expire <= now:
            stream.items.clear()
        position = StreamPosition(stream.top, stream.epoch)
        since = flt.since
        if since is not None and since.epoch and since.epoch != stream.epoch:
            raise ReplyError(ERROR_UNRECOVERABLE_POSITION)
        if flt.limit == 0:
            return HistoryResult([], position)
        items = list(stream.items)
        if since is not None:
            if flt.reverse:
                # past the top (offset - 1 > top) reads nothing, as centrifuge's stream does
                past_top = since.offset > stream.top + 1
                items = [] if past_top else [p for p in items if p.offset < since.offset]
            else:
                items = [p for p in items if p.offset > since.offset]
        if flt.reverse:
            items.reverse()
        if flt.limit > 0:
            items = items[: flt.limit]
        return HistoryResult(items, position)

    async def remove_history(self, channel: str) -> None:
        stream = self._streams.get(channel)
        if stream is not None:
            stream.items.clear()

    # ---- presence ---------------------------------------------------------------------
    async def add_presence(self, channel: str, client_id: str, info: ClientInfo) -> None:
        self.add_presence_sync(channel, client_id, info)

    def add_presence_sync(self, channel: str, client_id: str, info: ClientInfo) -> None:
        self._presence.setdefault(channel, {})[client_id] = info

    async def remove_presence(self, channel: str, client_id: str, user: str) -> None:
        self.remove_presence_sync(channel, client_id)

    def remove_presence_sync(self, channel: str, client_id: str) -> None:
        entries = self._presence.get(channel)
        if entries is not None:
            entries.pop(client_id, None)
            if not entries:
                del self._presence[channel]

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        return dict(self._presence.get(channel, {}))

    async def presence_stats(self, channel: str) -> tuple[int, int]:
        entries = self._presence.get(channel, {})
        return len(entries), len({info.user for info in entries.values()})

    # ---- housekeeping -----------------------------------------------------------------
    def expire(self) -> None:
        """Drop expired streams and idempotency results (called periodically)."""
        now = self._clock()
        for ch in [ch for ch, s in self._streams.items() if s.meta_expire <= now]:
            del self._streams[ch]
        for stream in self._streams.values():
            if stream.items and stream.items_expire <= now:
                stream.items.clear()
        for key in [k for k, (_, exp) in self._idempotency.items() if exp <= now]:
            del self._idempotency[key]
