"""Client protocol v2 over a real socket: replies, pushes, error and close codes."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import replace
from typing import Any

import pytest
import websockets

from tests.conftest import make_config, token
from tests.integration.wsutil import RawClient


@pytest.fixture(params=[False, True], ids=["json", "protobuf"])
def protobuf(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


async def connected(relay: Any, protobuf: bool, user: str = "42", **claims: Any) -> RawClient:
    c = await RawClient.open(relay.ws_url, protobuf)
    rep = await c.connect(token=token(user, **claims))
    assert "connect" in rep, rep
    return c


async def test_connect_reply_shape(relay: Any, protobuf: bool) -> None:
    c = await RawClient.open(relay.ws_url, protobuf)
    rep = await c.connect(token=token("42", exp=int(time.time()) + 3600), name="python")
    res = rep["connect"]
    assert len(res["client"]) == 36
    assert res["version"].endswith(" OSS")
    assert res["expires"] is True and 3590 <= int(res["ttl"]) <= 3600
    assert int(res["ping"]) == 25 and res["pong"] is True
    await c.close()


async def test_subscribe_publish_history_presence(relay: Any, protobuf: bool) -> None:
    c = await connected(relay, protobuf)
    sub = (await c.call("subscribe", {"channel": "chat:1"}))["subscribe"]
    assert sub["recoverable"] is True and sub["positioned"] is True
    assert len(sub["epoch"]) == 8 and int(sub.get("offset", 0)) == 0
    join = await c.push("join", "chat:1")
    assert join["join"]["info"]["user"] == "42"
    payload: Any = b'{"text":"hello"}' if protobuf else {"text": "hello"}
    rep = await c.call("publish", {"channel": "chat:1", "data": payload})
    assert "publish" in rep
    pub = (await c.push("pub", "chat:1"))["pub"]
    assert int(pub["offset"]) == 1 and pub["info"]["user"] == "42"
    hist = (await c.call("history", {"channel": "chat:1", "limit": 10}))["history"]
    assert len(hist["publications"]) == 1 and hist["epoch"] == sub["epoch"]
    pres = (await c.call("presence", {"channel": "chat:1"}))["presence"]["presence"]
    assert list(pres.values())[0]["user"] == "42"
    stats = (await c.call("presence_stats", {"channel": "chat:1"}))["presence_stats"]
    assert int(stats["num_clients"]) == 1 and int(stats["num_users"]) == 1
    await c.close()


async def test_own_publication_and_publish_reply(relay: Any, mode: str, protobuf: bool) -> None:
    c = await connected(relay, protobuf)
    await c.call("subscribe", {"channel": "news"})
    cid = c.next_id()
    await c.send({"id": cid, "publish": {"channel": "news", "data": b"1" if protobuf else 1}})
    first = await c.expect(lambda m: True)
    if mode == "single":
        # as Centrifugo's memory engine: the publisher's own push precedes the reply
        assert first.get("push", {}).get("channel") == "news"
        assert "publish" in await c.reply(cid)
    else:
        other = await c.expect(lambda m: True)
        assert {("push" in first), ("push" in other)} == {True, False}
    await c.close()


async def test_reply_errors(relay: Any, protobuf: bool) -> None:
    c = await connected(relay, protobuf)
    cases = [
        ({"channel": "nope:x"}, 102),
        ({"channel": "$secret"}, 103),
        ({"channel": "closed:x"}, 103),
        ({"channel": "x" * 256}, 107),
        ({"channel": "ümlaut"}, 107),
    ]
    for params, code in cases:
        rep = await c.call("subscribe", params)
        assert rep["error"]["code"] == code, (params, rep)
        assert rep["error"]["message"]
    await c.call("subscribe", {"channel": "a"})
    assert (await c.call("subscribe", {"channel": "a"}))["error"]["code"] == 105
    assert (await c.call("presence", {"channel": "hist:1"}))["error"]["code"] == 108
    assert (await c.call("history", {"channel": "news"}))["error"]["code"] == 108
    assert (await c.call("rpc", {"method": "x"}))["error"]["code"] == 108
    await c.close()


async def test_history_unrecoverable_position(relay: Any, protobuf: bool) -> None:
    c = await connected(relay, protobuf)
    await c.call("publish", {"channel": "hist:1", "data": b"1" if protobuf else 1})
    rep = await c.call("history", {"channel": "hist:1", "since": {"offset": 0, "epoch": "bad"}})
    assert rep["error"]["code"] == 112
    await c.close()


async def test_recovery(relay: Any, protobuf: bool) -> None:
    c = await connected(relay, protobuf)
    sub = (await c.call("subscribe", {"channel": "chat:r"}))["subscribe"]
    await c.close()
    pub = await connected(relay, protobuf, user="7")
    for i in range(3):
        await pub.call("publish", {"channel": "hist:r", "data": str(i).encode() if protobuf else i})
    await pub.close()
    # chat:r never got publications: recovered with nothing missing
    c2 = await connected(relay, protobuf)
    rep = await c2.call(
        "subscribe",
        {"channel": "chat:r", "recover": True, "epoch": sub["epoch"], "offset": 0},
    )
    res = rep["subscribe"]
    assert res["recovered"] is True and res["was_recovering"] is True
    # hist:r (size 3): recover from offset 1 gives 2 and 3
    h = (await c2.call("history", {"channel": "hist:r", "limit": 0}))["history"]
    res = (
        await c2.call(
            "subscribe",
            {
                "channel": "hist:r",
                "recoverable": True,
                "recover": True,
                "epoch": h["epoch"],
                "offset": 1,
            },
        )
    )["subscribe"]
    assert res["recovered"] is True
    assert [int(p["offset"]) for p in res["publications"]] == [2, 3]
    assert int(res["offset"]) == 1
    # wrong epoch: not recovered, no publications, offset = top
    res = (
        await c2.call(
            "subscribe",
            {
                "channel": "hist:s",
                "recoverable": True,
                "recover": True,
                "epoch": "zzz",
                "offset": 5,
            },
        )
    )["subscribe"]
    assert not res.get("recovered") and not res.get("publications")
    # reject-unrecovered flag -> 112
    rep = await c2.call(
        "subscribe",
        {"channel": "hist:t", "recoverable": True, "recover": True, "epoch": "zzz", "flag": 3},
    )
    assert rep["error"]["code"] == 112
    await c2.close()


async def test_recovery_gap_beyond_retention(relay: Any, protobuf: bool) -> None:
    c = await connected(relay, protobuf)
    for i in range(5):
        await c.call("publish", {"channel": "hist:g", "data": str(i).encode() if protobuf else i})
    h = (await c.call("history", {"channel": "hist:g", "limit": -1}))["history"]
    assert [int(p["offset"]) for p in h["publications"]] == [3, 4, 5]
    res = (
        await c.call(
            "subscribe",
            {
                "channel": "hist:g",
                "recoverable": True,
                "recover": True,
                "epoch": h["epoch"],
                "offset": 1,
            },
        )
    )["subscribe"]
    assert not res.get("recovered") and "publications" not in res
    assert int(res["offset"]) == 5
    await c.close()


async def test_join_leave_between_clients(relay: Any, protobuf: bool) -> None:
    a = await connected(relay, protobuf, "1")
    b = await connected(relay, protobuf, "2")
    await a.call("subscribe", {"channel": "chat:jl"})
    await a.push("join", "chat:jl")
    await b.call("subscribe", {"channel": "chat:jl"})
    join = await a.push("join", "chat:jl")
    assert join["join"]["info"]["user"] == "2"
    await b.call("unsubscribe", {"channel": "chat:jl"})
    leave = await a.push("leave", "chat:jl")
    assert leave["leave"]["info"]["user"] == "2"
    await a.close()
    await b.close()


async def test_several_commands_in_one_frame(relay: Any, protobuf: bool) -> None:
    c = await RawClient.open(relay.ws_url, protobuf)
    await c.send(
        {"id": 1, "connect": {"token": token("42")}},
        {"id": 2, "subscribe": {"channel": "s1"}},
        {"id": 3, "subscribe": {"channel": "s2"}},
    )
    for i in (1, 2, 3):
        rep = await c.reply(i)
        assert "error" not in rep
    await c.close()


async def test_ping_pong(server_factory: Any, protobuf: bool) -> None:
    cfg = make_config()
    cfg = replace(cfg, client=replace(cfg.client, ping_interval=0.3, pong_timeout=0.2))
    async with server_factory(cfg) as srv:
        c = await RawClient.open(srv.ws_url, protobuf)
        res = (await c.connect(token=token()))["connect"]
        assert int(res.get("ping", 0)) == 0  # sub-second intervals round down to 0 s
        ping = await c.expect(lambda m: not m, timeout=2)
        assert ping == {}
        await c.send({})
        await c.expect(lambda m: not m, timeout=2)
        code, reason = await c.closed(timeout=2)
        assert (code, reason) == (3012, "no pong")


async def test_disconnect_codes(relay: Any, protobuf: bool) -> None:
    # command before connect
    c = await RawClient.open(relay.ws_url, protobuf)
    await c.send({"id": 1, "subscribe": {"channel": "x"}})
    assert await c.closed() == (3501, "bad request")
    # invalid token
    c = await RawClient.open(relay.ws_url, protobuf)
    await c.send({"id": 1, "connect": {"token": "abc.def.ghi"}})
    assert await c.closed() == (3500, "invalid token")
    # no credentials
    c = await RawClient.open(relay.ws_url, protobuf)
    await c.send({"id": 1, "connect": {}})
    assert await c.closed() == (3501, "bad request")
    # second connect
    c = await connected(relay, protobuf)
    await c.send({"id": 9, "connect": {"token": token()}})
    assert await c.closed() == (3501, "bad request")
    # command without id
    c = await connected(relay, protobuf)
    await c.send({"subscribe": {"channel": "x"}})
    assert await c.closed() == (3501, "bad request")
    # unsolicited pong
    c = await connected(relay, protobuf)
    await c.send({})
    assert await c.closed() == (3501, "bad request")
    # send without handler
    c = await connected(relay, protobuf)
    await c.send({"send": {"data": b"1" if protobuf else 1}})
    assert await c.closed() == (3508, "not available")
    # unknown delta type
    c = await connected(relay, protobuf)
    await c.send({"id": 2, "subscribe": {"channel": "x", "delta": "zip"}})
    assert await c.closed() == (3501, "bad request")
    # empty channel
    c = await connected(relay, protobuf)
    await c.send({"id": 2, "publish": {"channel": ""}})
    assert await c.closed() == (3501, "bad request")


async def test_expired_token_then_command(relay: Any, protobuf: bool) -> None:
    c = await RawClient.open(relay.ws_url, protobuf)
    rep = await c.connect(token=token("42", exp=int(time.time()) - 10))
    assert rep["error"]["code"] == 109 and rep["error"]["message"] == "token expired"
    await c.send({"id": 5, "subscribe": {"channel": "x"}})
    assert await c.closed() == (3501, "bad request")


async def test_subscription_tokens(relay: Any, protobuf: bool) -> None:
    c = await connected(relay, protobuf)
    ok = token("42", channel="$priv", info={"role": "x"})
    rep = await c.call("subscribe", {"channel": "$priv", "token": ok})
    assert "subscribe" in rep
    expired = token("42", channel="$priv2", exp=int(time.time()) - 1)
    assert (await c.call("subscribe", {"channel": "$priv2", "token": expired}))["error"][
        "code"
    ] == 109
    bad = token("42", channel="$priv3")[:-3] + "abc"
    assert (await c.call("subscribe", {"channel": "$priv3", "token": bad}))["error"]["code"] == 103
    other = token("43", channel="$priv4")
    await c.send({"id": 77, "subscribe": {"channel": "$priv4", "token": other}})
    assert await c.closed() == (3500, "invalid token")


async def test_refresh(relay: Any, protobuf: bool) -> None:
    c = await connected(relay, protobuf, exp=int(time.time()) + 100)
    rep = await c.call("refresh", {"token": token("42", exp=int(time.time()) + 1000)})
    assert rep["refresh"]["expires"] is True and int(rep["refresh"]["ttl"]) > 900
    await c.send({"id": 50, "refresh": {"token": token("43")}})
    assert await c.closed() == (3500, "invalid token")
    c = await connected(relay, protobuf, exp=int(time.time()) + 100)
    await c.send({"id": 51, "refresh": {"token": token("42", exp=int(time.time()) - 5)}})
    assert await c.closed() == (3005, "connection expired")


async def test_server_side_subscriptions(relay: Any, protobuf: bool) -> None:
    c = await RawClient.open(relay.ws_url, protobuf)
    res = (await c.connect(token=token("42", channels=["chat:srv"])))["connect"]
    assert "chat:srv" in res["subs"]
    await c.push("join", "chat:srv")
    c2 = await connected(relay, protobuf, "9")
    await c2.call("subscribe", {"channel": "chat:srv"})
    await c2.call("publish", {"channel": "chat:srv", "data": b"5" if protobuf else 5})
    pub = await c.push("pub", "chat:srv")
    assert int(pub["pub"]["offset"]) == 1
    await c.close()
    await c2.close()


async def test_unknown_namespace_in_token_channels(relay: Any, protobuf: bool) -> None:
    c = await RawClient.open(relay.ws_url, protobuf)
    rep = await c.connect(token=token("42", channels=["nope:x"]))
    assert rep["error"]["code"] == 102


async def test_channel_limit(server_factory: Any, protobuf: bool) -> None:
    cfg = make_config()
    cfg = replace(cfg, client=replace(cfg.client, channel_limit=2))
    async with server_factory(cfg) as srv:
        c = await connected(srv, protobuf)
        await c.call("subscribe", {"channel": "a"})
        await c.call("subscribe", {"channel": "b"})
        assert (await c.call("subscribe", {"channel": "c"}))["error"]["code"] == 106


async def test_oversized_frame_closes_1009(relay: Any, protobuf: bool) -> None:
    c = await connected(relay, protobuf)
    await c.send_raw(b"x" * 70000 if protobuf else "x" * 70000)
    code, _ = await c.closed()
    assert code == 1009


async def test_anonymous_without_token(server_factory: Any, protobuf: bool) -> None:
    cfg = make_config()
    cfg = replace(cfg, client=replace(cfg.client, allow_anonymous_connect_without_token=True))
    async with server_factory(cfg) as srv:
        c = await RawClient.open(srv.ws_url, protobuf)
        rep = await c.connect()
        assert "connect" in rep
        # anonymous needs allow_subscribe_for_anonymous on top of _for_client
        assert (await c.call("subscribe", {"channel": "news"}))["error"]["code"] == 103


async def test_disallow_anonymous_tokens(server_factory: Any, protobuf: bool) -> None:
    cfg = make_config()
    cfg = replace(cfg, client=replace(cfg.client, disallow_anonymous_connection_tokens=True))
    async with server_factory(cfg) as srv:
        c = await RawClient.open(srv.ws_url, protobuf)
        await c.send({"id": 1, "connect": {"token": token("")}})
        assert await c.closed() == (3507, "permission denied")


async def test_stale_connection(server_factory: Any, protobuf: bool) -> None:
    cfg = make_config()
    cfg = replace(cfg, client=replace(cfg.client, stale_close_delay=0.2))
    async with server_factory(cfg) as srv:
        c = await RawClient.open(srv.ws_url, protobuf)
        assert await c.closed() == (3502, "stale")


async def test_shutdown_sends_3001(server_factory: Any, protobuf: bool) -> None:
    async with server_factory() as srv:
        c = await connected(srv, protobuf)
        task = asyncio.ensure_future(c.closed(timeout=5))
        await srv.server.stop()
        assert await task == (3001, "shutdown")


async def test_bad_json_inputs(relay: Any) -> None:
    for raw in [
        "nd3487yt734y38&**&**",
        "",
        '{"id":-1,"connect":{}}',
        '{"id":"1","connect":{}}',
        "[" * 60000,
        '{"id":1}',
        '{"id":1,"ping":{}}',
    ]:
        c = await RawClient.open(relay.ws_url)
        await c.send_raw(raw)
        assert await c.closed() == (3501, "bad request"), raw[:40]
    # the 2nd of 3 commands malformed: #1 answered, then 3501
    c = await RawClient.open(relay.ws_url)
    await c.send_raw(
        json.dumps({"id": 1, "connect": {"token": token()}})
        + "\n{bad\n"
        + json.dumps({"id": 3, "subscribe": {"channel": "z"}})
    )
    assert "connect" in await c.reply(1)
    assert await c.closed() == (3501, "bad request")
    assert not any(m.get("id") == 3 for m in c.inbox)


async def test_json_commands_follow_go_decoding(relay: Any) -> None:
    """As Centrifugo 6.9.1 reads them: case-insensitive keys, the later key wins, ``null``."""
    c = await RawClient.open(relay.ws_url)
    await c.send_raw(json.dumps({"ID": 1, "Connect": {"Token": token()}}))
    assert "connect" in await c.reply(1)
    await c.send_raw('{"id":2,"Subscribe":{"channel":"ab","CHANNEL":"chat:go"}}')
    assert "subscribe" in await c.reply(2)
    await c.send_raw('{"id":3,"publish":{"channel":"chat:go","data":null}}')
    assert (await c.push("pub", "chat:go"))["pub"]["data"] is None
    await c.send_raw('{"id":4,"publish":{"channel":"chat:go","CHANNEL":null,"data":{"a":1}}}')
    assert (await c.push("pub", "chat:go"))["pub"]["data"] == {"a": 1}
    await c.send_raw('{"id":5,"subscribe":{"channel":"\\ud800"}}')  # U+FFFD: not ASCII
    assert (await c.reply(5))["error"]["code"] == 107
    await c.close()


async def test_origin_check(server_factory: Any) -> None:
    async with server_factory() as srv:
        with pytest.raises(websockets.InvalidStatus) as exc:
            await websockets.connect(srv.ws_url, origin="https://evil.example")  # type: ignore[arg-type]
        assert exc.value.response.status_code == 403
    cfg = make_config()
    cfg = replace(
        cfg,
        client=replace(cfg.client, allowed_origins=("https://*.example.com", "https://app.x")),
    )
    async with server_factory(cfg) as srv:
        ok = await websockets.connect(srv.ws_url, origin="https://A.example.com")  # type: ignore[arg-type]
        await ok.close()
        ok = await websockets.connect(srv.ws_url, origin="https://app.x")  # type: ignore[arg-type]
        await ok.close()
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(srv.ws_url, origin="https://app.y")  # type: ignore[arg-type]


async def test_slow_client_disconnected_3008(server_factory: Any) -> None:
    cfg = make_config()
    cfg = replace(cfg, client=replace(cfg.client, queue_max_size=64 * 1024))
    async with server_factory(cfg) as srv:
        # a raw socket that completes the handshake and then never reads
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", srv.port))
        await loop.sock_sendall(
            sock,
            b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n",
        )
        await loop.sock_recv(sock, 4096)
        payload = (
            json.dumps({"id": 1, "connect": {"token": token("slow")}}).encode()
            + b"\n"
            + (json.dumps({"id": 2, "subscribe": {"channel": "flood"}}).encode())
        )
        mask = b"\x00\x00\x00\x00"
        await loop.sock_sendall(
            sock, bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask + payload
        )
        healthy = await connected(srv, False, "ok")
        await healthy.call("subscribe", {"channel": "flood"})
        for _ in range(200):
            await asyncio.sleep(0.001)
            if srv.num_subscribers("flood") == 2:
                break
        big = "y" * 16000
        for i in range(2000):
            await healthy.call("publish", {"channel": "flood", "data": {"i": i, "b": big}})
            if srv.num_subscribers("flood") == 1:
                break
        assert srv.num_subscribers("flood") == 1
        assert srv.server_disconnects(3008) == 1
        await healthy.call("presence_stats", {"channel": "flood"})
        sock.close()


def _client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked client frame (zero mask key keeps the payload readable)."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    else:
        head += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    return head + b"\x00\x00\x00\x00" + payload


async def test_upgrade_on_kept_alive_http_connection(relay: Any) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    body = b"{}"
    writer.write(
        b"POST /api/info HTTP/1.1\r\nHost: x\r\nX-API-Key: test-api-key\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert b'"nodes"' in await reader.readexactly(length)
    # the same TCP connection now upgrades: served by the aiohttp fallback
    writer.write(
        b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    cmd = json.dumps({"id": 1, "connect": {"token": token("ka")}}).encode()
    writer.write(_client_frame(cmd))
    frame = await reader.readexactly(2)
    size = frame[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    reply = json.loads(await reader.readexactly(size))
    assert reply["id"] == 1 and "client" in reply["connect"]
    writer.close()


async def test_plain_http_on_websocket_path_and_unknown_paths(relay: Any) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(relay.http_url + "/connection/websocket") as resp:
            assert resp.status == 400 and (await resp.text()).startswith("Bad Request")
        async with http.get(relay.http_url + "/nope") as resp:
            assert resp.status == 404 and await resp.text() == "404 page not found\n"


async def test_personal_and_user_limited_channels(server_factory: Any, protobuf: bool) -> None:
    from relay.config import ChannelConfig, Namespace, PersonalChannelConfig

    base = make_config()
    cfg = replace(
        base,
        client=replace(
            base.client,
            subscribe_to_user_personal_channel=PersonalChannelConfig(
                enabled=True, personal_channel_namespace="personal"
            ),
        ),
        channel=ChannelConfig(
            namespaces=(
                Namespace(name="personal", allow_user_limited_channels=True),
                Namespace(
                    name="dm", allow_user_limited_channels=True, allow_publish_for_subscriber=True
                ),
            )
        ),
    )
    async with server_factory(cfg) as srv:
        c = await RawClient.open(srv.ws_url, protobuf)
        res = (await c.connect(token=token("42")))["connect"]
        assert list(res["subs"]) == ["personal:#42"]
        assert "subscribe" in await c.call("subscribe", {"channel": "dm:#42,43"})
        assert (await c.call("subscribe", {"channel": "dm:#43,44"}))["error"]["code"] == 103
        other = await connected(srv, protobuf, "43")
        await other.call("subscribe", {"channel": "dm:#42,43"})
        await other.call("publish", {"channel": "dm:#42,43", "data": b"7" if protobuf else 7})
        assert (await c.push("pub", "dm:#42,43"))["pub"]["info"]["user"] == "43"
        await c.close()
        await other.close()


async def test_binary_publication_closes_json_subscriber_3506(relay: Any) -> None:
    json_sub = await connected(relay, False, "j")
    await json_sub.call("subscribe", {"channel": "bin"})
    proto_sub = await connected(relay, True, "p")
    await proto_sub.call("subscribe", {"channel": "bin"})
    await proto_sub.call("publish", {"channel": "bin", "data": b"\xff\x00binary"})
    assert (await proto_sub.push("pub", "bin"))["pub"]["data"] == b"\xff\x00binary"
    assert await json_sub.closed() == (3506, "inappropriate protocol")
    await proto_sub.close()


async def test_connection_limits_answer_503(server_factory: Any) -> None:
    base = make_config()
    cfg = replace(base, client=replace(base.client, connection_limit=2))
    async with server_factory(cfg) as srv:
        kept = [await connected(srv, False, f"u{i}") for i in range(2)]
        with pytest.raises(websockets.InvalidStatus) as exc:
            await websockets.connect(srv.ws_url)
        assert exc.value.response.status_code == 503
        assert "presence_stats" in await kept[0].call("presence_stats", {"channel": "x"})
        for c in kept:
            await c.close()
    cfg = replace(base, client=replace(base.client, connection_rate_limit=1))
    async with server_factory(cfg) as srv:
        statuses = []
        for _ in range(4):
            try:
                ws = await websockets.connect(srv.ws_url)
                statuses.append(101)
                await ws.close()
            except websockets.InvalidStatus as err:
                statuses.append(err.response.status_code)
        assert 101 in statuses and 503 in statuses
