"""The engine contract against a real three-master Redis Cluster, plus its key layout.

The contract's tests are collected again with an ``engine_factory`` whose engine uses a
``redis+cluster://`` address (``tests/redis_cluster.py`` starts the cluster once per
session); skipped without ``redis-server`` / ``redis-cli``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from relay.engines.base import PublishOptions
from relay.protocol.messages import ClientInfo, HistoryFilter, Publication
from tests.contract import test_engine_contract as contract
from tests.contract.test_engine_contract import Harness
from tests.contract.test_redis_engine import _config, _Delivered, make_engine
from tests.redis_cluster import RedisCluster, cluster_available

pytestmark = pytest.mark.skipif(not cluster_available(), reason="redis-server not installed")

globals().update({k: v for k, v in vars(contract).items() if k.startswith("test_")})
__all__ = ["make_engine"]  # the fixture, used by name


@pytest.fixture(name="channel")
def _channel() -> str:
    return f"test-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
async def engine_factory(
    redis_cluster: RedisCluster, make_engine: Callable[..., Any]
) -> AsyncIterator[Callable[..., Any]]:
    cfg = _config(redis_cluster.url)

    async def make(*, clock: bool = False) -> Harness:
        if clock:
            pytest.skip("engine has no injectable clock")
        engine, handler = await make_engine(cfg)
        return Harness(_Delivered(engine, handler), handler, None)  # type: ignore[arg-type]

    yield make


async def test_keys_carry_the_channel_as_hash_tag(
    redis_cluster: RedisCluster, make_engine: Callable[..., Any]
) -> None:
    cfg = _config(redis_cluster.url)
    engine, _ = await make_engine(cfg)
    ch = f"k-{uuid.uuid4().hex}"
    opts = PublishOptions(history_size=5, history_ttl=60.0, idempotency_key="once")
    await engine.publish(ch, Publication(b"1"), opts)
    await engine.add_presence(ch, "c1", ClientInfo("u", "c1"))
    node = redis_cluster.owner_of("{" + ch + "}").client()
    p = cfg.prefix
    for key in (f"{p}.stream.{{{ch}}}", f"{p}.stream.meta.{{{ch}}}", f"{p}.result.{{{ch}}}.once",
                f"{p}.presence.data.{{{ch}}}", f"{p}.presence.expire.{{{ch}}}"):  # fmt: skip
        assert node.exists(key) == 1, key


async def test_a_batch_over_every_master(
    redis_cluster: RedisCluster, make_engine: Callable[..., Any]
) -> None:
    engine, _ = await make_engine(_config(redis_cluster.url))
    per_master: dict[int, list[str]] = {}
    for i in range(200):  # names until each of the three masters owns three
        c = f"b{i}-{uuid.uuid4().hex}"
        names = per_master.setdefault(redis_cluster.owner_of("{" + c + "}").port, [])
        if len(names) < 3:
            names.append(c)
        if sum(map(len, per_master.values())) == 9:
            break
    assert len(per_master) == 3
    channels = [c for names in per_master.values() for c in names]
    opts = PublishOptions(history_size=5, history_ttl=60.0)
    items = [(c, Publication(b'"x"'), opts) for c in channels for _ in range(2)]
    outcomes = await engine.publish_many(items)
    assert [o[0].offset for o in outcomes] == [1, 2] * len(channels)  # type: ignore[index]
    for c in channels:
        res = await engine.history(c, HistoryFilter(limit=-1))
        assert [p.offset for p in res.publications] == [1, 2]
