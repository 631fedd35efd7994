"""MemoryEngine specifics beyond the engine contract (relay.engines.memory)."""

from __future__ import annotations

import string
from collections.abc import Sequence

import pytest

from relay.engines.base import PublishOptions
from relay.engines.memory import IDEMPOTENCY_TTL, MemoryEngine, new_epoch
from relay.protocol.messages import ClientInfo, HistoryFilter, Publication, StreamPosition


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.pubs: list[tuple[str, Publication, StreamPosition]] = []

    def handle_publication(self, channel: str, pub: Publication, sp: StreamPosition) -> None:
        self.pubs.append((channel, pub, sp))

    def handle_publications(self, batch: Sequence[tuple[str, Publication, StreamPosition]]) -> None:
        self.pubs.extend(batch)

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        pass

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        pass


ALL = HistoryFilter(limit=-1)


def _engine(**kw: object) -> tuple[MemoryEngine, FakeClock]:
    clock = FakeClock()
    return MemoryEngine(clock=clock, **kw), clock  # type: ignore[arg-type]


# ---- epochs -----------------------------------------------------------------------------
def test_new_epoch_is_eight_letters() -> None:
    epochs = {new_epoch() for _ in range(50)}
    for e in epochs:
        assert len(e) == 8
        assert set(e) <= set(string.ascii_letters)
    assert len(epochs) > 1


# ---- sync paths and handler --------------------------------------------------------------
def test_publish_without_handler_is_fine() -> None:
    e, _ = _engine()
    sp, dup = e.publish_sync(
        "ch", Publication(b"1"), PublishOptions(history_size=5, history_ttl=10)
    )
    assert sp.offset == 1 and not dup


async def test_start_close_and_subscribe_are_noops() -> None:
    e, _ = _engine()
    assert await e.start() is None
    assert await e.subscribe("ch") is None
    assert await e.unsubscribe("ch") is None
    assert await e.close() is None


async def test_join_leave_without_handler() -> None:
    e, _ = _engine()
    await e.publish_join("ch", ClientInfo("u", "c"))
    await e.publish_leave("ch", ClientInfo("u", "c"))


def test_publish_keeps_callers_publication_untouched() -> None:
    e, _ = _engine()
    pub = Publication(b"1")
    sp, _ = e.publish_sync("ch", pub, PublishOptions(history_size=5, history_ttl=10))
    assert sp.offset == 1 and pub.offset == 0  # the stream stores its own copy
    e.publish_sync("other", pub, PublishOptions(history_size=5, history_ttl=10))
    assert [p.offset for p in e.history_sync("ch", ALL).publications] == [1]
    pub2 = Publication(b"2")
    e.publish_sync("ch", pub2, PublishOptions())  # no history: offset untouched
    assert pub2.offset == 0


@pytest.mark.parametrize(("since", "offsets"), [(4, [3, 2]), (6, [5, 4]), (7, []), (99, [])])
def test_reverse_read_past_the_top_is_empty(since: int, offsets: list[int]) -> None:
    """Centrifugo 6.9.1's memory engine: a reverse read since offset - 1 > top reads
    nothing (its Redis engine reads from the top instead; test_redis_engine.py)."""
    e, _ = _engine()
    opts = PublishOptions(history_size=10, history_ttl=10)
    for i in range(5):
        e.publish_sync("ch", Publication(str(i).encode()), opts)
    flt = HistoryFilter(since=StreamPosition(since, ""), limit=2, reverse=True)
    assert [p.offset for p in e.history_sync("ch", flt).publications] == offsets


def test_sync_and_async_history_agree() -> None:
    e, _ = _engine()
    opts = PublishOptions(history_size=5, history_ttl=10)
    for i in range(3):
        e.publish_sync("ch", Publication(str(i).encode()), opts)
    res = e.history_sync("ch", ALL)
    assert [p.offset for p in res.publications] == [1, 2, 3]
    assert res.position.offset == 3


def test_delivery_happens_synchronously_in_order() -> None:
    e, _ = _engine()
    rec = Recorder()
    e.set_event_handler(rec)
    opts = PublishOptions(history_size=2, history_ttl=10)
    for i in range(4):
        e.publish_sync("ch", Publication(str(i).encode()), opts)
    assert [sp.offset for _, _, sp in rec.pubs] == [1, 2, 3, 4]


# ---- default meta TTL --------------------------------------------------------------------
def test_default_meta_ttl_applies_when_unset() -> None:
    e, clock = _engine(default_meta_ttl=100.0)
    opts = PublishOptions(history_size=5, history_ttl=10)
    sp, _ = e.publish_sync("ch", Publication(b"1"), opts)
    clock.now += 99
    assert e.history_sync("ch", HistoryFilter()).position == sp  # read extends to +100
    clock.now += 100
    res = e.history_sync("ch", HistoryFilter())
    assert res.position.offset == 0 and res.position.epoch != sp.epoch


def test_default_meta_ttl_is_720h() -> None:
    e, clock = _engine()
    opts = PublishOptions(history_size=5, history_ttl=10)
    sp, _ = e.publish_sync("ch", Publication(b"1"), opts)
    clock.now += 720 * 3600 - 1
    assert e.history_sync("ch", HistoryFilter()).position == sp


# ---- expire() housekeeping ----------------------------------------------------------------
def test_expire_drops_streams_past_meta_ttl() -> None:
    e, clock = _engine()
    opts = PublishOptions(history_size=5, history_ttl=10, history_meta_ttl=60)
    e.publish_sync("old", Publication(b"1"), opts)
    clock.now += 30
    e.publish_sync("young", Publication(b"1"), opts)
    clock.now += 30  # "old" reaches its meta expiry exactly
    e.expire()
    assert "old" not in e._streams
    assert "young" in e._streams
    clock.now += 30
    e.expire()
    assert e._streams == {}


def test_expire_clears_items_but_keeps_position() -> None:
    e, clock = _engine()
    opts = PublishOptions(history_size=5, history_ttl=10, history_meta_ttl=600)
    sp, _ = e.publish_sync("ch", Publication(b"1"), opts)
    clock.now += 9
    e.expire()
    assert len(e._streams["ch"].items) == 1
    clock.now += 1
    e.expire()
    stream = e._streams["ch"]
    assert len(stream.items) == 0
    assert (stream.top, stream.epoch) == (1, sp.epoch)


def test_expire_drops_idempotency_results() -> None:
    e, clock = _engine()
    e.publish_sync("ch", Publication(b"1"), PublishOptions(idempotency_key="a"))
    clock.now += 100
    e.publish_sync("ch", Publication(b"1"), PublishOptions(idempotency_key="b"))
    clock.now += IDEMPOTENCY_TTL - 100
    e.expire()
    assert set(e._idempotency) == {("ch", "b")}
    clock.now += 100
    e.expire()
    assert e._idempotency == {}


def test_expire_on_empty_engine() -> None:
    e, _ = _engine()
    e.expire()
    assert e._streams == {} and e._idempotency == {}


def test_idempotency_expires_exactly_at_ttl() -> None:
    e, clock = _engine()
    opts = PublishOptions(idempotency_key="k")
    assert e.publish_sync("ch", Publication(b"1"), opts)[1] == ""
    clock.now += IDEMPOTENCY_TTL
    assert e.publish_sync("ch", Publication(b"1"), opts)[1] == ""


def test_idempotency_cached_position_survives_epoch_change() -> None:
    e, clock = _engine()
    opts = PublishOptions(history_size=5, history_ttl=10, history_meta_ttl=60, idempotency_key="k")
    sp, _ = e.publish_sync("ch", Publication(b"1"), opts)
    clock.now += 100  # meta expired, idempotency still valid
    assert e.publish_sync("ch", Publication(b"1"), opts) == (sp, "idempotency")


@pytest.mark.parametrize("size", [1, 2, 5])
def test_size_retention_keeps_last_n(size: int) -> None:
    e, _ = _engine()
    opts = PublishOptions(history_size=size, history_ttl=10)
    for i in range(7):
        e.publish_sync("ch", Publication(str(i).encode()), opts)
    offsets = [p.offset for p in e.history_sync("ch", ALL).publications]
    assert offsets == list(range(8 - size, 8))


# ---- batches ------------------------------------------------------------------------------
def test_publish_many_matches_one_by_one() -> None:
    """The batch loop gives the same offsets, history, deliveries and idempotency as
    publishing each item alone, with channels interleaved and mixed options."""
    hist = PublishOptions(history_size=3, history_ttl=60.0)
    plain = PublishOptions()
    keyed = PublishOptions(history_size=3, history_ttl=60.0, idempotency_key="k")
    plan = [("a", hist), ("b", hist), ("a", plain), ("a", hist), ("a", keyed), ("a", keyed)]
    plan += [("a", hist), ("b", hist), ("a", hist)]

    def items() -> list[tuple[str, Publication, PublishOptions]]:
        return [(ch, Publication(b"%d" % i), opts) for i, (ch, opts) in enumerate(plan)]

    batch, _ = _engine()
    single, _ = _engine()
    got_batch, got_single = Recorder(), Recorder()
    batch.set_event_handler(got_batch)
    single.set_event_handler(got_single)
    outcomes = batch.publish_many_sync(items())
    expected = [single.publish_sync(ch, pub, opts) for ch, pub, opts in items()]

    def shape(results: list) -> list:  # type: ignore[type-arg]
        return [(sp.offset, dup) for sp, dup in results]

    assert shape(outcomes) == shape(expected)
    assert [o[0].offset for o in outcomes] == [1, 1, 0, 2, 3, 3, 4, 2, 5]
    assert outcomes[5][1] == "idempotency"  # the repeated idempotency key is suppressed
    assert len({o[0].epoch for o in outcomes if o[0].epoch and o[0].offset}) == 2  # a and b
    for engine in (batch, single):
        a = [p.data for p in engine.history_sync("a", ALL).publications]
        assert a == [b"4", b"6", b"8"]  # history_size 3 keeps the last three
    assert [(c, p.data) for c, p, _ in got_batch.pubs] == [
        (c, p.data) for c, p, _ in got_single.pubs
    ]


def test_publish_many_restarts_an_expired_stream() -> None:
    opts = PublishOptions(history_size=10, history_ttl=5.0, history_meta_ttl=30.0)
    engine, clock = _engine()
    engine.publish_many_sync([("a", Publication(b"1"), opts)])
    clock.now += 6  # items expired, the position (meta) not yet
    ((sp, _),) = engine.publish_many_sync([("a", Publication(b"2"), opts)])
    assert sp.offset == 2
    assert [p.data for p in engine.history_sync("a", ALL).publications] == [b"2"]
