"""Fossil delta publications and permessage-deflate on the wire (1 and 2 workers).

Raw clients: ``RawClient`` (JSON and Protobuf) for the delta pushes, decoded here with
the fast path's fossil decoder; ``websockets`` negotiates permessage-deflate itself. Then
the SDKs with ``delta: "fossil"``: centrifuge-python 0.7.0 and the npm ``centrifuge``
5.8.0 under Node.js (``tests/node``; skipped without node or its packages), both of which
also offer permessage-deflate, which the server here accepts.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import zlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

from relay.config import WebsocketConfig
from relay.fastpath import fossil_apply
from tests.conftest import ServerHandle, make_config, namespace, run_server, token
from tests.integration.conftest import API
from tests.integration.wsutil import RawClient

STATE = {"items": [{"id": i, "name": f"item-{i}", "score": i * 7} for i in range(200)]}


def _config(**ws: Any) -> Any:
    cfg = make_config()
    namespaces = (
        *cfg.channel.namespaces,
        namespace(
            "delta",
            history_size=10,
            history_ttl=300.0,
            force_positioning=True,
            allow_recovery=True,
            allowed_delta_types=("fossil",),
            allow_subscribe_for_client=True,
            allow_publish_for_client=True,
        ),
        namespace(
            "dpub",  # every publication with delta, without asking for it
            history_size=10,
            history_ttl=300.0,
            force_positioning=True,
            allowed_delta_types=("fossil",),
            delta_publish=True,
            allow_subscribe_for_client=True,
        ),
        namespace("nodelta", history_size=10, history_ttl=300.0, force_positioning=True,
                  allow_subscribe_for_client=True),
    )  # fmt: skip
    cfg = replace(cfg, channel=replace(cfg.channel, namespaces=namespaces))
    return replace(cfg, websocket=replace(cfg.websocket, **ws)) if ws else cfg


@pytest.fixture
async def server(mode: str) -> AsyncIterator[ServerHandle]:
    async with run_server(_config(compression=True, message_size_limit=4096), mode) as handle:
        yield handle


@pytest.fixture
async def api(server: ServerHandle) -> AsyncIterator[API]:
    async with aiohttp.ClientSession() as session:
        yield API(session, server.api_url)


def _state(step: int) -> dict[str, Any]:
    """STATE with a few fields changed per step (about 1 % of it)."""
    state = json.loads(json.dumps(STATE))
    for k in range(3):
        state["items"][(step * 13 + k) % 200]["score"] = step * 1000 + k
    return state


async def _client(server: ServerHandle, protobuf: bool = False, **kw: Any) -> RawClient:
    client = await RawClient.open(server.ws_url, protobuf, compression=None, **kw)
    reply = await client.connect(token=token("u1"))
    assert "connect" in reply, reply
    return client


async def _publish(api: API, channel: str, data: Any, **extra: Any) -> None:
    await api.call("publish", {"channel": channel, "data": data, **extra})


def _data(pub: dict[str, Any], protobuf: bool) -> bytes:
    data = pub["data"]
    if protobuf:
        return bytes(data)
    assert isinstance(data, str), "a delta subscription's JSON data is a JSON string"
    return data.encode()


@pytest.mark.parametrize("protobuf", [False, True], ids=["json", "protobuf"])
async def test_first_full_then_deltas(server: ServerHandle, api: API, protobuf: bool) -> None:
    client = await _client(server, protobuf)
    reply = await client.call("subscribe", {"channel": "delta:s", "delta": "fossil"})
    assert reply["subscribe"].get("delta") is True, reply
    await _publish(api, "delta:s", _state(0), delta=True)
    first = (await client.push("pub", "delta:s"))["pub"]
    assert not first.get("delta")
    base = _data(first, protobuf)
    assert json.loads(base) == _state(0)
    for step in range(1, 4):
        await _publish(api, "delta:s", _state(step), delta=True)
        pub = (await client.push("pub", "delta:s"))["pub"]
        assert pub.get("delta") is True, pub
        patch = _data(pub, protobuf)
        assert len(patch) < len(base) // 10
        base = fossil_apply(base, patch)
        assert json.loads(base) == _state(step)
        assert pub["offset"] == step + 1
    # a publication without delta: full data again, and the next one is a delta of it
    await _publish(api, "delta:s", {"plain": True})
    pub = (await client.push("pub", "delta:s"))["pub"]
    assert not pub.get("delta") and json.loads(_data(pub, protobuf)) == {"plain": True}
    await client.close()


async def test_delta_publish_namespace_and_plain_subscriber(server: ServerHandle, api: API) -> None:
    delta = await _client(server)
    plain = await _client(server)
    assert (await delta.call("subscribe", {"channel": "dpub:x", "delta": "fossil"}))["subscribe"][
        "delta"
    ]
    reply = await plain.call("subscribe", {"channel": "dpub:x"})
    assert "delta" not in reply["subscribe"]
    for step in range(3):
        await _publish(api, "dpub:x", _state(step))  # no delta flag: the namespace sets it
    pubs = [(await delta.push("pub", "dpub:x"))["pub"] for _ in range(3)]
    assert [bool(p.get("delta")) for p in pubs] == [False, True, True]
    for step in range(3):
        pub = (await plain.push("pub", "dpub:x"))["pub"]
        assert pub["data"] == _state(step) and "delta" not in pub  # raw JSON, full
    await delta.close()
    await plain.close()


async def test_delta_not_allowed_gets_full_publications(server: ServerHandle, api: API) -> None:
    """centrifuge client.go: a known type the namespace does not allow is ignored."""
    client = await _client(server)
    reply = await client.call("subscribe", {"channel": "nodelta:x", "delta": "fossil"})
    assert "delta" not in reply["subscribe"], reply
    for step in range(2):
        await _publish(api, "nodelta:x", _state(step), delta=True)
        pub = (await client.push("pub", "nodelta:x"))["pub"]
        assert pub["data"] == _state(step) and "delta" not in pub
    await client.close()


async def test_unknown_delta_type_disconnects(server: ServerHandle) -> None:
    client = await _client(server)
    await client.send({"id": 9, "subscribe": {"channel": "delta:x", "delta": "xdelta"}})
    assert (await client.closed())[0] == 3501


async def test_recovery_chains_deltas(server: ServerHandle, api: API) -> None:
    client = await _client(server)
    sub = {"channel": "delta:r", "delta": "fossil", "recoverable": True}
    reply = await client.call("subscribe", sub)
    epoch = reply["subscribe"]["epoch"]
    await client.close()
    for step in range(3):
        await _publish(api, "delta:r", _state(step), delta=True)
    client = await _client(server)
    reply = await client.call(
        "subscribe",
        {**sub, "recover": True, "offset": 0, "epoch": epoch},
    )
    result = reply["subscribe"]
    assert result["recovered"] and result["delta"]
    pubs = result["publications"]
    assert [bool(p.get("delta")) for p in pubs] == [False, True, True]
    base = pubs[0]["data"].encode()
    for step, pub in enumerate(pubs[1:], 1):
        base = fossil_apply(base, pub["data"].encode())
        assert json.loads(base) == _state(step)
    # the live publication after a recovery is a delta of the last recovered one
    await _publish(api, "delta:r", _state(3), delta=True)
    pub = (await client.push("pub", "delta:r"))["pub"]
    assert pub["delta"] is True
    assert json.loads(fossil_apply(base, pub["data"].encode())) == _state(3)
    await client.close()


# ---- permessage-deflate -------------------------------------------------------------------
async def test_deflate_negotiated_and_round_trips(server: ServerHandle, api: API) -> None:
    ws = await websockets.connect(server.ws_url)  # offers permessage-deflate by default
    header = ws.response.headers["Sec-WebSocket-Extensions"]
    assert header == "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    client = RawClient(ws)
    assert "connect" in await client.connect(token=token("u2"))
    reply = await client.call("subscribe", {"channel": "delta:z"})
    assert "subscribe" in reply
    await _publish(api, "delta:z", STATE)
    assert (await client.push("pub", "delta:z"))["pub"]["data"] == STATE
    await client.close()


async def test_deflate_frames_have_rsv1(server: ServerHandle) -> None:
    """A raw reader of the frames: RSV1 set, raw DEFLATE without the sync tail."""
    import asyncio
    import base64
    import os

    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"permessage-deflate; server_no_context_takeover" in head
    # a compressed connect command from the client, masked
    body = json.dumps({"id": 1, "connect": {"token": token("u3")}}).encode()
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = (c.compress(body) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert 126 <= len(payload) < 0x10000
    writer.write(bytes([0xC1, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask + masked)
    b0, b1 = await reader.readexactly(2)
    assert b0 == 0xC1  # FIN, RSV1, text
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    data = await reader.readexactly(n)
    reply = json.loads(zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff"))
    assert "connect" in reply
    writer.close()


async def test_decompressed_limit_closes_1009(server: ServerHandle) -> None:
    client = await RawClient.open(server.ws_url)
    assert client.ws.protocol.extensions  # deflate negotiated
    bomb = json.dumps({"id": 1, "connect": {"data": {"pad": "a" * 50_000}}})
    assert len(zlib.compress(bomb.encode())) < 4096  # under the wire limit, 10x past it inflated
    await client.send_raw(bomb)
    code, reason = await client.closed()
    assert (code, reason) == (1009, "message too big after decompression")


async def test_compression_off_ignores_offer(mode: str) -> None:
    async with run_server(_config(), mode) as handle:
        ws = await websockets.connect(handle.ws_url)
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.close()


async def test_min_size_leaves_small_messages_plain(mode: str) -> None:
    async with run_server(_config(compression=True, compression_min_size=10_000), mode) as h:
        ws = await websockets.connect(h.ws_url)
        client = RawClient(ws)
        assert "connect" in await client.connect(token=token("u4"))  # small: plain frame
        await client.close()
    assert WebsocketConfig().decompressed_message_size_limit == 0


# ---- the centrifuge-python SDK with delta: "fossil" (and deflate, which it offers) -------------
@pytest.mark.parametrize("protobuf", [False, True], ids=["json", "protobuf"])
async def test_sdk_applies_fossil_deltas(server: ServerHandle, api: API, protobuf: bool) -> None:
    from centrifuge import DeltaType

    from tests.integration.sdk_helpers import SDKPool, decoded, subscription

    async with SDKPool(server.ws_url, protobuf) as pool:
        client, _ = await pool.connected(token=token("sdk"))
        sub, rec = subscription(client, "delta:sdk", delta=DeltaType.FOSSIL)
        await sub.subscribe()
        await rec.wait("subscribed")
        for step in range(4):
            await _publish(api, "delta:sdk", _state(step), delta=True)
        await rec.wait("publication", count=4)
        got = [decoded(p.pub.data) for p in rec.all("publication")]
        assert got == [_state(step) for step in range(4)]


# ---- the npm centrifuge SDK (5.8.0) over WebSocket with delta: 'fossil' -----------------------
NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_npm_sdk_applies_fossil_deltas(server: ServerHandle, api: API, fmt: str) -> None:
    """``tests/node/delta_session.mjs``: the SDK decodes every delta (and, through the
    ``ws`` package, talks permessage-deflate)."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "centrifuge").is_dir():
        pytest.skip("node or tests/node/node_modules missing (npm --prefix tests/node ci)")
    proc = await asyncio.create_subprocess_exec(
        node,
        str(NODE_DIR / "delta_session.mjs"),
        server.ws_url,
        fmt,
        token("npm"),
        "delta:npm",
        cwd=NODE_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )

    async def event(name: str) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 10)
            assert line, "the SDK process ended"
            ev = json.loads(line)
            assert ev["event"] not in ("error", "sub_error"), ev
            if ev["event"] == name:
                return dict(ev)

    try:
        assert (await event("subscribed"))["positioned"] is True
        for step in range(4):
            await _publish(api, "delta:npm", _state(step), delta=True)
        got = [await event("publication") for _ in range(4)]
        assert [g["data"] for g in got] == [_state(step) for step in range(4)]
        assert [g["offset"] for g in got] == [1, 2, 3, 4]
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()


# ---- the Redis engine: the publish flag crosses Redis, the base is the hub's ----------------
async def test_deltas_over_the_redis_engine(mode: str) -> None:
    from relay.config import EngineConfig, RedisConfig
    from tests.redis_server import RedisServer, redis_available

    if not redis_available():
        pytest.skip("redis-server not installed")
    with RedisServer(persist=False) as redis:
        engine = EngineConfig(type="redis", redis=RedisConfig(address=(redis.url,)))
        cfg = replace(_config(), engine=engine)
        async with run_server(cfg, mode) as handle, aiohttp.ClientSession() as session:
            api = API(session, handle.api_url)
            client = await _client(handle)
            reply = await client.call("subscribe", {"channel": "delta:redis", "delta": "fossil"})
            assert reply["subscribe"]["delta"] is True
            base = b""
            for step in range(3):
                await _publish(api, "delta:redis", _state(step), delta=True)
                pub = (await client.push("pub", "delta:redis"))["pub"]
                assert bool(pub.get("delta")) is (step > 0)
                patch = pub["data"].encode()
                base = fossil_apply(base, patch) if pub.get("delta") else patch
                assert json.loads(base) == _state(step)
            await client.close()
