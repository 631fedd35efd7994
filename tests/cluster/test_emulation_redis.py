"""Emulation across relay nodes on Redis: a command posted to another node reaches the
node holding the session (centrifuge ``emulation.go``: the survey to ``req.Node``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from relay.auth import encode_hmac_token
from tests.cluster.test_redis_nodes import SECRET, Node, config
from tests.redis_server import RedisServer, redis_available

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.slow,
    pytest.mark.skipif(not redis_available(), reason="redis-server not installed"),
]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer(persist=False) as server:
        yield server


@pytest.fixture
async def two_nodes(redis: RedisServer, tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**config(redis.url), "http_stream": {"enabled": True}}))
    a, b = Node(cfg), Node(cfg, workers=2)
    try:
        await asyncio.gather(a.start(), b.start())
        await asyncio.sleep(3.2)  # a heartbeat round: every worker knows every other
        yield a, b
    finally:
        a.stop()
        b.stop()


async def test_emulation_reaches_the_node_holding_the_session(
    two_nodes: tuple[Node, Node],
) -> None:
    a, b = two_nodes
    tok = encode_hmac_token({"sub": "u"}, SECRET)
    body = json.dumps({"id": 1, "connect": {"token": tok}})
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s:
        url = f"http://127.0.0.1:{a.port}/connection/http_stream"
        async with s.post(url, data=body, headers=headers) as stream:
            line = await asyncio.wait_for(stream.content.readline(), 10)
            connect = json.loads(line)["connect"]
            emulation = f"http://127.0.0.1:{b.port}/emulation"
            data = json.dumps({"id": 2, "subscribe": {"channel": "x"}})
            req = {"node": connect["node"], "session": connect["session"], "data": data}
            async with aiohttp.ClientSession() as other:
                async with other.post(emulation, json=req) as r:
                    assert r.status == 204
                async with other.post(emulation, json={**req, "node": "unknown"}) as r:
                    assert r.status == 404
            while True:
                reply = json.loads(await asyncio.wait_for(stream.content.readline(), 10))
                if reply.get("id") == 2:
                    assert "subscribe" in reply
                    break
