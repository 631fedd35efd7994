"""The engine contract against a real ``redis-server``, plus Redis-only behaviour.

The contract functions of ``test_engine_contract.py`` are re-collected here with an
``engine_factory`` that builds a :class:`RedisEngine`. With a broker, delivery goes
through Redis PUB/SUB to subscribed nodes, asynchronously, so the contract sees the
engine through :class:`_Delivered`: it subscribes a channel before publishing to it and
waits until the publication (or join/leave) came back through Redis. Everything is
skipped when ``redis-server`` is not installed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from relay.cluster.shards import fnv1a_64 as fnv1a64
from relay.cluster.shards import jump_hash
from relay.config import RedisConfig
from relay.engines.base import PublishOptions
from relay.engines.redis import RedisEngine, shard_index
from relay.errors import ReplyError
from relay.protocol.messages import ClientInfo, HistoryFilter, Publication, StreamPosition
from tests.contract import test_engine_contract as contract
from tests.contract.test_engine_contract import Harness, Recorder
from tests.redis_server import RedisServer, redis_available

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server is not installed")

# the contract's tests, collected again for this module's engine_factory and channel
globals().update({k: v for k, v in vars(contract).items() if k.startswith("test_")})


@pytest.fixture(name="channel")
def _channel() -> str:
    return f"test-{uuid.uuid4().hex}"


HIST = PublishOptions(history_size=10, history_ttl=300.0)
WAIT = 5.0


async def eventually(cond: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.002)
    return True


class Handler(Recorder):
    """A Recorder that also keeps the broker-state hooks it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.lost: list[list[str]] = []
        self.resubscribed: list[list[str]] = []

    def handle_broker_lost(self, channels: list[str]) -> None:
        self.lost.append(channels)

    def handle_broker_resubscribed(self, channels: list[str]) -> None:
        self.resubscribed.append(channels)

    def events(self) -> int:
        return len(self.pubs) + len(self.joins) + len(self.leaves)


class _Delivered:
    """The engine as the contract expects it: delivery done when a publish returns."""

    def __init__(self, engine: RedisEngine, handler: Handler) -> None:
        self.engine = engine
        self.handler = handler
        self.subscribed: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    async def subscribe(self, channel: str) -> None:
        await self.engine.subscribe(channel)
        self.subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self.engine.unsubscribe(channel)
        self.subscribed.discard(channel)

    async def _delivered(self, channel: str, send: Callable[[], Any]) -> Any:
        if channel not in self.subscribed:
            await self.subscribe(channel)
        before = self.handler.events()
        result = await send()
        suppressed = isinstance(result, tuple) and result[1]
        if not suppressed:
            await eventually(lambda: self.handler.events() > before)
        return result

    async def publish(
        self, channel: str, pub: Publication, opts: PublishOptions
    ) -> tuple[StreamPosition, str]:
        result: tuple[StreamPosition, str] = await self._delivered(
            channel, lambda: self.engine.publish(channel, pub, opts)
        )
        return result

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        await self._delivered(channel, lambda: self.engine.publish_join(channel, info))

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        await self._delivered(channel, lambda: self.engine.publish_leave(channel, info))


# ---- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


def _config(*urls: str, **kw: Any) -> RedisConfig:
    return RedisConfig(address=tuple(urls), prefix=f"t{uuid.uuid4().hex[:8]}", **kw)


@pytest.fixture
async def make_engine() -> AsyncIterator[Callable[..., Any]]:
    made: list[RedisEngine] = []

    async def make(cfg: RedisConfig, node_id: str = "n1") -> tuple[RedisEngine, Handler]:
        engine = RedisEngine(cfg, default_meta_ttl=3600.0, node_id=node_id)
        handler = Handler()
        engine.set_event_handler(handler)
        await engine.start()
        made.append(engine)
        return engine, handler

    yield make
    for engine in made:
        await engine.close()


@pytest.fixture
async def engine_factory(
    redis_server: RedisServer, make_engine: Callable[..., Any]
) -> AsyncIterator[Callable[..., Any]]:
    cfg = _config(redis_server.url)

    async def make(*, clock: bool = False) -> Harness:
        if clock:
            pytest.skip("engine has no injectable clock")
        engine, handler = await make_engine(cfg)
        return Harness(_Delivered(engine, handler), handler, None)  # type: ignore[arg-type]

    yield make


def _pub(n: int) -> Publication:
    return Publication(f'{{"n":{n}}}'.encode())


# ---- hashing ----------------------------------------------------------------------------
def test_fnv1a64_known_values() -> None:
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_jump_hash_known_values() -> None:
    # from the reference implementation (Lamping & Veach; dgryski/go-jump tests)
    assert [jump_hash(1, 1), jump_hash(0xDEAD10CC, 1)] == [0, 0]
    assert jump_hash(0xDEAD10CC, 666) == 361
    assert jump_hash(256, 1024) == 520


def test_jump_hash_is_consistent() -> None:
    moved = sum(shard_index(f"ch{i}", 3) != shard_index(f"ch{i}", 4) for i in range(2000))
    assert 300 < moved < 700  # about a quarter moves to the new shard, nothing else
    for i in range(2000):
        a, b = shard_index(f"ch{i}", 3), shard_index(f"ch{i}", 4)
        assert a == b or b == 3


# ---- cross-node -------------------------------------------------------------------------
async def test_cross_instance_delivery(redis_server: RedisServer, make_engine: Any) -> None:
    cfg = _config(redis_server.url)
    a, ha = await make_engine(cfg, "node-a")
    b, hb = await make_engine(cfg, "node-b")
    ch = f"x-{uuid.uuid4().hex}"
    await b.subscribe(ch)
    sps = [(await a.publish(ch, _pub(i), HIST))[0] for i in range(1, 4)]
    await a.publish(ch, _pub(9), PublishOptions())
    info = ClientInfo("u1", "c1", conn_info=b'{"x":1}')
    await a.publish_join(ch, info)
    await a.publish_leave(ch, info)
    assert await eventually(lambda: len(hb.pubs) == 4 and len(hb.leaves) == 1)
    assert [sp for _, _, sp in hb.pubs] == [*sps, StreamPosition(0, "")]
    assert [p.offset for _, p, _ in hb.pubs] == [1, 2, 3, 0]
    assert hb.pubs[0][1].data == b'{"n":1}' and hb.pubs[0][1].data_json
    assert hb.joins == [(ch, info)] and hb.leaves == [(ch, info)]
    assert ha.pubs == []  # a is not subscribed
    ra, rb = await a.history(ch, contract.ALL), await b.history(ch, contract.ALL)
    assert ra.position == rb.position == sps[-1]
    assert [p.data for p in ra.publications] == [p.data for p in rb.publications]
    # unsubscribe stops delivery
    await b.unsubscribe(ch)
    await a.publish(ch, _pub(10), HIST)
    await asyncio.sleep(0.1)
    assert len(hb.pubs) == 4


async def test_publication_fields_round_trip(redis_server: RedisServer, make_engine: Any) -> None:
    engine, h = await make_engine(_config(redis_server.url))
    ch = f"f-{uuid.uuid4().hex}"
    await engine.subscribe(ch)
    pub = Publication(
        b"\x00\xffbin", info=ClientInfo("u", "c", b'{"a":1}', b'{"b":2}'), tags={"k": "v"}, time=7
    )
    await engine.publish(ch, pub, HIST)
    assert await eventually(lambda: len(h.pubs) == 1)
    got = h.pubs[0][1]
    # the time stamped on the wire is not passed on (centrifuge's pubToProto drops it)
    assert (got.data, got.info, got.tags, got.time, got.data_json) == (
        pub.data, pub.info, {"k": "v"}, 0, False,
    )  # fmt: skip
    (stored,) = (await engine.history(ch, contract.ALL)).publications
    assert (stored.data, stored.info, stored.tags, stored.offset) == (
        pub.data,
        pub.info,
        {"k": "v"},
        1,
    )


@pytest.mark.parametrize("since", [6, 7, 99])
async def test_reverse_read_past_the_top_reads_from_the_top(
    redis_server: RedisServer, make_engine: Any, since: int
) -> None:
    """Centrifugo 6.9.1's Redis engine (unlike its memory engine) reads a reverse range
    past the top from the top."""
    engine, _ = await make_engine(_config(redis_server.url))
    ch = f"r-{uuid.uuid4().hex}"
    for n in range(5):
        await engine.publish(ch, _pub(n), HIST)
    flt = HistoryFilter(since=StreamPosition(since, ""), limit=2, reverse=True)
    assert [p.offset for p in (await engine.history(ch, flt)).publications] == [5, 4]


async def test_centrifugo_key_layout(redis_server: RedisServer, make_engine: Any) -> None:
    cfg = _config(redis_server.url)
    engine, _ = await make_engine(cfg)
    ch = "layout"
    sp, _ = await engine.publish(ch, _pub(1), replace(HIST, idempotency_key="k"))
    await engine.add_presence(ch, "c1", ClientInfo("u", "c1"))
    r = redis_server.client()
    p = cfg.prefix
    assert r.hgetall(f"{p}.stream.meta.{ch}") == {b"e": sp.epoch.encode(), b"s": b"1"}
    assert [e[0] for e in r.xrange(f"{p}.stream.{ch}")] == [b"1-0"]
    assert r.hgetall(f"{p}.result.{ch}.k") == {b"e": sp.epoch.encode(), b"s": b"1"}
    assert 0 < r.pttl(f"{p}.result.{ch}.k") <= 300_000
    assert 0 < r.pttl(f"{p}.stream.{ch}") <= 300_000
    assert r.hkeys(f"{p}.presence.data.{ch}") == [b"c1"]
    assert r.zrange(f"{p}.presence.expire.{ch}", 0, -1) == [b"c1"]
    r.close()


async def test_epoch_survives_engine_restart(redis_server: RedisServer, make_engine: Any) -> None:
    cfg = _config(redis_server.url)
    first, _ = await make_engine(cfg)
    ch = f"r-{uuid.uuid4().hex}"
    sp, _ = await first.publish(ch, _pub(1), HIST)
    await first.close()
    second, _ = await make_engine(cfg, "n2")
    res = await second.history(ch, contract.ALL)
    assert res.position == sp
    sp2, _ = await second.publish(ch, _pub(2), HIST)
    assert sp2 == StreamPosition(2, sp.epoch)


async def test_presence_entries_expire(redis_server: RedisServer, make_engine: Any) -> None:
    engine, _ = await make_engine(_config(redis_server.url, presence_ttl=1.0))
    ch = f"p-{uuid.uuid4().hex}"
    await engine.add_presence(ch, "c1", ClientInfo("u", "c1"))
    assert await engine.presence_stats(ch) == (1, 1)
    await asyncio.sleep(2.1)
    assert await engine.presence(ch) == {}


# ---- batches ----------------------------------------------------------------------------
async def test_publish_many_one_round_trip_per_shard(
    redis_server: RedisServer, make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = RedisServer()
    second.start()
    try:
        cfg = _config(redis_server.url, second.url)
        engine, h = await make_engine(cfg)
        channels = [f"b{i}-{uuid.uuid4().hex[:6]}" for i in range(20)]
        for ch in channels:
            await engine.subscribe(ch)
        assert {engine.shard_of(ch) for ch in channels} == {0, 1}
        for ch in channels[:2]:  # open a pooled connection to each shard
            await engine.history(ch, HistoryFilter())
        items = [(channels[i % 20], _pub(i), HIST) for i in range(1000)]
        writes = _count_evalsha_writes(monkeypatch)
        out = await engine.publish_many(items)
        assert len(writes) == 2  # one write per shard carries all its publishes
        assert sum(writes) == 1000
        assert all(isinstance(o, tuple) for o in out)
        for ch in channels:
            offsets = [o[0].offset for (c, _, _), o in zip(items, out, strict=True) if c == ch]  # type: ignore[index]
            assert offsets == list(range(1, 51))
        assert await eventually(lambda: len(h.pubs) == 1000)
        for ch in channels:  # delivered in offset order per channel
            assert [sp.offset for c, _, sp in h.pubs if c == ch] == list(range(1, 51))
    finally:
        second.close()


def _count_evalsha_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch the connection class: record, per socket write, how many EVALSHA it carries."""
    from redis.asyncio.connection import AbstractConnection

    writes: list[int] = []
    original = AbstractConnection.send_packed_command

    async def counting(self: Any, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, (bytes, str, memoryview)) else list(command)
        n = sum(bytes(c).count(b"EVALSHA") for c in chunks)
        if n:
            writes.append(n)
        await original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return writes


async def test_two_shards_consistent_hashing(redis_server: RedisServer, make_engine: Any) -> None:
    with RedisServer() as second:
        cfg = _config(redis_server.url, second.url)
        engine, h = await make_engine(cfg)
        other, _ = await make_engine(cfg, "n2")
        channels = [f"s{i}-{uuid.uuid4().hex[:6]}" for i in range(40)]
        for ch in channels:
            await engine.subscribe(ch)
            await other.publish(ch, _pub(1), HIST)
        assert await eventually(lambda: len(h.pubs) == 40)
        servers = [redis_server.client(), second.client()]
        for ch in channels:
            idx = shard_index(ch, 2)
            assert engine.shard_of(ch) == idx
            assert servers[idx].exists(f"{cfg.prefix}.stream.{ch}") == 1
            assert servers[1 - idx].exists(f"{cfg.prefix}.stream.{ch}") == 0
        for r in servers:
            r.close()


# ---- faults -----------------------------------------------------------------------------
async def test_redis_down_then_back(make_engine: Any) -> None:
    with RedisServer() as server:
        cfg = _config(server.url, io_timeout=0.5, connect_timeout=0.2)
        engine, h = await make_engine(cfg)
        ch = f"d-{uuid.uuid4().hex}"
        await engine.subscribe(ch)
        await engine.publish(ch, _pub(1), HIST)
        assert await eventually(lambda: len(h.pubs) == 1)

        server.stop(kill=True)
        assert await eventually(lambda: h.lost == [[ch]])
        for call in (
            lambda: engine.publish(ch, _pub(2), HIST),
            lambda: engine.history(ch, contract.ALL),
            lambda: engine.presence(ch),
            lambda: engine.subscribe(ch + "-new"),
            lambda: engine.publish_many([(ch, _pub(3), HIST)]),
        ):
            started = time.monotonic()
            try:
                result = await call()
            except ReplyError as err:
                result = err
            if isinstance(result, list):
                result = result[0]
            assert isinstance(result, ReplyError) and result.error.code == 100
            assert time.monotonic() - started < 1.5

        server.start()
        assert await eventually(lambda: h.resubscribed == [[ch]])
        sp, _ = await engine.publish(ch, _pub(4), HIST)
        assert sp.offset == 1  # this Redis lost its data: a new epoch
        assert await eventually(lambda: len(h.pubs) == 2)
        assert h.pubs[-1][2] == sp


async def test_redis_down_at_start(make_engine: Any) -> None:
    server = RedisServer()
    try:
        engine, h = await make_engine(_config(server.url, io_timeout=0.3, connect_timeout=0.1))
        with pytest.raises(ReplyError) as ei:
            await engine.publish("c", _pub(1), HIST)
        assert ei.value.error.code == 100
        server.start()
        deadline = time.monotonic() + WAIT
        while True:  # the PUB/SUB link reconnects with backoff; clients retry meanwhile
            try:
                await engine.subscribe("c")
                break
            except ReplyError:
                assert time.monotonic() < deadline
        sp, _ = await engine.publish("c", _pub(1), HIST)
        assert sp.offset == 1
        assert await eventually(lambda: len(h.pubs) == 1)
    finally:
        server.close()
