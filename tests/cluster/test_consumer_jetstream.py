"""The NATS JetStream consumer against a real ``nats-server -js``: commands and publication
data from a stream, a NAKed message redelivered after an internal error, and a stream
deleted and created again (the consumer is created again and goes on)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.cluster.test_consumers import _node, config
from tests.cluster.test_redis_nodes import Node
from tests.nats_server import NatsServer, nats_available
from tests.redis_server import RedisServer, redis_available

pytestmark = [
    pytest.mark.skipif(not nats_available(), reason="nats-server not installed"),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """One loop is enough: the servers under test are processes."""
    return asyncio.DefaultEventLoopPolicy()


def _consumer(url: str, **opts: Any) -> dict[str, Any]:
    return {"name": "js", "enabled": True, "type": "nats_jetstream",
            "nats_jetstream": {"url": url, "stream_name": "EVENTS", "subjects": ["events.>"],
                               "durable_consumer_name": "relay", **opts}}  # fmt: skip


@pytest.fixture
async def js_server() -> AsyncIterator[tuple[NatsServer, Any]]:
    with NatsServer() as server:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="EVENTS", subjects=["events.>"])
        try:
            yield server, js
        finally:
            await nc.close()


async def _wait_consumer(js: Any) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            await js.consumer_info("EVENTS", "relay")
            return
        except Exception:
            assert time.monotonic() < deadline, "the durable consumer was not created"
            await asyncio.sleep(0.1)


async def _start(cfg: dict[str, Any], tmp_path: Path, js: Any) -> Node:
    node = await _node(cfg, tmp_path)
    await _wait_consumer(js)
    return node


async def test_jetstream_commands_and_publication_data(
    js_server: tuple[NatsServer, Any], tmp_path: Path
) -> None:
    server, js = js_server
    node = await _start(config([_consumer(server.url)]), tmp_path, js)
    try:
        c = await node.client("gil")
        await c.call("subscribe", {"channel": "feed"})
        body = json.dumps({"channel": "feed", "data": {"n": 1}}).encode()
        await js.publish("events.a", body, headers={"centrifugo-method": "publish"})
        envelope = {"method": "publish", "payload": {"channel": "feed", "data": {"n": 2}}}
        await js.publish("events.b", json.dumps(envelope).encode())
        got = [(await c.push("pub", "feed", timeout=8))["pub"]["data"] for _ in range(2)]
        assert got == [{"n": 1}, {"n": 2}]
        info = await js.consumer_info("EVENTS", "relay")
        deadline = time.monotonic() + 5
        while info.num_ack_pending:  # both acknowledged
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
            info = await js.consumer_info("EVENTS", "relay")
        await c.close()
    finally:
        node.stop()


async def test_jetstream_publication_data_mode(
    js_server: tuple[NatsServer, Any], tmp_path: Path
) -> None:
    server, js = js_server
    consumer = _consumer(server.url, publication_data_mode={"enabled": True})
    node = await _start(config([consumer]), tmp_path, js)
    try:
        c = await node.client("hal")
        for ch in ("a", "b"):
            await c.call("subscribe", {"channel": ch})
        headers = {"centrifugo-channels": "a,b", "centrifugo-tag-kind": "price"}
        await js.publish("events.p", b'{"price":11}', headers=headers)
        for ch in ("a", "b"):
            pub = (await c.push("pub", ch, timeout=8))["pub"]
            assert pub["data"] == {"price": 11} and pub["tags"] == {"kind": "price"}
        await c.close()
    finally:
        node.stop()


async def test_jetstream_stream_deleted_and_created_again(
    js_server: tuple[NatsServer, Any], tmp_path: Path
) -> None:
    """Centrifugo's consumer used to stop for good here; relay's creates the consumer
    again once the stream is back and goes on."""
    server, js = js_server
    node = await _start(config([_consumer(server.url)]), tmp_path, js)
    try:
        c = await node.client("ida")
        await c.call("subscribe", {"channel": "feed"})
        await js.delete_stream("EVENTS")
        await asyncio.sleep(1.0)
        await js.add_stream(name="EVENTS", subjects=["events.>"])
        await _wait_consumer(js)
        body = json.dumps({"channel": "feed", "data": "after"}).encode()
        await js.publish("events.a", body, headers={"centrifugo-method": "publish"})
        assert (await c.push("pub", "feed", timeout=15))["pub"]["data"] == "after"
        await c.close()
    finally:
        node.stop()


@pytest.mark.skipif(not redis_available(), reason="redis-server not installed")
async def test_jetstream_naks_an_internal_error(
    js_server: tuple[NatsServer, Any], tmp_path: Path
) -> None:
    server, js = js_server
    with RedisServer() as redis:
        engine = {"type": "redis", "redis": {"address": redis.url, "io_timeout": "500ms"}}
        node = await _start(config([_consumer(server.url)], engine=engine), tmp_path, js)
        try:
            redis.stop()
            body = json.dumps({"channel": "jobs", "data": "later"}).encode()
            await js.publish("events.a", body, headers={"centrifugo-method": "publish"})
            await asyncio.sleep(1.5)  # NAKed with backoff, redelivered, NAKed again...
            redis.start()
            deadline = time.monotonic() + 15
            while True:
                res = await node.api("history", {"channel": "jobs", "limit": -1})
                pubs = res.get("result", {}).get("publications", [])
                if pubs:
                    break
                assert time.monotonic() < deadline, "the message was not redelivered"
                await asyncio.sleep(0.3)
            assert [p["data"] for p in pubs] == ["later"]  # once: acknowledged when it ran
        finally:
            node.stop()
