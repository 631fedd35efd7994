"""The client commands without sockets: ``protocol/commands.py`` and ``protocol/tokens.py``.

In the style of websockets' ``tests/test_protocol.py``: each test builds the session's
facts, feeds one request to a planner and checks the plan or the exact Centrifugo
error / disconnect. Token checks are plain callables, so every token outcome (claims,
expired, invalid) is driven directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from relay.config import ChannelConfig, ChannelOptions, ClientConfig, Namespace
from relay.config.tree import PersonalChannelConfig
from relay.errors import (
    DISCONNECT_BAD_REQUEST,
    DISCONNECT_CHANNEL_LIMIT,
    DISCONNECT_CONNECTION_LIMIT,
    DISCONNECT_EXPIRED,
    DISCONNECT_INVALID_TOKEN,
    DISCONNECT_PERMISSION_DENIED,
    ERROR_ALREADY_SUBSCRIBED,
    ERROR_BAD_REQUEST,
    ERROR_EXPIRED,
    ERROR_LIMIT_EXCEEDED,
    ERROR_NOT_AVAILABLE,
    ERROR_PERMISSION_DENIED,
    ERROR_TOKEN_EXPIRED,
    ERROR_UNKNOWN_CHANNEL,
    ERROR_UNRECOVERABLE_POSITION,
    Disconnect,
    DisconnectError,
    Error,
    ReplyError,
)
from relay.protocol import commands as cmd
from relay.protocol import refresh as refresh_plans
from relay.protocol import tokens
from relay.protocol.channels import ChannelRules, Override
from relay.protocol.claims import ConnectTokenClaims, SubOptions, SubscribeTokenClaims
from relay.protocol.messages import StreamPosition

NOW = 1_700_000_000.0
OPEN = {
    "allow_subscribe_for_client": True,
    "allow_publish_for_client": True,
    "allow_presence_for_client": True,
    "allow_history_for_client": True,
}
CHANNELS = ChannelConfig(
    without_namespace=ChannelOptions(**OPEN),
    namespaces=(
        Namespace(
            name="chat", presence=True, join_leave=True, history_size=10, history_ttl=60.0, **OPEN
        ),
        Namespace(name="closed"),
        Namespace(name="re", channel_regex="^[a-z]+$", **OPEN),
        Namespace(name="obj", publication_data_format="json_object", **OPEN),
        Namespace(name="lim", allow_user_limited_channels=True),
    ),
)


def context(
    client: ClientConfig | None = None, channel: ChannelConfig = CHANNELS
) -> cmd.SessionContext:
    cfg = client or ClientConfig()
    return cmd.SessionContext(
        cfg, channel, ChannelRules(channel, insecure=cfg.insecure), "6.6.2 OSS"
    )


CTX = context()


def raises(expected: Error | Disconnect, call: Callable[[], Any]) -> None:
    """``call`` fails with exactly this reply error or disconnect."""
    if isinstance(expected, Error):
        with pytest.raises(ReplyError) as reply:
            call()
        assert reply.value.error == expected
    else:
        with pytest.raises(DisconnectError) as disconnect:
            call()
        assert disconnect.value.disconnect == expected


def connect_claims(**kw: Any) -> Callable[[str], ConnectTokenClaims]:
    return lambda token: ConnectTokenClaims(**{"user": "42", **kw})


def sub_claims(**kw: Any) -> Callable[[str], SubscribeTokenClaims | None]:
    return lambda token: SubscribeTokenClaims(**{"user": "42", "channel": "chat:1", **kw})


def failing(use: tokens.TokenUse, kind: str) -> Callable[[str], Any]:
    def verify(token: str) -> Any:
        outcome = tokens.failure(use, kind)
        if outcome is None:
            return None
        raise outcome

    return verify


def connect(req: dict[str, Any], ctx: cmd.SessionContext = CTX, **kw: Any) -> cmd.ConnectPlan:
    args: dict[str, Any] = {
        "uid": "c1",
        "now": NOW,
        "verify": connect_claims(),
        "connections_of": lambda user: 0,
        "jitter": lambda a, b: b,
    }
    return cmd.plan_connect(req, ctx, **{**args, **kw})


def subscribe(req: dict[str, Any], ctx: cmd.SessionContext = CTX, **kw: Any) -> cmd.SubscribePlan:
    args: dict[str, Any] = {
        "user": "42",
        "uid": "c1",
        "subscribed": set(),
        "num_subs": 0,
        "verify": sub_claims(),
        "now": NOW,
    }
    return cmd.plan_subscribe(req, ctx, **{**args, **kw})


# ---- the token table ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("use", "kind", "expected"),
    [
        (tokens.CONNECT, tokens.EXPIRED, ReplyError),
        (tokens.CONNECT, tokens.INVALID, DisconnectError),
        (tokens.SUBSCRIBE, tokens.EXPIRED, ReplyError),
        (tokens.SUBSCRIBE, tokens.INVALID, ReplyError),
        (tokens.REFRESH, tokens.EXPIRED, DisconnectError),
        (tokens.REFRESH, tokens.INVALID, DisconnectError),
        (tokens.SUB_REFRESH, tokens.EXPIRED, type(None)),
        (tokens.SUB_REFRESH, tokens.INVALID, DisconnectError),
    ],
)
def test_token_failure_table(use: tokens.TokenUse, kind: str, expected: type) -> None:
    outcome = tokens.failure(use, kind)
    assert isinstance(outcome, expected)
    codes = {
        (tokens.CONNECT, tokens.EXPIRED): 109,
        (tokens.CONNECT, tokens.INVALID): 3500,
        (tokens.SUBSCRIBE, tokens.EXPIRED): 109,
        (tokens.SUBSCRIBE, tokens.INVALID): 103,
        (tokens.REFRESH, tokens.EXPIRED): 3005,
        (tokens.REFRESH, tokens.INVALID): 3500,
        (tokens.SUB_REFRESH, tokens.INVALID): 3500,
    }
    if isinstance(outcome, ReplyError):
        assert outcome.error.code == codes[(use, kind)]
    elif isinstance(outcome, DisconnectError):
        assert outcome.disconnect.code == codes[(use, kind)]


def test_each_failure_is_a_new_exception() -> None:
    assert tokens.failure(tokens.CONNECT, tokens.INVALID) is not tokens.failure(
        tokens.CONNECT, tokens.INVALID
    )


@pytest.mark.parametrize(
    ("claims", "ok"),
    [
        (SubscribeTokenClaims(user="42", channel="chat:1"), True),
        (SubscribeTokenClaims(user="42", channel="chat:1", client="c1"), True),
        (SubscribeTokenClaims(user="42", channel="chat:2"), False),
        (SubscribeTokenClaims(user="43", channel="chat:1"), False),
        (SubscribeTokenClaims(user="42", channel="chat:1", client="c2"), False),
    ],
)
def test_subscription_claims_must_match(claims: SubscribeTokenClaims, ok: bool) -> None:
    if ok:
        tokens.check_subscription_claims(claims, "chat:1", "42", "c1")
    else:
        raises(
            DISCONNECT_INVALID_TOKEN,
            lambda: tokens.check_subscription_claims(claims, "chat:1", "42", "c1"),
        )


# ---- connect --------------------------------------------------------------------------------
def test_connect_with_token() -> None:
    plan = connect(
        {"token": "t", "name": "js", "version": "5"}, verify=connect_claims(info=b'{"a":1}')
    )
    assert (plan.user, plan.conn_info, plan.exp, plan.name, plan.version) == (
        "42",
        b'{"a":1}',
        None,
        "js",
        "5",
    )
    assert plan.result == {"client": "c1", "version": "6.6.2 OSS", "ping": 25, "pong": True}
    assert plan.expire_in is None and plan.ping_in == 25.0


def test_connect_expiry_ttl_and_timer() -> None:
    plan = connect({"token": "t"}, verify=connect_claims(exp=int(NOW) + 100))
    assert plan.exp == NOW + 100
    assert plan.result["expires"] is True and plan.result["ttl"] == 100
    assert plan.expire_in == pytest.approx(100 + 25.0)


def test_connect_expired_token_claims_is_110() -> None:
    raises(ERROR_EXPIRED, lambda: connect({"token": "t"}, verify=connect_claims(exp=int(NOW) - 1)))


def test_connect_insecure_ignores_expiry() -> None:
    plan = connect(
        {"token": "t"}, context(ClientConfig(insecure=True)), verify=connect_claims(exp=1)
    )
    assert plan.exp is None and "expires" not in plan.result


def test_connect_token_failures_follow_the_table() -> None:
    raises(
        ERROR_TOKEN_EXPIRED,
        lambda: connect({"token": "t"}, verify=failing(tokens.CONNECT, tokens.EXPIRED)),
    )
    raises(
        DISCONNECT_INVALID_TOKEN,
        lambda: connect({"token": "t"}, verify=failing(tokens.CONNECT, tokens.INVALID)),
    )


def test_connect_without_credentials() -> None:
    raises(DISCONNECT_BAD_REQUEST, lambda: connect({}))
    assert connect({}, context(ClientConfig(allow_anonymous_connect_without_token=True))).user == ""
    assert connect({}, context(ClientConfig(insecure=True))).user == ""


def test_connect_disallowed_anonymous_token() -> None:
    ctx = context(ClientConfig(disallow_anonymous_connection_tokens=True))
    raises(
        DISCONNECT_PERMISSION_DENIED,
        lambda: connect({"token": "t"}, ctx, verify=connect_claims(user="")),
    )


def test_connect_user_connection_limit() -> None:
    ctx = context(ClientConfig(user_connection_limit=2))
    assert connect({"token": "t"}, ctx, connections_of=lambda user: 1).user == "42"
    raises(
        DISCONNECT_CONNECTION_LIMIT,
        lambda: connect({"token": "t"}, ctx, connections_of=lambda user: 2),
    )


def test_connect_server_time_and_no_ping() -> None:
    ctx = context(ClientConfig(connect_include_server_time=True, ping_interval=0))
    plan = connect({"token": "t"}, ctx)
    assert plan.result["time"] == int(NOW * 1000)
    assert "ping" not in plan.result and plan.ping_in is None
    plan = connect({"token": "t"}, context(ClientConfig(pong_timeout=0)), jitter=lambda a, b: a)
    assert plan.result["ping"] == 25 and "pong" not in plan.result and plan.ping_in == 12.5


def test_connect_server_side_channels() -> None:
    opts = SubOptions(info=b"1", override=Override(presence=False))
    plan = connect({"token": "t"}, verify=connect_claims(subs={"chat:a": opts}, channels=("x",)))
    assert plan.wanted == {"chat:a": opts}  # subs win over channels
    plan = connect({"token": "t"}, verify=connect_claims(channels=("x", "chat:b")))
    assert plan.wanted == {"x": None, "chat:b": None}
    raises(
        ERROR_UNKNOWN_CHANNEL,
        lambda: connect({"token": "t"}, verify=connect_claims(channels=("nope:x",))),
    )


def test_connect_personal_channel_and_requested_subs() -> None:
    personal = PersonalChannelConfig(enabled=True, personal_channel_namespace="chat")
    ctx = context(ClientConfig(subscribe_to_user_personal_channel=personal))
    requested = {"news": {}, "$private": {}, "closed:x": {}, "re:ABC": {}}
    plan = connect({"token": "t", "subs": requested}, ctx)
    # the personal channel; "news" (open); not the private, closed or badly named ones
    assert list(plan.wanted) == ["chat:#42", "news"]
    raises(DISCONNECT_BAD_REQUEST, lambda: connect({"token": "t", "subs": {"nope:x": {}}}, ctx))


def test_connect_channel_limit() -> None:
    ctx = context(ClientConfig(channel_limit=1))
    raises(
        DISCONNECT_CHANNEL_LIMIT,
        lambda: connect({"token": "t"}, ctx, verify=connect_claims(channels=("a", "b"))),
    )


# ---- subscribe ------------------------------------------------------------------------------
def test_subscribe_open_channel() -> None:
    plan = subscribe({"channel": "chat:1", "join_leave": True, "recoverable": True})
    assert plan.channel == "chat:1" and plan.expire_at is None
    f = plan.features
    assert (f.presence, f.join_leave, f.push_join_leave, f.recoverable, f.positioned) == (
        True,
        True,
        True,
        True,
        True,
    )


@pytest.mark.parametrize(
    ("req", "kw", "expected"),
    [
        ({"channel": ""}, {}, DISCONNECT_BAD_REQUEST),
        ({"channel": "a", "delta": "json"}, {}, DISCONNECT_BAD_REQUEST),
        ({"channel": "a" * 256}, {}, ERROR_BAD_REQUEST),
        ({"channel": "a"}, {"subscribed": {"a"}}, ERROR_ALREADY_SUBSCRIBED),
        ({"channel": "a"}, {"num_subs": 128}, ERROR_LIMIT_EXCEEDED),
        ({"channel": "nope:a"}, {}, ERROR_UNKNOWN_CHANNEL),
        ({"channel": "re:ABC"}, {}, ERROR_BAD_REQUEST),
        ({"channel": "a", "type": 1}, {}, ERROR_NOT_AVAILABLE),
        ({"channel": "a", "tf": {}}, {}, ERROR_BAD_REQUEST),
        ({"channel": "closed:a"}, {}, ERROR_PERMISSION_DENIED),
        ({"channel": "$a"}, {}, ERROR_PERMISSION_DENIED),
        ({"channel": "lim:#43"}, {}, ERROR_PERMISSION_DENIED),
    ],
)
def test_subscribe_refused(
    req: dict[str, Any], kw: dict[str, Any], expected: Error | Disconnect
) -> None:
    raises(expected, lambda: subscribe(req, **kw))


def test_subscribe_user_limited_channel() -> None:
    assert subscribe({"channel": "lim:#41,42"}).channel == "lim:#41,42"


def test_subscribe_with_token() -> None:
    verify = sub_claims(
        channel="$p", info=b"i", data=b"d", exp=int(NOW) + 60, override=Override(presence=True)
    )
    plan = subscribe({"channel": "$p", "token": "t"}, verify=verify)
    assert (plan.chan_info, plan.data, plan.expire_at, plan.features.presence) == (
        b"i",
        b"d",
        NOW + 60,
        True,
    )


def test_subscribe_token_failures() -> None:
    req = {"channel": "chat:1", "token": "t"}
    raises(ERROR_EXPIRED, lambda: subscribe(req, verify=sub_claims(exp=int(NOW))))
    raises(DISCONNECT_INVALID_TOKEN, lambda: subscribe(req, verify=sub_claims(channel="chat:2")))
    raises(
        ERROR_TOKEN_EXPIRED,
        lambda: subscribe(req, verify=failing(tokens.SUBSCRIBE, tokens.EXPIRED)),
    )
    raises(
        ERROR_PERMISSION_DENIED,
        lambda: subscribe(req, verify=failing(tokens.SUBSCRIBE, tokens.INVALID)),
    )


def test_subscribe_flags_and_recovery_fields() -> None:
    features = subscribe({"channel": "chat:1", "recoverable": True}).features
    result = cmd.subscribe_flags(features, recover=True)
    assert result == {"recoverable": True, "positioned": True, "was_recovering": True}
    top = StreamPosition(7, "ep")
    cmd.recovery_fields(
        result, {"offset": 5, "epoch": "ep"}, top, True, [{"offset": 6}, {"offset": 7}]
    )
    assert (
        result["recovered"] is True and result["offset"] == 5 and len(result["publications"]) == 2
    )
    missed: dict[str, Any] = {}
    cmd.recovery_fields(missed, {"offset": 1}, top, False, [])
    assert missed == {"epoch": "ep", "offset": 7}
    raises(
        ERROR_UNRECOVERABLE_POSITION, lambda: cmd.recovery_fields({}, {"flag": 2}, top, False, [])
    )
    assert cmd.since_position({"offset": 3, "epoch": "x"}) == StreamPosition(3, "x")


# ---- publish, presence, history, unsubscribe ------------------------------------------------
def test_publish() -> None:
    ch, _, data, data_json = cmd.plan_publish(
        {"channel": "chat:1", "data": b'{"a":1}'},
        CTX,
        user="42",
        subscribed=set(),
        json_client=False,
    )
    assert (ch, data, data_json) == ("chat:1", b'{"a":1}', True)
    _, _, _, data_json = cmd.plan_publish(
        {"channel": "chat:1", "data": b"\x00"}, CTX, user="42", subscribed=set(), json_client=False
    )
    assert data_json is False


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        ({"channel": ""}, DISCONNECT_BAD_REQUEST),
        ({"channel": "nope:x", "data": b"1"}, ERROR_UNKNOWN_CHANNEL),
        ({"channel": "a", "type": 1, "data": b"1"}, ERROR_NOT_AVAILABLE),
        ({"channel": "a"}, ERROR_BAD_REQUEST),  # empty data
        ({"channel": "obj:a", "data": b"[1]"}, ERROR_BAD_REQUEST),
        ({"channel": "closed:a", "data": b"1"}, ERROR_PERMISSION_DENIED),
    ],
)
def test_publish_refused(req: dict[str, Any], expected: Error | Disconnect) -> None:
    raises(
        expected, lambda: cmd.plan_publish(req, CTX, user="42", subscribed=set(), json_client=True)
    )


def test_presence_and_history() -> None:
    assert cmd.presence_channel({"channel": "chat:1"}, CTX, "42", set()) == "chat:1"
    raises(ERROR_NOT_AVAILABLE, lambda: cmd.presence_channel({"channel": "a"}, CTX, "42", set()))
    ch, flt, meta_ttl = cmd.plan_history(
        {"channel": "chat:1", "limit": 1000, "since": {"offset": 2, "epoch": "e"}, "reverse": True},
        CTX,
        "42",
        set(),
    )
    assert (ch, flt.limit, flt.since, flt.reverse, meta_ttl) == (
        "chat:1",
        300,
        StreamPosition(2, "e"),
        True,
        0.0,
    )
    assert cmd.plan_history({"channel": "chat:1", "limit": -1}, CTX, "42", set())[1].limit == 300
    assert cmd.plan_history({"channel": "chat:1"}, CTX, "42", set())[1].limit == 0
    raises(ERROR_NOT_AVAILABLE, lambda: cmd.plan_history({"channel": "a"}, CTX, "42", set()))


def test_unsubscribe_needs_a_channel() -> None:
    assert cmd.unsubscribe_channel({"channel": "a"}) == "a"
    raises(DISCONNECT_BAD_REQUEST, lambda: cmd.unsubscribe_channel({}))


# ---- refresh, sub_refresh -------------------------------------------------------------------
def refresh(
    req: dict[str, Any], ctx: cmd.SessionContext = CTX, **kw: Any
) -> refresh_plans.RefreshPlan:
    return refresh_plans.plan_refresh(
        req, ctx, **{"user": "42", "verify": connect_claims(), "now": NOW, **kw}
    )


def test_refresh() -> None:
    plan = refresh({"token": "t"}, verify=connect_claims(exp=int(NOW) + 50, info=b"i"))
    assert plan == refresh_plans.RefreshPlan(
        b"i", NOW + 50, {"expires": True, "ttl": 50}, 50 + 25.0
    )
    assert refresh({"token": "t"}) == refresh_plans.RefreshPlan(
        None, None, {}, None
    )  # no exp: no expiry
    expired = refresh({"token": "t"}, verify=connect_claims(exp=int(NOW), info=b"i"))
    assert expired.expired and expired.info == b"i"
    insecure = context(ClientConfig(insecure=True))
    assert refresh({"token": "t"}, insecure, verify=connect_claims(exp=int(NOW) + 50)).exp is None


def test_refresh_refused() -> None:
    raises(DISCONNECT_BAD_REQUEST, lambda: refresh({}))
    raises(
        DISCONNECT_INVALID_TOKEN, lambda: refresh({"token": "t"}, verify=connect_claims(user="43"))
    )
    raises(
        DISCONNECT_EXPIRED,
        lambda: refresh({"token": "t"}, verify=failing(tokens.REFRESH, tokens.EXPIRED)),
    )


def sub_refresh(req: dict[str, Any], **kw: Any) -> tuple[str, refresh_plans.RefreshPlan]:
    args: dict[str, Any] = {
        "user": "42",
        "uid": "c1",
        "subscribed": {"chat:1"},
        "verify": sub_claims(),
        "now": NOW,
    }
    return refresh_plans.plan_sub_refresh(req, CTX, **{**args, **kw})


def test_sub_refresh() -> None:
    ch, plan = sub_refresh(
        {"channel": "chat:1", "token": "t"}, verify=sub_claims(exp=int(NOW) + 10)
    )
    assert ch == "chat:1" and plan == refresh_plans.RefreshPlan(
        None, NOW + 10, {"expires": True, "ttl": 10}, 10 + 25.0
    )
    # an expired token is accepted: the subscription no longer expires
    _, plan = sub_refresh(
        {"channel": "chat:1", "token": "t"}, verify=failing(tokens.SUB_REFRESH, tokens.EXPIRED)
    )
    assert plan == refresh_plans.RefreshPlan(None, None, {}, None)


@pytest.mark.parametrize(
    ("req", "kw", "expected"),
    [
        ({}, {}, DISCONNECT_BAD_REQUEST),
        ({"channel": "chat:2", "token": "t"}, {}, ERROR_PERMISSION_DENIED),
        ({"channel": "chat:1"}, {}, ERROR_BAD_REQUEST),
        (
            {"channel": "chat:1", "token": "t"},
            {"verify": sub_claims(user="43")},
            DISCONNECT_INVALID_TOKEN,
        ),
        (
            {"channel": "chat:1", "token": "t"},
            {"verify": failing(tokens.SUB_REFRESH, tokens.INVALID)},
            DISCONNECT_INVALID_TOKEN,
        ),
    ],
)
def test_sub_refresh_refused(
    req: dict[str, Any], kw: dict[str, Any], expected: Error | Disconnect
) -> None:
    raises(expected, lambda: sub_refresh(req, **kw))


def test_context_is_frozen() -> None:
    with pytest.raises(AttributeError):
        CTX.version = "x"  # type: ignore[misc]
    assert replace(CTX, version="x").version == "x"
