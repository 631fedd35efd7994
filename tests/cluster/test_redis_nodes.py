"""Two relay nodes (real processes) on one real redis-server acting as one cluster."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.sdk_subscriber import SdkSubscriber
from tests.procutil import OPEN_CHANNELS, RelayEndpoints, free_port, spawn_relay, wait_port
from tests.redis_server import RedisServer, redis_available

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server not installed")

SECRET = "redis-secret"
KEY = "redis-key"


def config(redis_url: str) -> dict[str, Any]:
    return {
        "engine": {"type": "redis", "redis": {"address": [redis_url], "io_timeout": "500ms"}},
        "client": {"token": {"hmac_secret_key": SECRET}},
        "http_api": {"key": KEY},
        "channel": {
            "without_namespace": {
                **OPEN_CHANNELS,
                "join_leave": True,
                "force_push_join_leave": True,
            }
        },
    }


class Node(RelayEndpoints):
    api_key = KEY
    secret = SECRET

    def __init__(self, cfg_path: Path, workers: int = 1) -> None:
        self.cfg_path = cfg_path
        self.workers = workers
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.proc = spawn_relay(self.cfg_path, self.port, self.workers)
        await wait_port(self.port)
        await asyncio.sleep(0.5)  # control channels subscribed, first heartbeat out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer(persist=True) as server:
        yield server


def _pair(cfg: dict[str, Any], tmp_path: Path) -> tuple[Node, Node]:
    """Node A (one worker) and node B (two workers) on ``cfg``, not started."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return Node(path), Node(path, workers=2)


async def _start(a: Node, b: Node) -> None:
    await asyncio.gather(a.start(), b.start())
    await asyncio.sleep(3.2)  # a heartbeat round: every worker knows every other


async def start_two_nodes(cfg: dict[str, Any], tmp_path: Path) -> tuple[Node, Node]:
    """Both nodes started (the caller stops them)."""
    a, b = _pair(cfg, tmp_path)
    await _start(a, b)
    return a, b


@asynccontextmanager
async def two_nodes(cfg: dict[str, Any], tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    """Both nodes started, and stopped on the way out."""
    a, b = _pair(cfg, tmp_path)
    try:
        await _start(a, b)
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
async def nodes(redis: RedisServer, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    async with two_nodes(config(redis.url), tmp_path) as pair:
        yield pair


async def test_two_nodes_act_as_one(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    on_a = await a.client("alice")
    on_b = await b.client("bob")
    for c in (on_a, on_b):
        await c.call("subscribe", {"channel": "room"})
    await on_a.push("join", "room")
    assert (await on_a.push("join", "room"))["join"]["info"]["user"] == "bob"
    res = await b.api("publish", {"channel": "room", "data": {"n": 1}})
    assert res["result"]["offset"] == 1
    await on_a.call("publish", {"channel": "room", "data": {"n": 2}})
    for c in (on_a, on_b):
        pubs = [(await c.push("pub", "room"))["pub"] for _ in range(2)]
        assert [p["data"]["n"] for p in pubs] == [1, 2] and pubs[1]["offset"] == 2
    hist_a = (await a.api("history", {"channel": "room", "limit": -1}))["result"]
    hist_b = (await b.api("history", {"channel": "room", "limit": -1}))["result"]
    assert hist_a == hist_b and hist_a["offset"] == 2
    for node in (a, b):
        stats = (await node.api("presence_stats", {"channel": "room"}))["result"]
        assert stats == {"num_clients": 2, "num_users": 2}
        chans = (await node.api("channels", {}))["result"]["channels"]
        assert chans == {"room": {"num_clients": 2}}
        info = (await node.api("info", {}))["result"]["nodes"]
        assert len(info) == 2 and sum(n["num_clients"] for n in info) == 2
    # a user's connection on node A is reached from node B's API
    await b.api("disconnect", {"user": "alice"})
    assert await on_a.closed() == (3503, "force disconnect")
    await on_b.close()


async def test_recovery_across_node_restart(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    sdk = SdkSubscriber(a.ws_url, SECRET, "stream")
    await sdk.start()
    await b.api("publish", {"channel": "stream", "data": 0})
    assert await sdk.until(lambda: sdk.pubs == [0], 5)
    a.stop()  # node A goes away; its client starts reconnecting
    for i in range(1, 4):
        await b.api("publish", {"channel": "stream", "data": i})
    await a.start()
    await sdk.until(lambda: len(sdk.events) >= 2, 10)
    assert sdk.events[-1].was_recovering and sdk.events[-1].recovered
    await sdk.until(lambda: len(sdk.pubs) >= 4, 10)
    assert sdk.pubs == [0, 1, 2, 3]  # the stream lives in Redis: nothing missed
    await sdk.close()


async def test_redis_outage(nodes: tuple[Node, Node], redis: RedisServer) -> None:
    a, b = nodes
    c = await a.client("carol")
    await c.call("subscribe", {"channel": "news"})
    redis.stop()
    started = time.monotonic()
    res = await b.api("publish", {"channel": "news", "data": 1})
    assert res["error"]["code"] == 100 and time.monotonic() - started < 2.0
    assert (await c.call("presence", {"channel": "news"}))["error"]["code"] == 100
    # the connection and its subscription stay while Redis is away (as Centrifugo)
    with pytest.raises(TimeoutError):
        await c.push("unsubscribe", "news", timeout=1.5)
    redis.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        res = await b.api("publish", {"channel": "news", "data": 2})
        if "result" in res:
            break
        await asyncio.sleep(0.2)
    assert "result" in res
    # once PUB/SUB is back, the positioned subscription is asked to resync
    unsub = await c.push("unsubscribe", "news", timeout=8)
    assert unsub["unsubscribe"]["code"] == 2500
    sub = (await c.call("subscribe", {"channel": "news"}))["subscribe"]
    assert sub["recoverable"] is True
    await c.close()
