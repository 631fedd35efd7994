"""The NATS broker (``broker.type: nats``): relay nodes (real processes) on a real
``nats-server``, with memory presence (per node, as Centrifugo's) or a Redis presence
manager (cluster-wide); an outage of NATS; a NATS that is not there at start; wildcard
subscriptions and raw mode seen from a plain NATS client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from tests.cluster.test_redis_nodes import KEY, SECRET, Node, start_two_nodes, two_nodes
from tests.nats_server import NatsServer, nats_available
from tests.procutil import OPEN_CHANNELS
from tests.redis_server import RedisServer, redis_available

pytestmark = [
    pytest.mark.skipif(not nats_available(), reason="nats-server not installed"),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """One loop is enough: the servers under test are processes (the root conftest runs
    async tests on two)."""
    return asyncio.DefaultEventLoopPolicy()


def config(nats_url: str, **nats_opts: Any) -> dict[str, Any]:
    return {
        "broker": {"enabled": True, "type": "nats", "nats": {"url": nats_url, **nats_opts}},
        "client": {"token": {"hmac_secret_key": SECRET}},
        "http_api": {"key": KEY},
        "channel": {
            "without_namespace": {
                **OPEN_CHANNELS,
                "force_recovery": False,
                "join_leave": True,
                "force_push_join_leave": True,
            },
            "namespaces": [{"name": "rec", **OPEN_CHANNELS}],
        },
    }


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture
async def nodes(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    async with two_nodes(config(nats_server.url), tmp_path) as pair:
        yield pair


async def _until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


async def test_two_nodes_act_as_one_over_nats(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    on_a = await a.client("alice")
    on_b = await b.client("bob")
    for c in (on_a, on_b):
        assert "subscribe" in await c.call("subscribe", {"channel": "room"})
    await on_a.push("join", "room")
    assert (await on_a.push("join", "room"))["join"]["info"]["user"] == "bob"
    # no history: the publish result has no position, history is not available
    assert await b.api("publish", {"channel": "room", "data": {"n": 1}}) == {"result": {}}
    await on_a.call("publish", {"channel": "room", "data": {"n": 2}})
    for c in (on_a, on_b):
        pubs = [(await c.push("pub", "room"))["pub"] for _ in range(2)]
        assert [p["data"]["n"] for p in pubs] == [1, 2] and "offset" not in pubs[0]
    assert (await on_a.call("history", {"channel": "room"}))["error"]["code"] == 108
    assert (await a.api("history", {"channel": "room"}))["error"]["code"] == 100
    assert (await a.api("history_remove", {"channel": "room"}))["error"]["code"] == 100
    # a namespace that asks for recovery cannot have it: 108 on subscribe
    assert (await on_a.call("subscribe", {"channel": "rec:x"}))["error"]["code"] == 108
    # wildcards are refused unless allow_wildcards: 107 to clients, 100 from the API
    assert (await on_a.call("subscribe", {"channel": "room.*"}))["error"]["code"] == 107
    assert (await on_a.call("publish", {"channel": "a>", "data": {}}))["error"]["code"] == 107
    assert (await a.api("publish", {"channel": "a*", "data": {}}))["error"]["code"] == 100
    batch = {"commands": [{"publish": {"channel": "room", "data": {"n": 3}}},
                          {"publish": {"channel": "b*", "data": {}}}]}  # fmt: skip
    replies = (await a.api("batch", batch))["replies"]
    assert replies[0] == {"publish": {}} and replies[1]["error"]["code"] == 100
    # presence is each node's own (memory presence manager, as in Centrifugo)
    for node in (a, b):
        stats = (await node.api("presence_stats", {"channel": "room"}))["result"]
        assert stats == {"num_clients": 1, "num_users": 1}
        # control and surveys go over NATS: every node's channels and nodes are seen
        chans = (await node.api("channels", {}))["result"]["channels"]
        assert chans == {"room": {"num_clients": 2}}
        info = (await node.api("info", {}))["result"]["nodes"]
        assert len(info) == 2 and sum(n["num_clients"] for n in info) == 2
    await b.api("disconnect", {"user": "alice"})
    assert await on_a.closed() == (3503, "force disconnect")
    assert (await on_b.push("leave", "room"))["leave"]["info"]["user"] == "alice"
    await on_b.close()


@pytest.mark.skipif(not redis_available(), reason="redis-server not installed")
async def test_nats_broker_with_a_redis_presence_manager(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    with RedisServer() as redis:
        cfg = config(nats_server.url)
        cfg["presence_manager"] = {"enabled": True, "type": "redis",
                                   "redis": {"address": redis.url}}  # fmt: skip
        a, b = await start_two_nodes(cfg, tmp_path)
        try:
            on_a, on_b = await a.client("alice"), await b.client("bob")
            for c in (on_a, on_b):
                await c.call("subscribe", {"channel": "room"})
            for node in (a, b):  # one presence for the cluster
                stats = (await node.api("presence_stats", {"channel": "room"}))["result"]
                assert stats == {"num_clients": 2, "num_users": 2}
            assert redis.client().exists("centrifugo.presence.data.room")
            await b.api("publish", {"channel": "room", "data": {"n": 1}})
            assert (await on_a.push("pub", "room"))["pub"]["data"] == {"n": 1}
            await on_a.close()
            await on_b.close()
        finally:
            a.stop()
            b.stop()


async def test_nats_outage(nodes: tuple[Node, Node], nats_server: NatsServer) -> None:
    a, b = nodes
    c = await a.client("carol")
    await c.call("subscribe", {"channel": "news"})
    nats_server.stop()
    await asyncio.sleep(0.3)  # the clients see the connection drop
    started = time.monotonic()
    res = await b.api("publish", {"channel": "news", "data": 1})
    assert res["error"]["code"] == 100 and time.monotonic() - started < 2.0  # not buffered
    with pytest.raises(TimeoutError):  # the subscription stays (nothing to resync)
        await c.push("unsubscribe", "news", timeout=1.0)
    nats_server.start()

    async def delivered() -> bool:
        res = await b.api("publish", {"channel": "news", "data": 2})
        if "result" not in res:
            return False
        try:
            return (await c.push("pub", "news", timeout=0.5))["pub"]["data"] == 2
        except TimeoutError:
            return False

    assert await _until(delivered)  # reconnected and resubscribed by itself
    await c.close()


async def test_starts_without_nats_and_connects_later(tmp_path: Path) -> None:
    server = NatsServer()
    try:
        a, b = await start_two_nodes(config(server.url), tmp_path)  # nothing listens yet
        try:
            res = await a.api("publish", {"channel": "x", "data": 1})
            assert res["error"]["code"] == 100
            c = await a.client("dave")
            await c.call("subscribe", {"channel": "x"})
            server.start()

            async def delivered() -> bool:
                if "result" not in await b.api("publish", {"channel": "x", "data": 2}):
                    return False
                try:
                    return (await c.push("pub", "x", timeout=0.5))["pub"]["data"] == 2
                except TimeoutError:
                    return False

            assert await _until(delivered)  # the subscription made while down was kept
            await c.close()
        finally:
            a.stop()
            b.stop()
    finally:
        server.close()


async def _raw_nats(url: str) -> tuple[Any, list[tuple[str, bytes]]]:
    nc = await nats.connect(url)
    seen: list[tuple[str, bytes]] = []

    async def on_message(msg: Any) -> None:
        seen.append((msg.subject, msg.data))

    await nc.subscribe(">", cb=on_message)
    return nc, seen


async def test_wildcard_subscriptions(nats_server: NatsServer, tmp_path: Path) -> None:
    a, b = await start_two_nodes(config(nats_server.url, allow_wildcards=True), tmp_path)
    nc, seen = await _raw_nats(nats_server.url)
    try:
        c = await a.client("erin")
        assert "subscribe" in await c.call("subscribe", {"channel": "news.*"})
        await asyncio.sleep(0.2)
        await b.api("publish", {"channel": "news.sport", "data": {"goal": 1}})
        push = await c.push("pub", "news.*")
        assert push["pub"] == {"data": {"goal": 1}, "channel": "news.sport"}
        # the wire is Centrifugo's: a protobuf Push on <prefix>.client.<channel>
        subjects = [s for s, _ in seen]
        assert "centrifugo.client.news.sport" in subjects
        assert (await b.api("publish", {"channel": "news.*", "data": 1}))["error"]["code"] == 100
        await c.close()
    finally:
        await nc.close()
        a.stop()
        b.stop()


async def test_raw_mode(nats_server: NatsServer, tmp_path: Path) -> None:
    raw = {"enabled": True, "prefix": "raw.", "channel_replacements": {":": "."}}
    cfg = config(nats_server.url, raw_mode=raw)
    cfg["channel"]["namespaces"].append({"name": "chat", **OPEN_CHANNELS,
                                         "force_recovery": False})  # fmt: skip
    a, b = await start_two_nodes(cfg, tmp_path)
    nc, seen = await _raw_nats(nats_server.url)
    try:
        c = await a.client("frank")
        await c.call("subscribe", {"channel": "chat:index"})
        await asyncio.sleep(0.2)
        await nc.publish("raw.chat.index", b'{"from":"nats"}')
        push = await c.push("pub", "chat:index")
        assert push["pub"] == {"data": {"from": "nats"}, "channel": "chat.index"}
        await b.api("publish", {"channel": "chat:index", "data": {"from": "api"}})
        assert (await c.push("pub", "chat:index"))["pub"]["data"] == {"from": "api"}
        # the payload untouched (as the API got it), on the raw subject
        assert [json.loads(d) for s, d in seen if s == "raw.chat.index"][-1] == {"from": "api"}
        await c.close()
    finally:
        await nc.close()
        a.stop()
        b.stop()
