"""The real centrifuge-python SDK (0.7.0) against relay, over JSON and Protobuf.

Every assertion is on what the SDK reports (events, results, states, exceptions):
spec client-protocol.md §7 (semantics) and §10 (SDK matrix).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest
from centrifuge import ClientState, ReplyError, StreamPosition, SubscriptionState

from relay.auth import encode_hmac_token
from relay.errors import Disconnect
from tests.conftest import make_config, token
from tests.integration.sdk_helpers import SDKPool, decoded, payload, subscription


@pytest.fixture(params=[False, True], ids=["json", "protobuf"])
def protobuf(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def server_client(srv: Any, client_id: str) -> Any:
    return srv.clients[client_id]


async def quiet(seconds: float = 0.3) -> None:
    """Leave room for something that must not happen (a reconnect, an event)."""
    await asyncio.sleep(seconds)


# =========================================================================================
# 1. connect
# =========================================================================================
async def test_connect_with_token(relay: Any, protobuf: bool) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        client, rec = await pool.connected(token=token("42"))
        ctx = rec.all("connected")[0]
        assert len(ctx.client) == 36 and ctx.client == client.client_id
        assert ctx.version.endswith(" OSS")
        assert client.state == ClientState.CONNECTED
        assert ctx.client in relay.clients
        assert relay.clients[ctx.client].user == "42"


async def test_anonymous_connect_allowed(server_factory: Any, protobuf: bool) -> None:
    base = make_config()
    cfg = make_config(client=replace(base.client, allow_anonymous_connect_without_token=True))
    async with server_factory(cfg) as srv, SDKPool(srv.ws_url, protobuf) as pool:
        client, rec = await pool.connected()
        assert client.state == ClientState.CONNECTED
        assert srv.clients[client.client_id].user == ""


async def test_anonymous_connect_refused(relay: Any, protobuf: bool) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        client, rec = pool.client()
        await client.connect()
        ctx = await rec.wait("disconnected")
        assert ctx.code == 3501
        await quiet()
        assert client.state == ClientState.DISCONNECTED
        assert rec.all("connected") == []
        assert len(rec.all("connecting")) == 1  # only the connect() call, no reconnect


async def test_invalid_token_disconnects_3500(relay: Any, protobuf: bool) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        bad = encode_hmac_token({"sub": "42"}, "wrong-secret")
        client, rec = pool.client(token=bad)
        await client.connect()
        ctx = await rec.wait("disconnected")
        assert ctx.code == 3500 and ctx.reason == "invalid token"
        await quiet()
        assert client.state == ClientState.DISCONNECTED
        assert rec.all("connected") == []
        assert len(rec.all("connecting")) == 1


async def test_expired_token_reconnects_with_get_token(relay: Any, protobuf: bool) -> None:
    calls: list[str] = []

    async def get_token() -> str:
        calls.append("connect")
        return token("42", exp=int(time.time()) + 60)

    async with SDKPool(relay.ws_url, protobuf) as pool:
        expired = token("42", exp=int(time.time()) - 10)
        client, rec = pool.client(token=expired, get_token=get_token, min_reconnect_delay=0.05)
        await client.connect()
        ctx = await rec.wait("connected")
        assert calls == ["connect"]
        assert client.state == ClientState.CONNECTED
        assert relay.clients[ctx.client].user == "42"
        # The first attempt was answered with error 109 (token expired).
        errors = [e.error for e in rec.all("error") if isinstance(e.error, ReplyError)]
        assert [e.code for e in errors] == [109]
        assert rec.all("disconnected") == []


# =========================================================================================
# 2. subscribe, publish, join/leave, presence, history
# =========================================================================================
async def test_publish_between_clients(relay: Any, protobuf: bool) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, _ = await pool.connected(token=token("alice"))
        b, _ = await pool.connected(token=token("bob"))
        sub_a, rec_a = subscription(a, "chat:room")
        sub_b, rec_b = subscription(b, "chat:room")
        await sub_a.subscribe()
        await sub_b.subscribe()
        ctx = await rec_a.wait("subscribed")
        assert ctx.channel == "chat:room" and ctx.recoverable and ctx.positioned
        assert ctx.stream_position.offset == 0 and len(ctx.stream_position.epoch) == 8
        await rec_b.wait("subscribed")
        assert sub_a.state == SubscriptionState.SUBSCRIBED

        await sub_a.publish(payload(protobuf, {"text": "one"}))
        await sub_a.publish(payload(protobuf, {"text": "two"}))
        second = await rec_b.wait("publication", count=2)
        pubs = rec_b.all("publication")
        assert [decoded(p.pub.data) for p in pubs] == [{"text": "one"}, {"text": "two"}]
        assert [p.pub.offset for p in pubs] == [1, 2]
        assert second.pub.info.user == "alice" and second.pub.info.client == a.client_id
        # The publisher gets its own publications too.
        await rec_a.wait("publication", count=2)
        assert [p.pub.offset for p in rec_a.all("publication")] == [1, 2]


async def test_join_leave(relay: Any, protobuf: bool) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, _ = await pool.connected(token=token("alice"))
        b, _ = await pool.connected(token=token("bob"))
        sub_a, rec_a = subscription(a, "chat:jl")
        await sub_a.subscribe()
        await rec_a.wait("subscribed")
        sub_b, rec_b = subscription(b, "chat:jl")
        await sub_b.subscribe()
        await rec_b.wait("subscribed")

        join = await rec_a.wait("join", lambda c: c.info.user == "bob")
        assert join.info.client == b.client_id
        # B's own subscription sees its join too (force_push_join_leave).
        await rec_b.wait("join", lambda c: c.info.client == b.client_id)
        await sub_b.unsubscribe()
        leave = await rec_a.wait("leave")
        assert leave.info.user == "bob" and leave.info.client == b.client_id
        await sub_b.subscribe()
        await rec_a.wait("join", lambda c: c.info.user == "bob", count=2)
        await b.disconnect()
        await rec_a.wait("leave", count=2)
        assert [c.info.user for c in rec_a.all("leave")] == ["bob", "bob"]


async def test_presence_and_stats(relay: Any, protobuf: bool) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, _ = await pool.connected(token=token("alice"))
        b, _ = await pool.connected(token=token("bob"))
        c, _ = await pool.connected(token=token("bob"))
        subs = []
        for client in (a, b, c):
            sub, rec = subscription(client, "chat:pres")
            await sub.subscribe()
            await rec.wait("subscribed")
            subs.append(sub)

        async def settled() -> Any:
            while True:
                res = await subs[0].presence()
                if len(res.clients) == 3:
                    return res
                await asyncio.sleep(0.02)

        res = await asyncio.wait_for(settled(), 5)
        assert set(res.clients) == {a.client_id, b.client_id, c.client_id}
        assert res.clients[a.client_id].user == "alice"
        assert res.clients[b.client_id].client == b.client_id
        stats = await subs[1].presence_stats()
        assert (stats.num_clients, stats.num_users) == (3, 2)


async def test_history(relay: Any, protobuf: bool) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, _ = await pool.connected(token=token("alice"))
        sub, rec = subscription(a, "chat:hist")
        await sub.subscribe()
        await rec.wait("subscribed")
        for i in range(1, 6):
            await sub.publish(payload(protobuf, {"n": i}))
        await rec.wait("publication", count=5)

        full = await sub.history(limit=-1)
        assert [p.offset for p in full.publications] == [1, 2, 3, 4, 5]
        assert [decoded(p.data) for p in full.publications] == [{"n": i} for i in range(1, 6)]
        assert full.offset == 5 and len(full.epoch) == 8
        assert full.publications[0].info.user == "alice"

        top = await sub.history()
        assert top.publications == [] and top.offset == 5 and top.epoch == full.epoch

        first = await sub.history(limit=2)
        assert [p.offset for p in first.publications] == [1, 2]
        latest = await sub.history(limit=2, reverse=True)
        assert [p.offset for p in latest.publications] == [5, 4]

        since = StreamPosition(offset=2, epoch=full.epoch)
        after = await sub.history(limit=10, since=since)
        assert [p.offset for p in after.publications] == [3, 4, 5]
        after2 = await sub.history(limit=2, since=since)
        assert [p.offset for p in after2.publications] == [3, 4]
        before = await sub.history(limit=10, since=StreamPosition(4, full.epoch), reverse=True)
        assert [p.offset for p in before.publications] == [3, 2, 1]
        with pytest.raises(ReplyError) as wrong_epoch:
            await sub.history(limit=10, since=StreamPosition(2, "xxxxxxxx"))
        assert wrong_epoch.value.code == 112
        with pytest.raises(ReplyError) as from_zero:  # refused before the engine, as centrifuge
            await sub.history(limit=10, since=StreamPosition(0, full.epoch), reverse=True)
        assert from_zero.value.code == 107


# =========================================================================================
# 3. recovery
# =========================================================================================
async def _recovery_case(
    relay: Any, protobuf: bool, channel: str, publisher_subscribes: bool, missed: int
) -> tuple[Any, Any]:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, rec_a = await pool.connected(token=token("alice"), min_reconnect_delay=0.3)
        b, _ = await pool.connected(token=token("bob"))
        sub_a, srec_a = subscription(a, channel, recoverable=True)
        await sub_a.subscribe()
        first = await srec_a.wait("subscribed")
        assert first.recoverable and not first.was_recovering
        if publisher_subscribes:
            sub_b, srec_b = subscription(b, channel)
            await sub_b.subscribe()
            await srec_b.wait("subscribed")
        await b.publish(channel, payload(protobuf, {"n": 0}))
        await srec_a.wait("publication")

        server_client(relay, a.client_id).disconnect(Disconnect(3011, "force reconnect"))
        connecting = await rec_a.wait("connecting", lambda c: c.code == 3011)
        assert connecting.reason == "force reconnect"
        assert a.state == ClientState.CONNECTING
        for i in range(1, missed + 1):
            await b.publish(channel, payload(protobuf, {"n": i}))
        assert len(rec_a.all("connected")) == 1  # still away: the room is on the SDK side

        await rec_a.wait("connected", count=2)
        again = await srec_a.wait("subscribed", count=2)
        assert again.was_recovering
        assert not rec_a.all("disconnected")
        if again.recovered:
            await srec_a.wait("publication", count=1 + missed)
        else:
            await quiet(0.1)
        return again, [(p.pub.offset, decoded(p.pub.data)) for p in srec_a.all("publication")]


async def test_recovery_after_forced_reconnect(relay: Any, protobuf: bool) -> None:
    ctx, pubs = await _recovery_case(relay, protobuf, "chat:rec", True, 3)
    assert ctx.recovered is True
    # After a successful recovery the reply's offset is the one the SDK sent (spec §7.5).
    assert ctx.stream_position.offset == 1
    assert pubs == [(i + 1, {"n": i}) for i in range(4)]


async def test_recovery_impossible_beyond_history(relay: Any, protobuf: bool) -> None:
    ctx, pubs = await _recovery_case(relay, protobuf, "hist:rec", False, 5)
    assert ctx.recovered is False
    assert ctx.stream_position.offset == 6
    assert pubs == [(1, {"n": 0})]  # nothing of the missed ones is replayed


async def test_get_state_reloads_on_unrecoverable_position(relay: Any, protobuf: bool) -> None:
    """get_state makes the SDK send flag bit 2: an impossible recovery is error 112, and the
    SDK calls get_state again instead of reporting recovered=False."""
    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, _ = await pool.connected(token=token("alice"))
        for i in range(1, 6):
            await a.publish("hist:gs", payload(protobuf, {"n": i}))
        top = await a.history("hist:gs")
        assert top.offset == 5
        positions = [StreamPosition(1, top.epoch), StreamPosition(5, top.epoch)]
        calls: list[str] = []

        async def get_state(channel: str) -> StreamPosition:
            calls.append(channel)
            return positions[len(calls) - 1]

        sub, rec = subscription(a, "hist:gs", recoverable=True, get_state=get_state)
        await sub.subscribe()
        ctx = await rec.wait("subscribed")
        assert calls == ["hist:gs", "hist:gs"]
        assert ctx.was_recovering and ctx.recovered
        assert rec.all("error") == [] and rec.all("publication") == []
        await a.publish("hist:gs", payload(protobuf, {"n": 6}))
        pub = await rec.wait("publication")
        assert pub.pub.offset == 6 and decoded(pub.pub.data) == {"n": 6}


# =========================================================================================
# 4. server-side subscriptions
# =========================================================================================
async def test_server_side_subscription_from_token(relay: Any, protobuf: bool) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, rec = pool.client(token=token("alice", channels=["news"]))
        await a.connect()
        await rec.wait("connected")
        ctx = await rec.wait("subscribed")
        assert ctx.channel == "news" and not ctx.was_recovering
        b, _ = await pool.connected(token=token("bob"))
        await b.publish("news", payload(protobuf, {"headline": "hi"}))
        pub = await rec.wait("publication")
        assert pub.channel == "news"
        assert decoded(pub.pub.data) == {"headline": "hi"}
        assert pub.pub.info.user == "bob"


async def test_server_side_subscription_recovery(relay: Any, protobuf: bool) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, rec = pool.client(token=token("alice", channels=["chat:srv"]), min_reconnect_delay=0.3)
        await a.connect()
        first = await rec.wait("subscribed")
        assert first.channel == "chat:srv" and first.recoverable and not first.was_recovering
        b, _ = await pool.connected(token=token("bob"))
        sub_b, srec_b = subscription(b, "chat:srv")
        await sub_b.subscribe()
        await srec_b.wait("subscribed")
        await sub_b.publish(payload(protobuf, {"n": 0}))
        await rec.wait("publication")

        server_client(relay, a.client_id).disconnect(Disconnect(3011, "force reconnect"))
        await rec.wait("connecting", lambda c: c.code == 3011)
        await rec.wait("subscribing", lambda c: c.channel == "chat:srv")
        for i in range(1, 4):
            await sub_b.publish(payload(protobuf, {"n": i}))

        again = await rec.wait("subscribed", count=2)
        assert again.channel == "chat:srv"
        assert again.was_recovering and again.recovered
        await rec.wait("publication", count=4)
        got = [(p.pub.offset, decoded(p.pub.data)) for p in rec.all("publication")]
        assert got == [(i + 1, {"n": i}) for i in range(4)]
        assert rec.all("unsubscribed") == []


# =========================================================================================
# 5. subscription tokens and connection token refresh
# =========================================================================================
async def test_private_channel_with_subscription_get_token(relay: Any, protobuf: bool) -> None:
    asked: list[str] = []

    async def get_sub_token(channel: str) -> str:
        asked.append(channel)
        return token("alice", channel=channel, exp=int(time.time()) + 60)

    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, _ = await pool.connected(token=token("alice"))
        sub, rec = subscription(a, "$secret", get_token=get_sub_token)
        await sub.subscribe()
        ctx = await rec.wait("subscribed")
        assert ctx.channel == "$secret" and asked == ["$secret"]
        await sub.publish(payload(protobuf, {"x": 1}))
        pub = await rec.wait("publication")
        assert decoded(pub.pub.data) == {"x": 1}

        # Without a token the private channel is denied (103), terminally.
        other, orec = subscription(a, "$other")
        await other.subscribe()
        un = await orec.wait("unsubscribed")
        assert un.code == 103


async def test_connection_token_refresh(server_factory: Any, protobuf: bool) -> None:
    base = make_config()
    cfg = make_config(client=replace(base.client, expired_close_delay=1.5))
    refreshed = asyncio.Event()

    async def get_token() -> str:
        refreshed.set()
        return token("alice", exp=int(time.time()) + 60)

    async with server_factory(cfg) as srv, SDKPool(srv.ws_url, protobuf) as pool:
        exp = int(time.time()) + 2
        client, rec = await pool.connected(token=token("alice", exp=exp), get_token=get_token)
        await asyncio.wait_for(refreshed.wait(), 5)
        # Past the original expiry plus the close delay, the connection is still up.
        await asyncio.sleep(max(0.0, exp + 1.5 + 0.3 - time.time()))
        assert client.state == ClientState.CONNECTED
        assert len(rec.all("connected")) == 1
        assert len(rec.all("connecting")) == 1
        assert rec.all("disconnected") == []
        server = srv.clients[client.client_id]
        assert server.exp is not None and server.exp > time.time() + 30


async def test_subscription_token_refresh(server_factory: Any, protobuf: bool) -> None:
    base = make_config()
    cfg = make_config(client=replace(base.client, expired_sub_close_delay=1.5))
    exp = int(time.time()) + 2
    tokens: list[int] = []

    async def get_sub_token(channel: str) -> str:
        expires = exp if not tokens else int(time.time()) + 60
        tokens.append(expires)
        return token("alice", channel=channel, exp=expires)

    async with server_factory(cfg) as srv, SDKPool(srv.ws_url, protobuf) as pool:
        a, _ = await pool.connected(token=token("alice"))
        sub, rec = subscription(a, "$refresh", get_token=get_sub_token)
        await sub.subscribe()
        await rec.wait("subscribed")

        async def refreshed() -> None:
            while len(tokens) < 2:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(refreshed(), 5)
        await asyncio.sleep(max(0.0, exp + 1.5 + 0.3 - time.time()))
        assert sub.state == SubscriptionState.SUBSCRIBED
        assert rec.all("unsubscribed") == [] and len(rec.all("subscribed")) == 1
        assert rec.all("subscribing", lambda c: c.code != 0) == []
        server_sub = srv.clients[a.client_id].subs["$refresh"]
        assert server_sub.expire_at is not None and server_sub.expire_at > time.time() + 30


# =========================================================================================
# 6. error codes
# =========================================================================================
@pytest.mark.parametrize(("channel", "code"), [("nope:x", 102), ("closed:x", 103)])
async def test_subscribe_errors(relay: Any, protobuf: bool, channel: str, code: int) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, rec_a = await pool.connected(token=token("alice"))
        sub, rec = subscription(a, channel)
        await sub.subscribe()
        ctx = await rec.wait("unsubscribed")
        assert ctx.code == code
        assert sub.state == SubscriptionState.UNSUBSCRIBED
        assert a.state == ClientState.CONNECTED


async def test_publish_denied_and_rpc_not_available(relay: Any, protobuf: bool) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, rec = await pool.connected(token=token("alice"))
        with pytest.raises(ReplyError) as denied:
            await a.publish("closed:x", payload(protobuf, {"x": 1}))
        assert denied.value.code == 103 and not denied.value.temporary
        # chat: allows publishing for subscribers only.
        with pytest.raises(ReplyError) as not_sub:
            await a.publish("chat:x", payload(protobuf, {"x": 1}))
        assert not_sub.value.code == 103
        with pytest.raises(ReplyError) as rpc:
            await a.rpc("method", payload(protobuf, {}))
        assert rpc.value.code == 108
        assert a.state == ClientState.CONNECTED
        assert rec.all("disconnected") == [] and len(rec.all("connecting")) == 1


# =========================================================================================
# 7. server disconnects
# =========================================================================================
async def test_force_disconnect_3503_is_terminal(relay: Any, protobuf: bool) -> None:
    async with SDKPool(relay.ws_url, protobuf) as pool:
        a, rec = await pool.connected(token=token("alice"))
        server_client(relay, a.client_id).disconnect(Disconnect(3503, "force disconnect"))
        ctx = await rec.wait("disconnected")
        assert (ctx.code, ctx.reason) == (3503, "force disconnect")
        await quiet()
        assert a.state == ClientState.DISCONNECTED
        assert len(rec.all("connecting")) == 1 and len(rec.all("connected")) == 1


async def test_server_stop_3001_reconnects(server_factory: Any, protobuf: bool) -> None:
    async with SDKPool("", protobuf) as pool:
        async with server_factory() as srv:
            pool.url = srv.ws_url
            a, rec = await pool.connected(token=token("alice"), min_reconnect_delay=1.0)
            sub, srec = subscription(a, "chat:stop")
            await sub.subscribe()
            await srec.wait("subscribed")
        ctx = await rec.wait("connecting", lambda c: c.code == 3001)
        assert ctx.reason == "shutdown"
        assert a.state == ClientState.CONNECTING
        assert rec.all("disconnected") == []
        # The subscription waits to resubscribe.
        sub_ctx = await srec.wait("subscribing", lambda c: c.code != 0)
        assert sub.state == SubscriptionState.SUBSCRIBING and sub_ctx.code == 1
