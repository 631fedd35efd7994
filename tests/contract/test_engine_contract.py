"""The engine contract (relay.engines.base), run against every available engine.

``engine_factory`` is parametrized over the engines; add a Redis engine as a second
``pytest.param`` in ``ENGINES`` (its ``clock`` support decides whether the TTL cases
run for it). Channel names are unique per test so a shared backend needs no cleanup.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from relay.engines.base import Engine, PublishOptions
from relay.engines.memory import IDEMPOTENCY_TTL, MemoryEngine
from relay.engines.persistent import PersistentMemoryEngine
from relay.engines.store import StreamStore
from relay.errors import ReplyError
from relay.protocol.messages import ClientInfo, HistoryFilter, Publication, StreamPosition


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Recorder:
    """An EventHandler that keeps what it is given."""

    pubs: list[tuple[str, Publication, StreamPosition]] = field(default_factory=list)
    joins: list[tuple[str, ClientInfo]] = field(default_factory=list)
    leaves: list[tuple[str, ClientInfo]] = field(default_factory=list)

    def handle_publication(self, channel: str, pub: Publication, sp: StreamPosition) -> None:
        self.pubs.append((channel, pub, sp))

    def handle_publications(self, batch: Sequence[tuple[str, Publication, StreamPosition]]) -> None:
        self.pubs.extend(batch)

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        self.joins.append((channel, info))

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        self.leaves.append((channel, info))


@dataclass
class EngineSpec:
    """How to build one engine kind; ``clock`` is None where time cannot be injected."""

    build: Callable[[FakeClock | None], Engine]
    supports_clock: bool


def _memory(clock: FakeClock | None) -> Engine:
    if clock is None:
        return MemoryEngine()
    return MemoryEngine(clock=clock)


def _persistent(clock: FakeClock | None) -> Engine:
    """The memory engine writing ahead to a history log (engines/persistent.py)."""
    directory = tempfile.mkdtemp(prefix="relay-contract-")
    atexit.register(shutil.rmtree, directory, True)
    store = StreamStore(directory, "none")
    if clock is None:
        return PersistentMemoryEngine(store)
    return PersistentMemoryEngine(store, clock=clock)


ENGINES = [
    pytest.param(EngineSpec(_memory, supports_clock=True), id="memory"),
    pytest.param(EngineSpec(_persistent, supports_clock=True), id="persistent"),
    # pytest.param(EngineSpec(_redis, supports_clock=False), id="redis"),
]


@dataclass
class Harness:
    engine: Engine
    handler: Recorder
    clock: FakeClock | None

    def tick(self, seconds: float) -> None:
        if self.clock is None:
            pytest.skip("engine has no injectable clock")
        self.clock.advance(seconds)


Factory = Callable[..., Awaitable[Harness]]


@pytest.fixture(params=ENGINES)
async def engine_factory(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    spec: EngineSpec = request.param
    made: list[Engine] = []

    async def make(*, clock: bool = False) -> Harness:
        if clock and not spec.supports_clock:
            pytest.skip("engine has no injectable clock")
        fake = FakeClock() if clock else None
        engine = spec.build(fake)
        handler = Recorder()
        engine.set_event_handler(handler)
        await engine.start()
        made.append(engine)
        return Harness(engine, handler, fake)

    yield make
    for engine in made:
        await engine.close()


@pytest.fixture
def channel() -> str:
    return f"test-{uuid.uuid4().hex}"


HIST = PublishOptions(history_size=10, history_ttl=300.0)
ALL = HistoryFilter(limit=-1)


def _pub(n: int) -> Publication:
    return Publication(f'{{"n":{n}}}'.encode())


def _data(pubs: list[Publication]) -> list[bytes]:
    return [p.data for p in pubs]


async def _publish_n(h: Harness, channel: str, n: int, opts: PublishOptions = HIST) -> list:
    out = []
    for i in range(1, n + 1):
        sp, dup = await h.engine.publish(channel, _pub(i), opts)
        assert dup == ""
        out.append(sp)
    return out


# ---- publish ----------------------------------------------------------------------------
async def test_publish_without_history(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    pub = _pub(1)
    sp, dup = await h.engine.publish(channel, pub, PublishOptions())
    assert (sp, dup) == (StreamPosition(0, ""), "")
    assert len(h.handler.pubs) == 1
    ch, got, got_sp = h.handler.pubs[0]
    assert ch == channel and got.data == pub.data and got_sp == StreamPosition(0, "")
    assert got.offset == 0


@pytest.mark.parametrize(
    "opts",
    [PublishOptions(history_size=10), PublishOptions(history_ttl=60.0)],
    ids=["size-only", "ttl-only"],
)
async def test_history_needs_size_and_ttl(
    engine_factory: Factory, channel: str, opts: PublishOptions
) -> None:
    h = await engine_factory()
    sp, _ = await h.engine.publish(channel, _pub(1), opts)
    assert sp == StreamPosition(0, "")


async def test_publish_with_history_offsets(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    sps = await _publish_n(h, channel, 3)
    assert [sp.offset for sp in sps] == [1, 2, 3]
    epoch = sps[0].epoch
    assert epoch and all(sp.epoch == epoch for sp in sps)
    # delivered in offset order with the same positions
    assert [sp for _, _, sp in h.handler.pubs] == sps
    assert [p.offset for _, p, _ in h.handler.pubs] == [1, 2, 3]
    res = await h.engine.history(channel, ALL)
    assert res.position == StreamPosition(3, epoch)
    assert [p.offset for p in res.publications] == [1, 2, 3]
    assert _data(res.publications) == [b'{"n":1}', b'{"n":2}', b'{"n":3}']


async def test_channels_are_independent(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    other = channel + "-other"
    await _publish_n(h, channel, 2)
    sp, _ = await h.engine.publish(other, _pub(9), HIST)
    assert sp.offset == 1
    assert (await h.engine.history(channel, ALL)).position.offset == 2


async def test_history_position_of_new_channel(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    res = await h.engine.history(channel, HistoryFilter())
    assert res.publications == []
    assert res.position.offset == 0
    assert res.position.epoch  # the read creates the epoch
    again = await h.engine.history(channel, HistoryFilter())
    assert again.position == res.position
    sp, _ = await h.engine.publish(channel, _pub(1), HIST)
    assert sp == StreamPosition(1, res.position.epoch)


async def test_retention_by_size(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    opts = PublishOptions(history_size=3, history_ttl=300.0)
    await _publish_n(h, channel, 5, opts)
    res = await h.engine.history(channel, ALL)
    assert [p.offset for p in res.publications] == [3, 4, 5]
    assert res.position.offset == 5


async def test_retention_by_ttl(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory(clock=True)
    opts = PublishOptions(history_size=10, history_ttl=10.0)
    sps = await _publish_n(h, channel, 2, opts)
    h.tick(5)
    assert len((await h.engine.history(channel, ALL)).publications) == 2
    await h.engine.publish(channel, _pub(3), opts)  # refreshes the items TTL
    h.tick(9)
    assert [p.offset for p in (await h.engine.history(channel, ALL)).publications] == [1, 2, 3]
    h.tick(2)
    res = await h.engine.history(channel, ALL)
    assert res.publications == []
    assert res.position == StreamPosition(3, sps[0].epoch)  # position survives
    sp, _ = await h.engine.publish(channel, _pub(4), opts)
    assert sp == StreamPosition(4, sps[0].epoch)
    assert [p.offset for p in (await h.engine.history(channel, ALL)).publications] == [4]


async def test_meta_ttl_expiry_starts_new_epoch(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory(clock=True)
    opts = PublishOptions(history_size=10, history_ttl=5.0, history_meta_ttl=60.0)
    first = await _publish_n(h, channel, 3, opts)
    h.tick(59)
    sp, _ = await h.engine.publish(channel, _pub(4), opts)  # refreshes meta TTL
    assert sp == StreamPosition(4, first[0].epoch)
    h.tick(61)
    sp, _ = await h.engine.publish(channel, _pub(5), opts)
    assert sp.offset == 1
    assert sp.epoch != first[0].epoch
    res = await h.engine.history(channel, ALL, meta_ttl=60.0)
    assert res.position == sp
    assert [p.offset for p in res.publications] == [1]


async def test_history_read_extends_meta_ttl(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory(clock=True)
    opts = PublishOptions(history_size=10, history_ttl=5.0, history_meta_ttl=60.0)
    (sp,) = await _publish_n(h, channel, 1, opts)
    h.tick(50)
    await h.engine.history(channel, HistoryFilter(), meta_ttl=60.0)
    h.tick(50)
    res = await h.engine.history(channel, HistoryFilter(), meta_ttl=60.0)
    assert res.position == sp
    h.tick(61)
    res = await h.engine.history(channel, HistoryFilter(), meta_ttl=60.0)
    assert res.position.offset == 0
    assert res.position.epoch != sp.epoch


# ---- history filters --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("since", "limit", "reverse", "offsets"),
    [
        (None, 0, False, []),
        (None, 0, True, []),
        (None, -1, False, [1, 2, 3, 4, 5]),
        (None, -1, True, [5, 4, 3, 2, 1]),
        (None, 2, False, [1, 2]),
        (None, 2, True, [5, 4]),
        (None, 10, False, [1, 2, 3, 4, 5]),
        (0, -1, False, [1, 2, 3, 4, 5]),
        (2, -1, False, [3, 4, 5]),
        (2, 2, False, [3, 4]),
        (2, 0, False, []),
        (5, -1, False, []),
        (7, -1, False, []),
        (4, -1, True, [3, 2, 1]),
        (4, 2, True, [3, 2]),
        (1, -1, True, []),
        (6, -1, True, [5, 4, 3, 2, 1]),
    ],
)
async def test_history_filters(
    engine_factory: Factory,
    channel: str,
    since: int | None,
    limit: int,
    reverse: bool,
    offsets: list[int],
) -> None:
    h = await engine_factory()
    sps = await _publish_n(h, channel, 5)
    epoch = sps[0].epoch
    flt = HistoryFilter(
        since=None if since is None else StreamPosition(since, epoch),
        limit=limit,
        reverse=reverse,
    )
    res = await h.engine.history(channel, flt)
    assert [p.offset for p in res.publications] == offsets
    assert res.position == StreamPosition(5, epoch)


async def test_history_since_without_epoch(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    await _publish_n(h, channel, 3)
    res = await h.engine.history(channel, HistoryFilter(since=StreamPosition(1, ""), limit=-1))
    assert [p.offset for p in res.publications] == [2, 3]


@pytest.mark.parametrize("limit", [0, -1, 2])
@pytest.mark.parametrize("reverse", [False, True])
async def test_history_since_wrong_epoch_112(
    engine_factory: Factory, channel: str, limit: int, reverse: bool
) -> None:
    h = await engine_factory()
    await _publish_n(h, channel, 3)
    flt = HistoryFilter(since=StreamPosition(1, "wrong"), limit=limit, reverse=reverse)
    with pytest.raises(ReplyError) as ei:
        await h.engine.history(channel, flt)
    assert ei.value.error.code == 112


async def test_remove_history_keeps_position(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    sps = await _publish_n(h, channel, 3)
    await h.engine.remove_history(channel)
    res = await h.engine.history(channel, ALL)
    assert res.publications == []
    assert res.position == sps[-1]
    sp, _ = await h.engine.publish(channel, _pub(4), HIST)
    assert sp == StreamPosition(4, sps[0].epoch)
    assert [p.offset for p in (await h.engine.history(channel, ALL)).publications] == [4]


async def test_remove_history_of_unknown_channel(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    await h.engine.remove_history(channel)


# ---- idempotency ------------------------------------------------------------------------
async def test_idempotency_key(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    opts = PublishOptions(history_size=10, history_ttl=300.0, idempotency_key="k1")
    sp1, dup1 = await h.engine.publish(channel, _pub(1), opts)
    sp2, dup2 = await h.engine.publish(channel, _pub(2), opts)
    assert (dup1, dup2) == ("", "idempotency")
    assert sp2 == sp1 == StreamPosition(1, sp1.epoch)
    assert len(h.handler.pubs) == 1
    res = await h.engine.history(channel, ALL)
    assert _data(res.publications) == [b'{"n":1}']
    # another key, or the same key on another channel, is a new publication
    sp3, dup3 = await h.engine.publish(
        channel, _pub(3), PublishOptions(history_size=10, history_ttl=300.0, idempotency_key="k2")
    )
    assert (sp3.offset, dup3) == (2, "")
    _, dup4 = await h.engine.publish(channel + "-x", _pub(4), opts)
    assert dup4 == ""
    assert len(h.handler.pubs) == 3


async def test_idempotency_without_history(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    opts = PublishOptions(idempotency_key="k")
    assert await h.engine.publish(channel, _pub(1), opts) == (StreamPosition(0, ""), "")
    assert await h.engine.publish(channel, _pub(1), opts) == (StreamPosition(0, ""), "idempotency")
    assert len(h.handler.pubs) == 1


def _versioned(version: int, epoch: str = "") -> PublishOptions:
    return PublishOptions(history_size=10, history_ttl=3600.0, version=version, version_epoch=epoch)


async def test_stale_versions_are_suppressed(engine_factory: Factory, channel: str) -> None:
    """As centrifuge's brokers: with history, a version not above the last one (same
    version epoch, or none given) is suppressed; the answer is the stream's top."""
    h = await engine_factory()
    sp1, why1 = await h.engine.publish(channel, _pub(1), _versioned(2, "a"))
    assert why1 == ""
    for version, epoch in ((2, "a"), (1, "a"), (2, ""), (1, "")):
        assert await h.engine.publish(channel, _pub(9), _versioned(version, epoch)) == (
            sp1,
            "version",
        )
    sp2, why2 = await h.engine.publish(channel, _pub(2), _versioned(3, "a"))
    sp3, why3 = await h.engine.publish(channel, _pub(3), _versioned(1, "b"))  # a new epoch
    assert (sp2.offset, sp3.offset, why2, why3) == (2, 3, "", "")
    res = await h.engine.history(channel, ALL)
    assert [p.data for p in res.publications] == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    assert len(h.handler.pubs) == 3


async def test_versions_need_history(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    opts = PublishOptions(version=5)
    assert [(await h.engine.publish(channel, _pub(i), opts))[1] for i in (1, 2)] == ["", ""]
    assert len(h.handler.pubs) == 2


async def test_stale_versions_in_a_batch(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    items = [
        (channel, _pub(1), _versioned(5)),
        (channel, _pub(2), _versioned(5)),  # stale against the one before it
        (channel, _pub(3), HIST),
        (channel, _pub(4), _versioned(6)),
        (channel, _pub(5), _versioned(6)),
    ]
    outcomes = await h.engine.publish_many(items)
    assert [o[1] for o in outcomes if not isinstance(o, ReplyError)] == [
        "", "version", "", "", "version",
    ]  # fmt: skip
    res = await h.engine.history(channel, ALL)
    assert [p.data for p in res.publications] == [b'{"n":1}', b'{"n":3}', b'{"n":4}']


async def test_idempotency_expires(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory(clock=True)
    opts = PublishOptions(history_size=10, history_ttl=3600.0, idempotency_key="k")
    sp1, _ = await h.engine.publish(channel, _pub(1), opts)
    h.tick(IDEMPOTENCY_TTL - 1)
    sp2, dup = await h.engine.publish(channel, _pub(2), opts)
    assert (sp2, dup) == (sp1, "idempotency")
    h.tick(2)
    sp3, dup = await h.engine.publish(channel, _pub(3), opts)
    assert dup == ""
    assert sp3.offset == 2
    assert len(h.handler.pubs) == 2


def test_idempotency_ttl_is_300s() -> None:
    assert IDEMPOTENCY_TTL == 300.0


# ---- join / leave -----------------------------------------------------------------------
async def test_join_leave_delivered(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    info = ClientInfo("u1", "c1", conn_info=b'{"a":1}')
    await h.engine.subscribe(channel)
    await h.engine.publish_join(channel, info)
    await h.engine.publish_leave(channel, info)
    assert h.handler.joins == [(channel, info)]
    assert h.handler.leaves == [(channel, info)]
    await h.engine.unsubscribe(channel)


# ---- presence ---------------------------------------------------------------------------
async def test_presence(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    e = h.engine
    assert await e.presence(channel) == {}
    assert await e.presence_stats(channel) == (0, 0)
    a1, a2, b1 = ClientInfo("alice", "c1"), ClientInfo("alice", "c2"), ClientInfo("bob", "c3")
    await e.add_presence(channel, "c1", a1)
    await e.add_presence(channel, "c2", a2)
    await e.add_presence(channel, "c3", b1)
    assert await e.presence(channel) == {"c1": a1, "c2": a2, "c3": b1}
    assert await e.presence_stats(channel) == (3, 2)
    # refreshing an entry does not add one
    a1b = ClientInfo("alice", "c1", chan_info=b'{"x":1}')
    await e.add_presence(channel, "c1", a1b)
    assert (await e.presence(channel))["c1"] == a1b
    assert await e.presence_stats(channel) == (3, 2)
    await e.remove_presence(channel, "c3", "bob")
    assert await e.presence_stats(channel) == (2, 1)
    await e.remove_presence(channel, "missing", "nobody")
    await e.remove_presence(channel, "c1", "alice")
    await e.remove_presence(channel, "c2", "alice")
    assert await e.presence(channel) == {}
    assert await e.presence_stats(channel) == (0, 0)


async def test_presence_anonymous_users_count_once(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    await h.engine.add_presence(channel, "c1", ClientInfo("", "c1"))
    await h.engine.add_presence(channel, "c2", ClientInfo("", "c2"))
    assert await h.engine.presence_stats(channel) == (2, 1)


async def test_presence_channels_are_independent(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    await h.engine.add_presence(channel, "c1", ClientInfo("u", "c1"))
    assert await h.engine.presence(channel + "-other") == {}


async def test_presence_result_is_a_copy(engine_factory: Factory, channel: str) -> None:
    h = await engine_factory()
    await h.engine.add_presence(channel, "c1", ClientInfo("u", "c1"))
    snap = await h.engine.presence(channel)
    snap.clear()
    assert len(await h.engine.presence(channel)) == 1
