"""Two relay nodes (real processes) on a real three-master Redis Cluster: Centrifugo's
cluster key layout, nodes acting as one, and a cluster node killed and started again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.cluster.sdk_subscriber import SdkSubscriber
from tests.cluster.test_redis_nodes import SECRET, Node, config, two_nodes
from tests.redis_cluster import RedisCluster, cluster_available

pytestmark = [
    pytest.mark.skipif(not cluster_available(), reason="redis-server / redis-cli not installed"),
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """One loop is enough: the servers under test are processes."""
    return asyncio.DefaultEventLoopPolicy()


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    with RedisCluster() as c:
        yield c


@pytest.fixture
async def nodes(cluster: RedisCluster, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    async with two_nodes(config(cluster.url), tmp_path) as pair:
        yield pair


async def test_two_nodes_on_a_redis_cluster(
    nodes: tuple[Node, Node], cluster: RedisCluster
) -> None:
    a, b = nodes
    on_a, on_b = await a.client("alice"), await b.client("bob")
    channels = [f"room{i}" for i in range(6)]  # spread over the three masters
    for c in (on_a, on_b):
        for ch in channels:
            await c.call("subscribe", {"channel": ch})
    for i, ch in enumerate(channels):
        res = await (a if i % 2 else b).api("publish", {"channel": ch, "data": {"n": i}})
        assert res["result"]["offset"] == 1
    for c in (on_a, on_b):
        for i, ch in enumerate(channels):
            assert (await c.push("pub", ch))["pub"]["data"] == {"n": i}
    batch = {"commands": [{"publish": {"channel": ch, "data": 2}} for ch in channels]}
    assert all(r["publish"]["offset"] == 2 for r in (await a.api("batch", batch))["replies"])
    for ch in channels:
        hist_a = (await a.api("history", {"channel": ch, "limit": -1}))["result"]
        hist_b = (await b.api("history", {"channel": ch, "limit": -1}))["result"]
        assert hist_a == hist_b and hist_a["offset"] == 2
        stats = (await b.api("presence_stats", {"channel": ch}))["result"]
        assert stats == {"num_clients": 2, "num_users": 2}
    # Centrifugo's layout: the channel is the hash tag of each of its keys
    owners = {cluster.owner_of("{" + ch + "}").port for ch in channels}
    assert len(owners) > 1
    for ch in channels:
        node = cluster.owner_of("{" + ch + "}").client()
        assert node.exists(f"centrifugo.stream.{{{ch}}}", f"centrifugo.stream.meta.{{{ch}}}") == 2
        assert node.exists(f"centrifugo.presence.data.{{{ch}}}") == 1
    info = (await a.api("info", {}))["result"]["nodes"]
    assert len(info) == 2
    await b.api("disconnect", {"user": "alice"})
    assert await on_a.closed() == (3503, "force disconnect")
    await on_b.close()


async def test_a_cluster_node_killed_and_started_again(
    nodes: tuple[Node, Node], cluster: RedisCluster
) -> None:
    a, b = nodes
    sdk = SdkSubscriber(a.ws_url, SECRET, "stream")
    await sdk.start()
    await b.api("publish", {"channel": "stream", "data": 0})
    assert await sdk.until(lambda: sdk.pubs == [0], 5)
    victim = cluster.owner_of("{stream}")
    victim.stop(kill=True)
    started = time.monotonic()
    res = await b.api("publish", {"channel": "stream", "data": 1})
    assert res["error"]["code"] == 100 and time.monotonic() - started < 2.5  # fails fast
    victim.start()
    cluster.wait_ok()

    async def published() -> bool:
        res = await b.api("publish", {"channel": "stream", "data": 2})
        return "result" in res

    deadline = time.monotonic() + 20
    while not await published():
        assert time.monotonic() < deadline, "publishes did not resume"
        await asyncio.sleep(0.3)
    # the subscriber gets what is published after the node came back (resubscribed and
    # told to resync where its PUB/SUB connection was on the killed node)
    deadline = time.monotonic() + 20
    while 2 not in sdk.pubs:
        assert time.monotonic() < deadline, f"no delivery after the node came back: {sdk.pubs}"
        await b.api("publish", {"channel": "stream", "data": 2})
        await asyncio.sleep(0.5)
    await sdk.close()
