"""The scripted exchanges. Each one records into ``t.rec``; channels are unique per scenario."""

from __future__ import annotations

import base64
import time
from typing import Any

from bench.compat.harness import Scenario, Target, token
from bench.compat.servers import API_KEY

SCENARIOS: dict[str, Scenario] = {}


def sc(name: str) -> Any:
    def deco(fn: Scenario) -> Scenario:
        assert name not in SCENARIOS, name
        SCENARIOS[name] = fn
        return fn

    return deco


def now() -> int:
    return int(time.time())


def sub_token(channel: str, sub: str = "42", secret: str | None = None, **claims: Any) -> str:
    kw: dict[str, Any] = {"channel": channel}
    kw.update(claims)
    if secret is not None:
        kw["secret"] = secret
    return token(sub, **kw)


# ---- connect ------------------------------------------------------------------------


@sc("connect/reply")
async def _connect_reply(t: Target) -> None:
    await t.client()


@sc("connect/with-exp")
async def _connect_exp(t: Target) -> None:
    await t.client(tok=token(exp=now() + 3600))


@sc("connect/with-name-version-data")
async def _connect_name(t: Target) -> None:
    await t.client(name="py", version="1.2.3", data={"hello": "x"})


@sc("connect/token-info-claims")
async def _connect_info(t: Target) -> None:
    c = await t.client(tok=token(info={"name": "Alice"}, meta={"m": 1}))
    await c.cmd(2, "subscribe", {"channel": "chat:info-claims"})


@sc("connect/token-b64info")
async def _connect_b64info(t: Target) -> None:
    b = base64.b64encode(b'{"x":1}').decode()
    c = await t.client(tok=token(b64info=b))
    await c.cmd(2, "subscribe", {"channel": "chat:b64info"})


@sc("connect/token-expired")
async def _connect_expired(t: Target) -> None:
    c = await t.ws()
    await c.connect(token(exp=now() - 60))
    await c.wait_close(1.0)


@sc("connect/token-bad-signature")
async def _connect_badsig(t: Target) -> None:
    c = await t.ws()
    await c.connect(token(secret="wrong-secret"))
    await c.wait_close(1.0)


@sc("connect/token-garbage")
async def _connect_garbage(t: Target) -> None:
    c = await t.ws()
    await c.connect("not.a.jwt")
    await c.wait_close(1.0)


@sc("connect/token-empty-sub")
async def _connect_empty_sub(t: Target) -> None:
    c = await t.ws()
    await c.connect(token(""))
    await c.wait_close(1.0)


@sc("connect/token-nbf-future")
async def _connect_nbf(t: Target) -> None:
    c = await t.ws()
    await c.connect(token(nbf=now() + 3600))
    await c.wait_close(1.0)


@sc("connect/token-alg-none")
async def _connect_alg_none(t: Target) -> None:
    import jwt

    c = await t.ws()
    await c.connect(jwt.encode({"sub": "42"}, None, algorithm="none"))
    await c.wait_close(1.0)


@sc("connect/anonymous-refused")
async def _connect_anon(t: Target) -> None:
    c = await t.ws()
    await c.connect("")
    await c.wait_close(1.0)


@sc("connect/second-connect")
async def _connect_twice(t: Target) -> None:
    c = await t.client()
    await c.connect(cid=2)
    await c.wait_close(1.0)


@sc("connect/without-id")
async def _connect_noid(t: Target) -> None:
    c = await t.ws()
    await c.send({"connect": {"token": token()}})
    await c.recv(1)
    await c.wait_close(1.0)


@sc("connect/subscribe-before-connect")
async def _cmd_before_connect(t: Target) -> None:
    c = await t.ws()
    await c.send({"id": 1, "subscribe": {"channel": "chat:before"}})
    await c.wait_close(1.0)


@sc("connect/ping-before-connect")
async def _ping_before_connect(t: Target) -> None:
    c = await t.ws()
    await c.send({"id": 1, "ping": {}})
    await c.wait_close(1.0)


@sc("connect/empty-pong-before-connect")
async def _pong_before_connect(t: Target) -> None:
    c = await t.ws()
    await c.send({})
    await c.wait_close(1.0)


@sc("connect/connect+subscribe-one-frame")
async def _connect_and_sub(t: Target) -> None:
    c = await t.ws()
    c.log_frames = True
    await c.send(
        {"id": 1, "connect": {"token": token()}},
        {"id": 2, "subscribe": {"channel": "chat:cs-one-frame"}},
    )
    await c.recv(2)


@sc("connect/subs-map-in-connect")
async def _connect_subs(t: Target) -> None:
    c = await t.ws()
    await c.connect(subs={"chat:subs-map": {}})
    await c.drain()


@sc("connect/server-side-channels-claim")
async def _connect_channels(t: Target) -> None:
    c = await t.ws()
    await c.connect(token(channels=["chat:ss1", "hist:ss2"]))
    await c.drain()
    await c.cmd(2, "subscribe", {"channel": "chat:ss1"})
    await c.cmd(3, "unsubscribe", {"channel": "chat:ss1"})


@sc("connect/server-side-subs-claim")
async def _connect_subs_claim(t: Target) -> None:
    c = await t.ws()
    await c.connect(token(subs={"chat:ss3": {"data": {"a": 1}}}))
    await c.drain()


@sc("connect/expire_at-claim")
async def _connect_expire_at(t: Target) -> None:
    c = await t.ws()
    await c.connect(token(exp=now() + 3600, expire_at=now() + 600))


# ---- protocol-level oddities after connect -----------------------------------------


@sc("proto/unknown-method")
async def _unknown_method(t: Target) -> None:
    c = await t.client()
    await c.send({"id": 2})
    await c.recv(1)
    await c.wait_close(1.0)


@sc("proto/ping-command")
async def _ping_cmd(t: Target) -> None:
    c = await t.client()
    await c.send({"id": 2, "ping": {}})
    await c.recv(1)
    await c.drain()


@sc("proto/unsolicited-pong")
async def _pong(t: Target) -> None:
    c = await t.client()
    await c.send({})
    await c.drain(0.6)
    await c.cmd(2, "subscribe", {"channel": "chat:after-pong"})


@sc("proto/empty-frame")
async def _empty(t: Target) -> None:
    c = await t.client()
    await c.send_raw("")
    await c.wait_close(1.0)


@sc("proto/garbage-frame")
async def _garbage(t: Target) -> None:
    c = await t.client()
    await c.send_raw("this is not json")
    await c.wait_close(1.0)


@sc("proto/binary-frame-in-json-mode")
async def _binary_json(t: Target) -> None:
    c = await t.client()
    await c.send_raw(b'{"id":2,"ping":{}}')
    await c.wait_close(1.0)


@sc("proto/three-commands-2nd-malformed")
async def _three_bad(t: Target) -> None:
    c = await t.client()
    c.log_frames = True
    await c.send_raw(
        '{"id":2,"subscribe":{"channel":"chat:tri1"}}\n{"id":3,"subscr\n'
        '{"id":4,"subscribe":{"channel":"chat:tri2"}}'
    )
    await c.wait_close(1.0)


@sc("proto/three-commands-ok")
async def _three_ok(t: Target) -> None:
    c = await t.client()
    c.log_frames = True
    await c.send(
        {"id": 2, "subscribe": {"channel": "chat:tri-ok1"}},
        {"id": 3, "subscribe": {"channel": "chat:tri-ok2"}},
        {"id": 4, "presence_stats": {"channel": "chat:tri-ok1"}},
    )
    await c.recv(5)
    await c.drain()


@sc("proto/trailing-newline")
async def _trailing_nl(t: Target) -> None:
    c = await t.client()
    await c.send_raw('{"id":2,"ping":{}}\n')
    await c.recv(1)
    await c.drain()


@sc("proto/duplicate-command-id")
async def _dup_id(t: Target) -> None:
    c = await t.client()
    await c.send({"id": 2, "ping": {}}, {"id": 2, "ping": {}})
    await c.recv(2)


@sc("proto/command-id-zero-with-method")
async def _id_zero(t: Target) -> None:
    c = await t.client()
    await c.send({"id": 0, "subscribe": {"channel": "chat:id0"}})
    await c.recv(1)
    await c.wait_close(1.0)


@sc("proto/two-methods-in-one-command")
async def _two_methods(t: Target) -> None:
    c = await t.client()
    await c.send({"id": 2, "ping": {}, "subscribe": {"channel": "chat:twometh"}})
    await c.recv(2)
    await c.drain()


@sc("proto/unknown-field")
async def _unknown_field(t: Target) -> None:
    c = await t.client()
    await c.send({"id": 2, "subscribe": {"channel": "chat:uf", "bogus": 1}, "extra": True})
    await c.recv(1)
    await c.drain()


@sc("proto/wrong-type-channel")
async def _wrong_type(t: Target) -> None:
    c = await t.client()
    await c.send({"id": 2, "subscribe": {"channel": 5}})
    await c.recv(1)
    await c.wait_close(1.0)


@sc("proto/rpc-no-proxy")
async def _rpc(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "rpc", {"method": "foo", "data": {"x": 1}})
    await c.drain()


@sc("proto/send-no-proxy")
async def _send(t: Target) -> None:
    c = await t.client()
    await c.send({"send": {"data": {"x": 1}}})
    await c.drain(0.6)
    await c.cmd(2, "ping", {})


@sc("proto/send-with-id")
async def _send_id(t: Target) -> None:
    c = await t.client()
    await c.send({"id": 2, "send": {"data": {"x": 1}}})
    await c.drain(0.6)
    await c.cmd(3, "ping", {})


# ---- subscribe ------------------------------------------------------------------------


async def _sub_one(t: Target, body: dict[str, Any], tok: str | None = None) -> None:
    c = await t.client(tok=tok)
    await c.cmd(2, "subscribe", body)
    await c.wait_close(0.6)


@sc("sub/unknown-namespace")
async def _sub_unknown(t: Target) -> None:
    await _sub_one(t, {"channel": "nope:x"})


@sc("sub/private-without-token")
async def _sub_private(t: Target) -> None:
    await _sub_one(t, {"channel": "$private-nt"})


@sc("sub/closed-namespace")
async def _sub_closed(t: Target) -> None:
    await _sub_one(t, {"channel": "closed:x"})


@sc("sub/too-long")
async def _sub_long(t: Target) -> None:
    await _sub_one(t, {"channel": "chat:" + "x" * 300})


@sc("sub/non-ascii")
async def _sub_nonascii(t: Target) -> None:
    await _sub_one(t, {"channel": "chat:привет"})


@sc("sub/empty-channel")
async def _sub_empty(t: Target) -> None:
    await _sub_one(t, {"channel": ""})


@sc("sub/no-namespace")
async def _sub_nons(t: Target) -> None:
    await _sub_one(t, {"channel": "plain-nons"})


@sc("sub/duplicate")
async def _sub_dup(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "subscribe", {"channel": "chat:dup"})
    await c.cmd(3, "subscribe", {"channel": "chat:dup"})
    await c.wait_close(0.6)


@sc("sub/chat-plain")
async def _sub_chat(t: Target) -> None:
    await _sub_one(t, {"channel": "chat:plain"})


@sc("sub/chat-recover-no-offset")
async def _sub_chat_rec(t: Target) -> None:
    await _sub_one(t, {"channel": "chat:rec0", "recover": True})


@sc("sub/chat-positioned")
async def _sub_chat_pos(t: Target) -> None:
    await _sub_one(t, {"channel": "chat:pos", "positioned": True})


@sc("sub/chat-recoverable")
async def _sub_chat_recoverable(t: Target) -> None:
    await _sub_one(t, {"channel": "chat:recable", "recoverable": True})


@sc("sub/chat-flag-1")
async def _sub_chat_flag(t: Target) -> None:
    await _sub_one(t, {"channel": "chat:flag", "flag": 1})


@sc("sub/hist-positioned-recoverable")
async def _sub_hist_flags(t: Target) -> None:
    await _sub_one(t, {"channel": "hist:flags", "positioned": True, "recoverable": True})


@sc("sub/hist-plain")
async def _sub_hist_plain(t: Target) -> None:
    await _sub_one(t, {"channel": "hist:plain"})


@sc("sub/with-data")
async def _sub_data(t: Target) -> None:
    await _sub_one(t, {"channel": "chat:subdata", "data": {"x": 1}})


@sc("sub/delta-fossil-not-allowed")
async def _sub_delta(t: Target) -> None:
    await _sub_one(t, {"channel": "chat:delta", "delta": "fossil"})


@sc("sub/join-leave-two-clients")
async def _sub_jl(t: Target) -> None:
    a = await t.client("A", tok=token("1"))
    await a.cmd(2, "subscribe", {"channel": "chat:jl"})
    b = await t.client("B", tok=token("2", info={"n": "bob"}))
    await b.cmd(2, "subscribe", {"channel": "chat:jl"})
    await a.recv(1)
    await b.drain()
    await b.cmd(3, "unsubscribe", {"channel": "chat:jl"})
    await a.recv(1)
    await b.cmd(4, "subscribe", {"channel": "chat:jl"})
    await a.recv(1)
    await b.close()
    await a.recv(1)
    await a.drain()


async def _seed(t: Target, channel: str, n: int) -> str:
    """Publish ``n`` messages via the API; return the epoch (from API history)."""
    for i in range(n):
        await t.api("publish", {"channel": channel, "data": {"i": i}})
    res = await t.api("history", {"channel": channel, "limit": 0})
    return str(((res or {}).get("result") or {}).get("epoch", ""))


@sc("recovery/success")
async def _rec_ok(t: Target) -> None:
    epoch = await _seed(t, "hist:rec-ok", 3)
    c = await t.client()
    await c.cmd(
        2, "subscribe", {"channel": "hist:rec-ok", "recover": True, "offset": 1, "epoch": epoch}
    )


@sc("recovery/success-nothing-missed")
async def _rec_none(t: Target) -> None:
    epoch = await _seed(t, "hist:rec-none", 2)
    c = await t.client()
    await c.cmd(
        2, "subscribe", {"channel": "hist:rec-none", "recover": True, "offset": 2, "epoch": epoch}
    )


@sc("recovery/wrong-epoch")
async def _rec_epoch(t: Target) -> None:
    await _seed(t, "hist:rec-ep", 2)
    c = await t.client()
    await c.cmd(
        2, "subscribe", {"channel": "hist:rec-ep", "recover": True, "offset": 1, "epoch": "112"}
    )


@sc("recovery/offset-too-old")
async def _rec_old(t: Target) -> None:
    epoch = await _seed(t, "hist:rec-old", 5)
    c = await t.client()
    await c.cmd(
        2, "subscribe", {"channel": "hist:rec-old", "recover": True, "offset": 0, "epoch": epoch}
    )


@sc("recovery/offset-in-future")
async def _rec_future(t: Target) -> None:
    epoch = await _seed(t, "hist:rec-fut", 1)
    c = await t.client()
    await c.cmd(
        2, "subscribe", {"channel": "hist:rec-fut", "recover": True, "offset": 10, "epoch": epoch}
    )


@sc("recovery/force-recovery-chat")
async def _rec_chat(t: Target) -> None:
    epoch = await _seed(t, "chat:rec-force", 2)
    c = await t.client()
    await c.cmd(
        2, "subscribe", {"channel": "chat:rec-force", "recover": True, "offset": 0, "epoch": epoch}
    )


@sc("recovery/not-allowed-no-history")
async def _rec_plain(t: Target) -> None:
    c = await t.client()
    await c.cmd(
        2, "subscribe", {"channel": "plain-rec", "recover": True, "offset": 1, "epoch": "x"}
    )
    await c.wait_close(0.6)


# ---- history --------------------------------------------------------------------------


async def _hist(t: Target, ch: str, body: dict[str, Any], seed: int = 3) -> None:
    epoch = await _seed(t, ch, seed)
    c = await t.client()
    body = {"channel": ch, **body}
    if body.get("since", {}).get("epoch") == "<real>":
        body["since"]["epoch"] = epoch
    await c.cmd(2, "history", body)
    await c.wait_close(0.5)


@sc("history/no-limit")
async def _h_nolimit(t: Target) -> None:
    await _hist(t, "hist:h-nolimit", {})


@sc("history/limit-0")
async def _h0(t: Target) -> None:
    await _hist(t, "hist:h0", {"limit": 0})


@sc("history/limit-minus-1")
async def _hm1(t: Target) -> None:
    await _hist(t, "hist:hm1", {"limit": -1})


@sc("history/limit-2")
async def _h2(t: Target) -> None:
    await _hist(t, "hist:h2", {"limit": 2})


@sc("history/reverse")
async def _hrev(t: Target) -> None:
    await _hist(t, "hist:hrev", {"limit": -1, "reverse": True})


@sc("history/since")
async def _hsince(t: Target) -> None:
    await _hist(t, "hist:hsince", {"limit": -1, "since": {"offset": 1, "epoch": "<real>"}})


@sc("history/since-wrong-epoch")
async def _hsince_ep(t: Target) -> None:
    await _hist(t, "hist:hsince-ep", {"limit": -1, "since": {"offset": 1, "epoch": "112"}})


@sc("history/reverse-since-offset-0")
async def _hrev0(t: Target) -> None:
    await _hist(
        t, "hist:hrev0", {"limit": -1, "reverse": True, "since": {"offset": 0, "epoch": "<real>"}}
    )


@sc("history/reverse-since-offset-3")
async def _hrev3(t: Target) -> None:
    await _hist(
        t, "hist:hrev3", {"limit": 2, "reverse": True, "since": {"offset": 3, "epoch": "<real>"}}
    )


@sc("history/since-offset-in-future")
async def _hsince_fut(t: Target) -> None:
    await _hist(t, "hist:hsince-fut", {"limit": -1, "since": {"offset": 9, "epoch": "<real>"}})


@sc("history/limit-above-size")
async def _hbig(t: Target) -> None:
    await _hist(t, "hist:hbig", {"limit": 50})


@sc("history/overflow-size-3")
async def _hover(t: Target) -> None:
    await _hist(t, "hist:hover", {"limit": -1}, seed=5)


@sc("history/empty-channel")
async def _hempty(t: Target) -> None:
    await _hist(t, "hist:hempty", {"limit": -1}, seed=0)


@sc("history/not-subscribed-chat")
async def _hchat(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "history", {"channel": "chat:h-nosub", "limit": -1})
    await c.wait_close(0.5)


@sc("history/subscribed-chat")
async def _hchat_sub(t: Target) -> None:
    await _seed(t, "chat:h-sub", 2)
    c = await t.client()
    await c.cmd(2, "subscribe", {"channel": "chat:h-sub"})
    await c.cmd(3, "history", {"channel": "chat:h-sub", "limit": -1})


@sc("history/not-available")
async def _hna(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "history", {"channel": "plain-nohist", "limit": -1})
    await c.wait_close(0.5)


@sc("history/closed-ns")
async def _hclosed(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "history", {"channel": "closed:h", "limit": -1})
    await c.wait_close(0.5)


# ---- presence -------------------------------------------------------------------------


@sc("presence/shapes")
async def _presence(t: Target) -> None:
    c = await t.client(tok=token("7", info={"who": "me"}))
    await c.cmd(2, "subscribe", {"channel": "chat:pres"})
    await c.cmd(3, "presence", {"channel": "chat:pres"})
    await c.cmd(4, "presence_stats", {"channel": "chat:pres"})


@sc("presence/not-subscribed")
async def _presence_nosub(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "presence", {"channel": "chat:pres-nosub"})
    await c.wait_close(0.5)


@sc("presence/no-namespace-empty")
async def _presence_plain(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "presence", {"channel": "plain-pres"})
    await c.cmd(3, "presence_stats", {"channel": "plain-pres"})


@sc("presence/not-enabled")
async def _presence_off(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "subscribe", {"channel": "hist:pres-off"})
    await c.cmd(3, "presence", {"channel": "hist:pres-off"})
    await c.wait_close(0.5)


# ---- publish / unsubscribe ------------------------------------------------------------


@sc("publish/reply-then-push")
async def _pub(t: Target) -> None:
    c = await t.client()
    c.log_frames = True
    await c.cmd(2, "subscribe", {"channel": "chat:pub"})
    await c.cmd(3, "publish", {"channel": "chat:pub", "data": {"text": "hi"}}, n=2)
    await c.drain()


@sc("publish/two-subscribers")
async def _pub2(t: Target) -> None:
    a = await t.client("A", tok=token("1", info={"i": 1}))
    await a.cmd(2, "subscribe", {"channel": "hist:pub2"})
    b = await t.client("B", tok=token("2"))
    await b.cmd(2, "publish", {"channel": "hist:pub2", "data": {"text": "hi"}})
    await a.recv(1)


@sc("publish/not-subscribed-chat")
async def _pub_nosub(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "publish", {"channel": "chat:pub-nosub", "data": {}})
    await c.wait_close(0.5)


@sc("publish/closed-ns")
async def _pub_closed(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "publish", {"channel": "closed:p", "data": {}})
    await c.wait_close(0.5)


@sc("publish/no-data")
async def _pub_nodata(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "publish", {"channel": "plain-pub"})
    await c.wait_close(0.5)


@sc("unsubscribe/not-subscribed")
async def _unsub_nosub(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "unsubscribe", {"channel": "chat:never"})
    await c.wait_close(0.5)


@sc("unsubscribe/subscribed")
async def _unsub(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "subscribe", {"channel": "chat:unsub"})
    await c.cmd(3, "unsubscribe", {"channel": "chat:unsub"})
    await c.drain()


# ---- refresh / sub_refresh ------------------------------------------------------------


@sc("refresh/valid")
async def _refresh(t: Target) -> None:
    c = await t.client(tok=token(exp=now() + 60))
    await c.cmd(2, "refresh", {"token": token(exp=now() + 3600)})


@sc("refresh/expired")
async def _refresh_exp(t: Target) -> None:
    c = await t.client(tok=token(exp=now() + 60))
    await c.cmd(2, "refresh", {"token": token(exp=now() - 60)})
    await c.wait_close(0.6)


@sc("refresh/other-user")
async def _refresh_other(t: Target) -> None:
    c = await t.client(tok=token(exp=now() + 60))
    await c.cmd(2, "refresh", {"token": token("99", exp=now() + 3600)})
    await c.wait_close(0.6)


@sc("refresh/no-exp-connection")
async def _refresh_noexp(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "refresh", {"token": token(exp=now() + 3600)})
    await c.wait_close(0.6)


@sc("refresh/empty-token")
async def _refresh_empty(t: Target) -> None:
    c = await t.client(tok=token(exp=now() + 60))
    await c.cmd(2, "refresh", {"token": ""})
    await c.wait_close(0.6)


@sc("refresh/garbage-token")
async def _refresh_garbage(t: Target) -> None:
    c = await t.client(tok=token(exp=now() + 60))
    await c.cmd(2, "refresh", {"token": "garbage"})
    await c.wait_close(0.6)


@sc("sub_refresh/not-subscribed")
async def _subref_nosub(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "sub_refresh", {"channel": "$priv-nosub", "token": sub_token("$priv-nosub")})
    await c.wait_close(0.6)


@sc("sub_refresh/empty-token")
async def _subref_empty(t: Target) -> None:
    c = await t.client()
    tok = sub_token("$priv-se", exp=now() + 60)
    await c.cmd(2, "subscribe", {"channel": "$priv-se", "token": tok})
    await c.cmd(3, "sub_refresh", {"channel": "$priv-se", "token": ""})
    await c.wait_close(0.6)


@sc("sub_refresh/valid")
async def _subref_ok(t: Target) -> None:
    c = await t.client()
    tok = sub_token("$priv-sv", exp=now() + 60)
    await c.cmd(2, "subscribe", {"channel": "$priv-sv", "token": tok})
    await c.cmd(
        3, "sub_refresh", {"channel": "$priv-sv", "token": sub_token("$priv-sv", exp=now() + 3600)}
    )


@sc("sub_refresh/expired")
async def _subref_exp(t: Target) -> None:
    c = await t.client()
    tok = sub_token("$priv-sx", exp=now() + 60)
    await c.cmd(2, "subscribe", {"channel": "$priv-sx", "token": tok})
    await c.cmd(
        3, "sub_refresh", {"channel": "$priv-sx", "token": sub_token("$priv-sx", exp=now() - 60)}
    )
    await c.drain(3.0)
    await c.cmd(4, "publish", {"channel": "$priv-sx", "data": 1})
    await c.cmd(5, "sub_refresh", {"channel": "$priv-sx", "token": sub_token("$priv-sx")})
    await c.wait_close(0.6)


@sc("sub_refresh/wrong-channel")
async def _subref_wrongch(t: Target) -> None:
    c = await t.client()
    tok = sub_token("$priv-sw", exp=now() + 60)
    await c.cmd(2, "subscribe", {"channel": "$priv-sw", "token": tok})
    await c.cmd(
        3, "sub_refresh", {"channel": "$priv-sw", "token": sub_token("$other", exp=now() + 600)}
    )
    await c.wait_close(0.6)


# ---- subscription tokens --------------------------------------------------------------


@sc("subtoken/valid")
async def _st_ok(t: Target) -> None:
    await _sub_one(t, {"channel": "$priv-ok", "token": sub_token("$priv-ok", info={"a": 1})})


@sc("subtoken/valid-with-exp")
async def _st_exp_ok(t: Target) -> None:
    await _sub_one(t, {"channel": "$priv-oke", "token": sub_token("$priv-oke", exp=now() + 3600)})


@sc("subtoken/expired")
async def _st_exp(t: Target) -> None:
    await _sub_one(t, {"channel": "$priv-ex", "token": sub_token("$priv-ex", exp=now() - 60)})


@sc("subtoken/bad-signature")
async def _st_sig(t: Target) -> None:
    tok = sub_token("$priv-bs", secret="wrong")
    await _sub_one(t, {"channel": "$priv-bs", "token": tok})


@sc("subtoken/channel-mismatch")
async def _st_ch(t: Target) -> None:
    await _sub_one(t, {"channel": "$priv-cm", "token": sub_token("$other")})


@sc("subtoken/sub-mismatch")
async def _st_sub(t: Target) -> None:
    await _sub_one(t, {"channel": "$priv-sm", "token": sub_token("$priv-sm", sub="99")})


@sc("subtoken/garbage")
async def _st_garbage(t: Target) -> None:
    await _sub_one(t, {"channel": "$priv-g", "token": "garbage"})


@sc("subtoken/on-closed-namespace")
async def _st_closed(t: Target) -> None:
    await _sub_one(t, {"channel": "closed:tok", "token": sub_token("closed:tok")})


@sc("subtoken/override-presence")
async def _st_override(t: Target) -> None:
    tok = sub_token("closed:ovr", override={"presence": {"value": True}})
    c = await t.client()
    await c.cmd(2, "subscribe", {"channel": "closed:ovr", "token": tok})
    await c.cmd(3, "presence_stats", {"channel": "closed:ovr"})
    await c.wait_close(0.5)


# ---- protobuf -------------------------------------------------------------------------


@sc("protobuf/connect-subscribe-publish")
async def _pb(t: Target) -> None:
    c = await t.ws(protobuf=True)
    await c.send({"id": 1, "connect": {"token": token()}})
    await c.recv(1)
    await c.send({"id": 2, "subscribe": {"channel": "chat:pb"}})
    await c.recv(1)
    await c.send({"id": 3, "publish": {"channel": "chat:pb", "data": b"\x01\x02raw"}})
    await c.recv(2)
    await c.send({"id": 4, "presence_stats": {"channel": "chat:pb"}})
    await c.recv(1)
    await c.send({"id": 5, "history": {"channel": "chat:pb", "limit": -1}})
    await c.recv(1)


@sc("protobuf/empty-command-pong")
async def _pb_pong(t: Target) -> None:
    c = await t.ws(protobuf=True)
    await c.send({"id": 1, "connect": {"token": token()}})
    await c.recv(1)
    await c.send({})
    await c.drain(0.6)
    await c.send({"id": 2, "ping": {}})
    await c.recv(1)


@sc("protobuf/garbage")
async def _pb_garbage(t: Target) -> None:
    c = await t.ws(protobuf=True)
    await c.send({"id": 1, "connect": {"token": token()}})
    await c.recv(1)
    await c.send_raw(b"\xff\xff\xff\xff")
    await c.wait_close(1.0)


@sc("protobuf/text-frame")
async def _pb_text(t: Target) -> None:
    c = await t.ws(protobuf=True)
    await c.send({"id": 1, "connect": {"token": token()}})
    await c.recv(1)
    await c.send_raw('{"id":2,"ping":{}}')
    await c.wait_close(1.0)


@sc("protobuf/error-reply")
async def _pb_err(t: Target) -> None:
    c = await t.ws(protobuf=True)
    await c.send({"id": 1, "connect": {"token": token()}})
    await c.recv(1)
    await c.send({"id": 2, "subscribe": {"channel": "nope:x"}})
    await c.recv(1)


@sc("protobuf/format-query-param")
async def _pb_query(t: Target) -> None:
    c = await t.ws(query="?format=protobuf")
    await c.send_raw(b"")
    await c.wait_close(1.0)


# ---- HTTP API -------------------------------------------------------------------------


@sc("api/publish")
async def _api_pub(t: Target) -> None:
    await t.api("publish", {"channel": "hist:api-pub", "data": {"x": 1}})
    await t.api("publish", {"channel": "chat:api-pub2", "data": {"x": 1}, "tags": {"t": "v"}})


@sc("api/publish-to-subscriber")
async def _api_pub_sub(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "subscribe", {"channel": "chat:api-ps"})
    await t.api(
        "publish",
        {"channel": "chat:api-ps", "data": {"x": 1}, "tags": {"k": "v"}, "idempotency_key": "ik"},
    )
    await c.recv(1)
    await t.api("publish", {"channel": "chat:api-ps", "data": {"x": 1}, "idempotency_key": "ik"})
    await c.drain()


@sc("api/publish-skip-history")
async def _api_pub_skip(t: Target) -> None:
    await t.api("publish", {"channel": "hist:api-skip", "data": 1, "skip_history": True})
    await t.api("history", {"channel": "hist:api-skip", "limit": -1})


@sc("api/publish-b64data")
async def _api_pub_b64(t: Target) -> None:
    c = await t.client()
    await c.cmd(2, "subscribe", {"channel": "chat:api-b64"})
    await t.api(
        "publish", {"channel": "chat:api-b64", "b64data": base64.b64encode(b'"x"').decode()}
    )
    await c.drain()


@sc("api/publish-errors")
async def _api_pub_err(t: Target) -> None:
    await t.api("publish", {"channel": "nope:x", "data": {}})
    await t.api("publish", {"channel": "", "data": {}})
    await t.api("publish", {"channel": "chat:x"})
    await t.api("publish", {"data": {}})
    await t.api("publish", {"channel": "chat:" + "y" * 300, "data": {}})


@sc("api/broadcast")
async def _api_broadcast(t: Target) -> None:
    await t.api("broadcast", {"channels": ["hist:b1", "chat:b2"], "data": {"x": 1}})


@sc("api/broadcast-errors")
async def _api_broadcast_err(t: Target) -> None:
    await t.api("broadcast", {"channels": ["hist:b3", "nope:b4"], "data": {"x": 1}})
    await t.api("broadcast", {"channels": [], "data": {"x": 1}})
    await t.api("broadcast", {"channels": ["hist:b5"]})
    await t.api("broadcast", {"channels": ["hist:b6", ""], "data": 1})


@sc("api/subscribe-unsubscribe-user")
async def _api_sub(t: Target) -> None:
    c = await t.client()
    await t.api("subscribe", {"user": "42", "channel": "chat:api-sub"})
    await c.recv(1)
    await c.drain()
    await t.api("unsubscribe", {"user": "42", "channel": "chat:api-sub"})
    await c.recv(1)
    await t.api("subscribe", {"user": "nobody", "channel": "chat:api-sub"})
    await t.api("subscribe", {"user": "42", "channel": "nope:x"})
    await t.api("subscribe", {"channel": "chat:x"})
    await c.drain()


@sc("api/disconnect-user")
async def _api_disc(t: Target) -> None:
    c = await t.client()
    await t.api("disconnect", {"user": "42"})
    await c.wait_close(1.0)
    await t.api("disconnect", {"user": "nobody"})
    await t.api("disconnect", {})


@sc("api/disconnect-custom")
async def _api_disc_custom(t: Target) -> None:
    c = await t.client()
    await t.api("disconnect", {"user": "42", "disconnect": {"code": 4500, "reason": "bye"}})
    await c.wait_close(1.0)


@sc("api/refresh-user")
async def _api_refresh(t: Target) -> None:
    c = await t.client(tok=token(exp=now() + 60))
    await t.api("refresh", {"user": "42", "expire_at": now() + 3600})
    await c.drain()
    await t.api("refresh", {"user": "42", "expired": True})
    await c.wait_close(1.0)
    await t.api("refresh", {})


@sc("api/presence")
async def _api_presence(t: Target) -> None:
    c = await t.client(tok=token("5", info={"k": "v"}))
    await c.cmd(2, "subscribe", {"channel": "chat:api-pres"})
    await t.api("presence", {"channel": "chat:api-pres"})
    await t.api("presence_stats", {"channel": "chat:api-pres"})
    await t.api("presence", {"channel": "hist:nopres"})
    await t.api("presence_stats", {"channel": "hist:nopres"})
    await t.api("presence", {"channel": "chat:api-pres-empty"})


@sc("api/history")
async def _api_history(t: Target) -> None:
    epoch = await _seed(t, "hist:api-h", 3)
    await t.api("history", {"channel": "hist:api-h"})
    await t.api("history", {"channel": "hist:api-h", "limit": -1})
    await t.api("history", {"channel": "hist:api-h", "limit": 1, "reverse": True})
    await t.api(
        "history", {"channel": "hist:api-h", "limit": -1, "since": {"offset": 1, "epoch": epoch}}
    )
    await t.api(
        "history", {"channel": "hist:api-h", "limit": -1, "since": {"offset": 1, "epoch": "112"}}
    )
    await t.api("history", {"channel": "plain-api-nohist", "limit": -1})
    await t.api("history", {"channel": "nope:x"})


@sc("api/history_remove")
async def _api_hrm(t: Target) -> None:
    await _seed(t, "hist:api-hrm", 2)
    await t.api("history_remove", {"channel": "hist:api-hrm"})
    await t.api("history", {"channel": "hist:api-hrm", "limit": -1})
    await t.api("history_remove", {"channel": "plain-api-hrm"})


@sc("api/channels")
async def _api_channels(t: Target) -> None:
    a = await t.client("A", tok=token("1"))
    await a.cmd(2, "subscribe", {"channel": "chat:api-chan-1"})
    b = await t.client("B", tok=token("2"))
    await b.cmd(2, "subscribe", {"channel": "chat:api-chan-1"})
    await b.cmd(3, "subscribe", {"channel": "chat:api-chan-2"})
    await a.drain()
    await t.api("channels", {"pattern": "chat:api-chan-*"})
    await t.api("channels", {"pattern": "nomatch*"})


@sc("api/info")
async def _api_info(t: Target) -> None:
    await t.api("info", {})


@sc("api/batch")
async def _api_batch(t: Target) -> None:
    await t.api(
        "batch",
        {
            "commands": [
                {"publish": {"channel": "hist:batch", "data": {"x": 1}}},
                {"broadcast": {"channels": ["hist:batch"], "data": 2}},
                {"presence_stats": {"channel": "chat:batch"}},
                {"history": {"channel": "hist:batch", "limit": -1}},
                {"publish": {"channel": "nope:x", "data": 1}},
                {"info": {}},
            ]
        },
    )


@sc("api/batch-null-and-unknown")
async def _api_batch_null(t: Target) -> None:
    await t.api("batch", {"commands": [None, {}, {"bogus": {}}, {"publish": None}]})
    await t.api("batch", {"commands": []})
    await t.api("batch", {})
    await t.api(
        "batch",
        {"parallel": True, "commands": [{"publish": {"channel": "hist:bp", "data": 1}}, {}]},
    )


@sc("api/auth-401")
async def _api_401(t: Target) -> None:
    body = {"channel": "chat:auth"}
    await t.api("presence_stats", body, key=None)
    await t.api("presence_stats", body, key="wrong")
    await t.api("presence_stats", body, key=None, headers={"Authorization": f"apikey {API_KEY}"})
    await t.api("presence_stats", body, key=None, headers={"Authorization": "apikey wrong"})
    await t.api("presence_stats", body, key=None, headers={"Authorization": f"Bearer {API_KEY}"})
    await t.api("presence_stats", body, key=None, headers={"X-API-Key": API_KEY.upper()})
    await t.http_req("POST", f"/api/presence_stats?api_key={API_KEY}", body)


@sc("api/method-405")
async def _api_405(t: Target) -> None:
    hdr = {"X-API-Key": API_KEY}
    await t.http_req("GET", "/api/info", headers=hdr)
    await t.http_req("PUT", "/api/publish", {"channel": "x", "data": 1}, headers=hdr)
    await t.http_req("GET", "/api", headers=hdr)


@sc("api/bad-json-400")
async def _api_400(t: Target) -> None:
    hdr = {"X-API-Key": API_KEY}
    await t.http_req("POST", "/api/publish", raw=b"{not json", headers=hdr)
    await t.http_req("POST", "/api/publish", raw=b"", headers=hdr)
    await t.http_req("POST", "/api/publish", raw=b"[1,2]", headers=hdr)
    await t.http_req("POST", "/api/publish", raw=b'{"channel":1}', headers=hdr)
    await t.http_req("POST", "/api/info", raw=b"", headers=hdr)


@sc("api/unknown-method-404")
async def _api_404(t: Target) -> None:
    hdr = {"X-API-Key": API_KEY}
    await t.http_req("POST", "/api/nope", {}, headers=hdr)
    await t.http_req("POST", "/api/nope", {}, headers={})
    await t.http_req("POST", "/api/", {}, headers=hdr)
    await t.http_req("GET", "/does-not-exist")


@sc("api/transport-error-mode")
async def _api_transport(t: Target) -> None:
    hdr = {"X-Centrifugo-Error-Mode": "transport"}
    await t.api("publish", {"channel": "nope:x", "data": 1}, headers=hdr)
    await t.api("publish", {"channel": "hist:tem", "data": 1}, headers=hdr)
    await t.api("history", {"channel": "plain-tem"}, headers=hdr)
    await t.api("publish", {"channel": "", "data": 1}, headers=hdr)
    await t.api("batch", {"commands": [{"publish": {"channel": "nope:x", "data": 1}}]}, headers=hdr)
    await t.api("broadcast", {"channels": ["nope:x"], "data": 1}, headers=hdr)


@sc("api/legacy-api-stream")
async def _api_legacy(t: Target) -> None:
    hdr = {"X-API-Key": API_KEY}
    body = (
        '{"method":"publish","params":{"channel":"hist:leg","data":1}}\n'
        '{"method":"presence_stats","params":{"channel":"chat:leg"}}\n'
        '{"method":"publish","params":{"channel":"nope:x","data":1}}'
    )
    await t.http_req("POST", "/api", raw=body, headers=hdr)
    await t.http_req("POST", "/api", raw='{"method":"history","params":{}}', headers=hdr)
    await t.http_req("POST", "/api", raw="", headers=hdr)
    await t.http_req("POST", "/api", raw="{}", headers=hdr)


@sc("api/legacy-unknown-method")
async def _api_legacy_unknown(t: Target) -> None:
    hdr = {"X-API-Key": API_KEY}
    body = '{"method":"presence_stats","params":{"channel":"chat:leg2"}}\n{"method":"nope"}'
    await t.http_req("POST", "/api", raw=body, headers=hdr)
    await t.http_req("POST", "/api", raw='{"method":"PUBLISH","params":{}}', headers=hdr)
    await t.http_req("POST", "/api", raw='{"method":3}', headers=hdr)
    await t.http_req("POST", "/api", raw="not json", headers=hdr)
    await t.http_req("POST", "/api", raw='{"method":"info"}', headers={})


@sc("api/content-type-form")
async def _api_ctype(t: Target) -> None:
    hdr = {"X-API-Key": API_KEY, "Content-Type": "application/x-www-form-urlencoded"}
    await t.http_req("POST", "/api/presence_stats", raw=b'{"channel":"chat:ct"}', headers=hdr)


@sc("http/health")
async def _health(t: Target) -> None:
    await t.http_req("GET", "/health")
    await t.http_req("POST", "/health")
    await t.http_req("HEAD", "/health")


@sc("http/websocket-path-plain-get")
async def _ws_plain(t: Target) -> None:
    await t.http_req("GET", "/connection/websocket")
    await t.http_req("POST", "/connection/websocket")
