"""Async consumers against real sources: a PostgreSQL outbox table (``initdb`` cluster in a
temp dir) and Redis Streams (``redis-server``), consumed by a relay process with two
workers; commands become publications seen by a real client, failures with 100 are
retried until they succeed, other failures are skipped, a source that is away at start
is waited for."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cluster.test_redis_nodes import KEY, SECRET, Node
from tests.postgres_server import PostgresServer, postgres_available
from tests.procutil import OPEN_CHANNELS, scrape_until
from tests.redis_server import RedisServer, redis_available

pytestmark = pytest.mark.slow

TABLE = """CREATE TABLE IF NOT EXISTS centrifugo_outbox (
    id BIGSERIAL PRIMARY KEY, method text NOT NULL, payload JSONB NOT NULL,
    partition INTEGER NOT NULL default 0,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL)"""

needs_pg = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL not installed")
needs_redis = pytest.mark.skipif(not redis_available(), reason="redis-server not installed")


@pytest.fixture(scope="module")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """One loop is enough: the servers under test are processes."""
    return asyncio.DefaultEventLoopPolicy()


def config(consumers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "client": {"token": {"hmac_secret_key": SECRET}},
        "http_api": {"key": KEY},
        "channel": {"without_namespace": {**OPEN_CHANNELS, "force_recovery": False}},
        "consumers": consumers,
        "prometheus": {"enabled": True},
        **extra,
    }


async def _node(cfg: dict[str, Any], tmp_path: Path) -> Node:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    node = Node(path, workers=2)
    await node.start()
    return node


async def _metrics(node: Node, needle: str) -> str:
    async with aiohttp.ClientSession() as http:
        return await scrape_until(http, f"http://127.0.0.1:{node.port}/metrics", needle)


def _insert(pg: PostgresServer, method: str, payload: Any, partition: int = 0) -> None:
    body = json.dumps(payload).replace("'", "''")
    pg.sql(f"INSERT INTO centrifugo_outbox (method, payload, partition) "
           f"VALUES ('{method}', '{body}', {partition})")  # fmt: skip


def _pg_consumer(dsn: str, **opts: Any) -> dict[str, Any]:
    return {"name": "outbox", "enabled": True, "type": "postgresql",
            "postgresql": {"dsn": dsn, "outbox_table_name": "centrifugo_outbox",
                           "partition_poll_interval": "100ms", **opts}}  # fmt: skip


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    if not postgres_available():
        pytest.skip("PostgreSQL not installed")
    with PostgresServer() as server:
        server.sql(TABLE)
        yield server


@needs_pg
async def test_outbox_rows_become_publications(pg: PostgresServer, tmp_path: Path) -> None:
    node = await _node(config([_pg_consumer(pg.dsn, num_partitions=2)]), tmp_path)
    try:
        c = await node.client("ann")
        await c.call("subscribe", {"channel": "orders"})
        for n in range(3):
            _insert(pg, "publish", {"channel": "orders", "data": {"n": n}}, partition=n % 2)
        _insert(pg, "", {"method": "publish", "payload": {"channel": "orders", "data": "env"}})
        _insert(pg, "no_such_method", {"channel": "orders"})  # skipped
        _insert(pg, "publish", {"channel": ""})  # bad request: skipped, not retried
        _insert(pg, "broadcast", {"channels": ["orders", "other"], "data": {"n": 9}})
        got = [(await c.push("pub", "orders", timeout=5))["pub"]["data"] for _ in range(5)]
        assert sorted(map(str, got)) == sorted(map(str, [{"n": 0}, {"n": 1}, {"n": 2}, "env",
                                                         {"n": 9}]))  # fmt: skip
        assert got.index({"n": 0}) < got.index({"n": 2})  # a partition keeps its order
        deadline = time.monotonic() + 5
        while pg.sql("SELECT count(*) FROM centrifugo_outbox") != "0":
            assert time.monotonic() < deadline, "rows were not deleted"
            await asyncio.sleep(0.1)
        text = await _metrics(node, 'consumer_name="outbox"} 7')
        assert 'centrifugo_consumers_messages_processed_total{consumer_name="outbox"} 7' in text
        await c.close()
    finally:
        node.stop()


@needs_pg
@needs_redis
async def test_outbox_retries_an_internal_error(pg: PostgresServer, tmp_path: Path) -> None:
    """A publish that fails with 100 (the Redis engine is away) stays in the table and
    runs once Redis is back; the rows after it wait (partition order)."""
    with RedisServer() as redis:
        engine = {"type": "redis", "redis": {"address": redis.url, "io_timeout": "500ms"}}
        cfg = config([_pg_consumer(pg.dsn)], engine=engine)
        node = await _node(cfg, tmp_path)
        try:
            c = await node.client("bob")  # its subscription resyncs (2500) after the outage
            await c.call("subscribe", {"channel": "jobs"})
            redis.stop()
            _insert(pg, "publish", {"channel": "jobs", "data": 1})
            _insert(pg, "publish", {"channel": "jobs", "data": 2})
            await asyncio.sleep(1.5)
            assert pg.sql("SELECT count(*) FROM centrifugo_outbox") == "2"
            text = await _metrics(node, "centrifugo_consumers_errors_total")
            series = 'centrifugo_consumers_errors_total{consumer_name="outbox"}'
            errors = [ln for ln in text.splitlines() if ln.startswith(series)]
            assert errors and float(errors[0].split()[-1]) >= 1
            redis.start()
            deadline = time.monotonic() + 15  # the backoff is at most 5 s
            while pg.sql("SELECT count(*) FROM centrifugo_outbox") != "0":
                assert time.monotonic() < deadline, "the rows were not retried"
                await asyncio.sleep(0.2)
            hist = await node.api("history", {"channel": "jobs", "limit": -1})
            assert [p["data"] for p in hist["result"]["publications"]] == [1, 2]
            await c.close()
        finally:
            node.stop()


@needs_pg
async def test_outbox_notify_and_a_late_database(tmp_path: Path) -> None:
    """PostgreSQL is not there when relay starts: the consumer keeps connecting; then a
    NOTIFY wakes the partition long before its poll interval."""
    if not postgres_available():
        pytest.skip("PostgreSQL not installed")
    pg = PostgresServer()
    try:
        consumer = _pg_consumer(pg.dsn, partition_poll_interval="60s",
                                partition_notification_channel="outbox_wake")  # fmt: skip
        node = await _node(config([consumer]), tmp_path)
        try:
            c = await node.client("cy")
            await c.call("subscribe", {"channel": "late"})
            await asyncio.sleep(1.0)
            pg.start()
            pg.sql(TABLE)
            await asyncio.sleep(2.5)  # connected (backoff at most 5 s), first poll done
            _insert(pg, "publish", {"channel": "late", "data": "woken"})
            pg.sql("NOTIFY outbox_wake, '0'")
            push = await c.push("pub", "late", timeout=8)
            assert push["pub"]["data"] == "woken"
            await c.close()
        finally:
            node.stop()
    finally:
        pg.close()


@pytest.fixture
def stream_redis() -> Iterator[RedisServer]:
    if not redis_available():
        pytest.skip("redis-server not installed")
    with RedisServer() as server:
        yield server


def _stream_consumer(url: str, **opts: Any) -> dict[str, Any]:
    return {"name": "events", "enabled": True, "type": "redis_stream",
            "redis_stream": {"address": url, "streams": ["s1"], "consumer_group": "relay",
                             **opts}}  # fmt: skip


async def _wait_group(redis: RedisServer) -> None:
    client = redis.client()
    deadline = time.monotonic() + 10
    while True:
        try:
            if client.xinfo_groups("s1"):
                return
        except Exception:
            pass
        assert time.monotonic() < deadline, "consumer group not created"
        await asyncio.sleep(0.1)


@needs_redis
async def test_redis_stream_commands(stream_redis: RedisServer, tmp_path: Path) -> None:
    node = await _node(config([_stream_consumer(stream_redis.url)]), tmp_path)
    try:
        await _wait_group(stream_redis)  # created at $: entries added after this count
        c = await node.client("di")
        await c.call("subscribe", {"channel": "feed"})
        r = stream_redis.client()
        r.xadd("s1", {"method": "publish", "payload": json.dumps({"channel": "feed", "data": 1})})
        envelope = {"method": "publish", "payload": {"channel": "feed", "data": 2}}
        r.xadd("s1", {"payload": json.dumps(envelope)})
        r.xadd("s1", {"nothing": "here"})  # no payload field: skipped (and acknowledged)
        got = [(await c.push("pub", "feed", timeout=5))["pub"]["data"] for _ in range(2)]
        assert got == [1, 2]
        deadline = time.monotonic() + 5
        while r.xpending("s1", "relay")["pending"] != 0:
            assert time.monotonic() < deadline, "entries were not acknowledged"
            await asyncio.sleep(0.1)
        await c.close()
    finally:
        node.stop()


@needs_redis
async def test_redis_stream_publication_data_mode(
    stream_redis: RedisServer, tmp_path: Path
) -> None:
    consumer = _stream_consumer(stream_redis.url, publication_data_mode={"enabled": True})
    node = await _node(config([consumer]), tmp_path)
    try:
        await _wait_group(stream_redis)
        c = await node.client("ed")
        for ch in ("a", "b"):
            await c.call("subscribe", {"channel": ch})
        stream_redis.client().xadd("s1", {
            "payload": '{"price":10}', "centrifugo-channels": "a,b",
            "centrifugo-tag-source": "feed", "centrifugo-delta": "false",
        })  # fmt: skip
        for ch in ("a", "b"):
            pub = (await c.push("pub", ch, timeout=5))["pub"]
            assert pub["data"] == {"price": 10} and pub["tags"] == {"source": "feed"}
        await c.close()
    finally:
        node.stop()


@needs_redis
async def test_redis_stream_redelivers_after_an_internal_error(
    stream_redis: RedisServer, tmp_path: Path
) -> None:
    """The engine's Redis is away: the entry's publish fails with 100 and stays pending;
    it is claimed again after the visibility timeout, once the engine is back."""
    with RedisServer() as engine_redis:
        engine = {"type": "redis", "redis": {"address": engine_redis.url, "io_timeout": "500ms"}}
        consumer = _stream_consumer(stream_redis.url, visibility_timeout="1s")
        node = await _node(config([consumer], engine=engine), tmp_path)
        try:
            await _wait_group(stream_redis)
            c = await node.client("fay")
            await c.call("subscribe", {"channel": "retry"})
            engine_redis.stop()
            payload = json.dumps({"channel": "retry", "data": "again"})
            stream_redis.client().xadd("s1", {"method": "publish", "payload": payload})
            await asyncio.sleep(1.0)
            assert stream_redis.client().xpending("s1", "relay")["pending"] == 1
            engine_redis.start()
            push = await c.push("pub", "retry", timeout=15)  # the next reclaim (every 5 s)
            assert push["pub"]["data"] == "again"
            await c.close()
        finally:
            node.stop()


def test_stream_consumer_needs_a_stream_and_a_group(tmp_path: Path) -> None:
    from relay.config import load_config, validate
    from relay.errors import ConfigError

    bad = config([{"name": "x1", "enabled": True, "type": "redis_stream",
                   "redis_stream": {"streams": ["s"]}}])  # fmt: skip
    path = tmp_path / "c.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match=r"in consumer x1 \(redis_stream\): consumer_group"):
        validate(load_config(str(path), {}).config)
