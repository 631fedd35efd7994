"""The client commands as pure functions: a request, what the session knows, the channel
rules and verified claims in; a plan (or a reply error / disconnect) out.

No I/O here: the async client (``relay/client.py``) verifies tokens through the callables
it passes in, then performs what a plan says (engine calls through the node, writes,
timers). Checks run in Centrifugo's order, so the first failing check decides the code.

Source of behaviour: centrifugal/centrifuge ``client.go`` (connectCmd, subscribeCmd,
publishCmd, presenceCmd, historyCmd, refreshCmd, subRefreshCmd), centrifugo
``internal/client/handler.go``; spec client-protocol.md §7.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, replace
from typing import Any

from relay.config import ChannelConfig, ChannelOptions, ClientConfig
from relay.errors import (
    DISCONNECT_BAD_REQUEST,
    DISCONNECT_CHANNEL_LIMIT,
    DISCONNECT_CONNECTION_LIMIT,
    DISCONNECT_PERMISSION_DENIED,
    ERROR_ALREADY_SUBSCRIBED,
    ERROR_BAD_REQUEST,
    ERROR_EXPIRED,
    ERROR_LIMIT_EXCEEDED,
    ERROR_NOT_AVAILABLE,
    ERROR_PERMISSION_DENIED,
    ERROR_UNKNOWN_CHANNEL,
    ERROR_UNRECOVERABLE_POSITION,
    DisconnectError,
    ReplyError,
)
from relay.protocol import json_codec
from relay.protocol.channels import (
    ChannelRules,
    Override,
    SubscribeFeatures,
    check_data_format,
)
from relay.protocol.claims import ConnectTokenClaims, SubOptions, SubscribeTokenClaims
from relay.protocol.messages import HistoryFilter, StreamPosition
from relay.protocol.tokens import check_subscription_claims

__all__ = [
    "SessionContext",
    "ConnectPlan",
    "SubscribePlan",
    "plan_connect",
    "server_side_channels",
    "plan_subscribe",
    "proxied_subscribe",
    "subscribe_flags",
    "recovery_fields",
    "since_position",
    "plan_publish",
    "checked_channel",
    "presence_channel",
    "plan_history",
    "unsubscribe_channel",
    "subscription_ttl",
]

Request = Mapping[str, Any]
Result = dict[str, Any]
#: A token check: claims, or ``None`` for "expired, accepted without expiry"; it raises
#: the reply error or disconnect of ``protocol/tokens.py`` otherwise.
ConnectVerify = Callable[[str], ConnectTokenClaims]
SubscribeVerify = Callable[[str], SubscribeTokenClaims | None]


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What every command of a connection reads: its config sections and channel rules."""

    client: ClientConfig
    channel: ChannelConfig
    rules: ChannelRules
    version: str


# =========================================================================================
# connect
# =========================================================================================
@dataclass(slots=True)
class ConnectPlan:
    """What a successful connect sets up (the client applies it, then subscribes ``wanted``)."""

    user: str
    conn_info: bytes | None
    exp: float | None
    name: str
    version: str
    #: server-side subscriptions: channel -> the token's options for it (or None)
    wanted: dict[str, SubOptions | None]
    #: the reply's fields except ``subs``
    result: Result
    #: seconds until the expiry check, and until the first ping (None: no timer)
    expire_in: float | None
    ping_in: float | None
    #: the connection's ``meta`` (token or connect proxy), sent to proxies that include it
    meta: bytes | None = None


def plan_connect(
    req: Request,
    ctx: SessionContext,
    *,
    uid: str,
    now: float,
    verify: ConnectVerify,
    connections_of: Callable[[str], int],
    jitter: Callable[[float, float], float],
    proxied: ConnectTokenClaims | None = None,
    data: bytes | None = None,
    server_refresh: bool = False,
) -> ConnectPlan:
    """Authenticate (token, connect proxy or anonymous), check the limits, decide the reply
    and timers.

    ``proxied``: the connect proxy's credentials (a connection without a token); the
    client's ``subs`` are then not granted, only the proxy's channels. ``data`` goes into
    the reply. ``server_refresh`` (a refresh proxy): no ``expires``/``ttl`` in the reply,
    and the expiry timer fires at the expiry itself, to ask the proxy."""
    cfg = ctx.client
    token = req.get("token", "")
    claims: ConnectTokenClaims | None = None
    user, conn_info, exp = "", None, None
    requested = req.get("subs") or {}
    if token:
        claims = verify(token)
        if not claims.user and cfg.disallow_anonymous_connection_tokens:
            raise DisconnectError(DISCONNECT_PERMISSION_DENIED)
        user, conn_info = claims.user, claims.info
        expires = claims.expires_at()
        exp = None if (expires is None or cfg.insecure) else float(expires)
    elif proxied is not None:
        claims = proxied
        user, conn_info = claims.user, claims.info
        expires = claims.expires_at()
        exp = None if expires is None else float(expires)
        requested = {}
    elif not (cfg.allow_anonymous_connect_without_token or cfg.insecure):
        raise DisconnectError(DISCONNECT_BAD_REQUEST)  # credentials not found
    if exp is not None and exp <= now:
        raise ReplyError(ERROR_EXPIRED)
    limit = cfg.user_connection_limit
    if limit and user and connections_of(user) >= limit:
        raise DisconnectError(DISCONNECT_CONNECTION_LIMIT)
    wanted = server_side_channels(ctx, claims, requested, user)
    if len(wanted) > cfg.channel_limit:
        raise DisconnectError(DISCONNECT_CHANNEL_LIMIT)
    result: Result = {"client": uid, "version": ctx.version}
    expire_in = ping_in = None
    if data:
        result["data"] = data
    if exp is not None and server_refresh:
        expire_in = exp - now
    elif exp is not None:
        result["expires"] = True
        result["ttl"] = max(1, int(exp) - int(now))
        expire_in = exp - now + cfg.expired_close_delay
    if cfg.ping_interval > 0:
        result["ping"] = int(cfg.ping_interval)
        if cfg.pong_timeout > 0:
            result["pong"] = True
        ping_in = jitter(cfg.ping_interval / 2, cfg.ping_interval)
    if cfg.connect_include_server_time:
        result["time"] = int(now * 1000)
    return ConnectPlan(
        user=user,
        conn_info=conn_info,
        exp=exp,
        name=req.get("name", ""),
        version=req.get("version", ""),
        wanted=wanted,
        result=result,
        expire_in=expire_in,
        ping_in=ping_in,
        meta=claims.meta if claims is not None else None,
    )


def server_side_channels(
    ctx: SessionContext,
    claims: ConnectTokenClaims | None,
    requested: Mapping[str, Any],
    user: str,
) -> dict[str, SubOptions | None]:
    """channel -> token ``SubOptions`` (or None): token claims, the personal channel, and
    the channels of ``connect.subs`` the user may subscribe to without a token."""
    rules = ctx.rules
    wanted: dict[str, SubOptions | None] = {}
    if claims is not None:
        if claims.subs:
            wanted.update(claims.subs)
        else:
            wanted.update(dict.fromkeys(claims.channels))
    for ch in wanted:
        rules.resolve(ch)  # an unknown namespace in the claims: 102
    personal = ctx.client.subscribe_to_user_personal_channel
    if personal.enabled and user:
        ns = personal.personal_channel_namespace
        prefix = f"{ns}{ctx.channel.namespace_boundary}" if ns else ""
        wanted.setdefault(f"{prefix}{ctx.channel.user_boundary}{user}", None)
    for ch in requested:
        if ch in wanted or rules.is_private(ch):
            continue
        try:
            opts = rules.resolve(ch)
            rules.check_name(ch)
        except ReplyError as exc:
            if exc.error.code == ERROR_UNKNOWN_CHANNEL.code:
                raise DisconnectError(DISCONNECT_BAD_REQUEST) from None
            continue
        if rules.can_subscribe_without_token(ch, opts, user):
            wanted[ch] = None
    return wanted


# =========================================================================================
# subscribe
# =========================================================================================
@dataclass(frozen=True, slots=True)
class SubscribePlan:
    channel: str
    opts: ChannelOptions
    features: SubscribeFeatures
    chan_info: bytes | None = None
    data: bytes | None = None
    expire_at: float | None = None
    #: the subscribe proxy decides (its answer goes through :func:`proxied_subscribe`)
    via_proxy: bool = False
    #: ... and it is the namespace's subscribe_stream proxy (a stream opens)
    via_stream: bool = False


def plan_subscribe(
    req: Request,
    ctx: SessionContext,
    *,
    user: str,
    uid: str,
    subscribed: Container[str],
    num_subs: int,
    verify: SubscribeVerify,
    now: float,
) -> SubscribePlan:
    """A client's ``subscribe``: name, limits, token or permission, features."""
    rules = ctx.rules
    ch = req.get("channel", "")
    if not ch:
        raise DisconnectError(DISCONNECT_BAD_REQUEST)
    delta = req.get("delta", "")
    if delta and delta != "fossil":
        raise DisconnectError(DISCONNECT_BAD_REQUEST)
    if len(ch) > ctx.channel.max_length:
        raise ReplyError(ERROR_BAD_REQUEST)
    if ch in subscribed:
        raise ReplyError(ERROR_ALREADY_SUBSCRIBED)
    if num_subs >= ctx.client.channel_limit:
        raise ReplyError(ERROR_LIMIT_EXCEEDED)
    opts = rules.resolve(ch)
    rules.check_name(ch)
    if req.get("type"):
        raise ReplyError(ERROR_NOT_AVAILABLE)
    if "tf" in req:
        raise ReplyError(ERROR_BAD_REQUEST)
    chan_info = data = None
    override = None
    expire_at: float | None = None
    token = req.get("token", "")
    if token:
        claims = verify(token)
        if claims is None:  # never for subscribe; the table says so for sub_refresh only
            raise ReplyError(ERROR_PERMISSION_DENIED)
        check_subscription_claims(claims, ch, user, uid)
        chan_info, data, override = claims.info, claims.data, claims.override
        exp = claims.expires_at()
        if exp is not None and not ctx.client.insecure:
            if exp <= now:
                raise ReplyError(ERROR_EXPIRED)
            expire_at = float(exp)
    elif (
        (opts.subscribe_proxy_enabled or opts.subscribe_stream_proxy_enabled)
        and not rules.is_private(ch)
        and rules.user_limited_users(ch, opts) is None
    ):
        stream = not opts.subscribe_proxy_enabled
        features = rules.features(opts, user)
        return SubscribePlan(ch, opts, features, via_proxy=True, via_stream=stream)
    elif rules.is_private(ch) or not rules.can_subscribe_without_token(ch, opts, user):
        raise ReplyError(ERROR_PERMISSION_DENIED)
    features = rules.features(
        opts,
        user,
        want_positioned=bool(req.get("positioned")),
        want_recoverable=bool(req.get("recoverable")),
        want_join_leave=bool(req.get("join_leave")),
        override=override,
    )
    if delta and delta in opts.allowed_delta_types:
        # centrifuge client.go: an allowed type sets ``delta`` in the reply; any other
        # known type is ignored (the subscription gets full publications)
        features = replace(features, delta=True)
    return SubscribePlan(ch, opts, features, chan_info, data, expire_at)


def proxied_subscribe(
    plan: SubscribePlan,
    ctx: SessionContext,
    *,
    user: str,
    info: bytes | None,
    data: bytes | None,
    override: Override | None,
    expire_at: int,
    now: float,
) -> SubscribePlan:
    """The subscribe proxy allowed ``plan``: its info, data, overrides and expiry. The
    client's positioned/recoverable/join_leave wishes are not honoured on this path (as
    Centrifugo): the namespace's force options and the overrides decide. A stream
    subscription is never positioned nor recoverable, and gets no deltas (its
    publications come from the backend, outside the channel's history)."""
    exp: float | None = None
    if expire_at > 0:
        if expire_at <= now:
            raise ReplyError(ERROR_EXPIRED)
        exp = float(expire_at)
    features = ctx.rules.features(plan.opts, user, override=override)
    if plan.via_stream:
        features = replace(features, positioned=False, recoverable=False)
    elif plan.features.delta:  # the delta type is checked on every path (client.go)
        features = replace(features, delta=True)
    return SubscribePlan(
        plan.channel, plan.opts, features, info, data, exp, via_stream=plan.via_stream
    )


def subscribe_flags(features: SubscribeFeatures, recover: bool) -> Result:
    """The subscribe reply's flags, before the stream position is known."""
    result: Result = {}
    if features.recoverable:
        result["recoverable"] = True
    if features.positioned:
        result["positioned"] = True
    if recover:
        result["was_recovering"] = True
    if features.delta:
        result["delta"] = True
    return result


def since_position(req: Request) -> StreamPosition:
    """Where a recovering subscription left off."""
    return StreamPosition(int(req.get("offset", 0)), req.get("epoch", ""))


def recovery_fields(
    result: Result,
    req: Request,
    top: StreamPosition,
    recovered: bool,
    publications: list[Result],
) -> None:
    """Add the outcome of a recovery to the subscribe reply (112 if the client insists)."""
    if not recovered and int(req.get("flag", 0)) & 2:
        raise ReplyError(ERROR_UNRECOVERABLE_POSITION)
    result["epoch"] = top.epoch
    if recovered:
        result["recovered"] = True
        result["offset"] = int(req.get("offset", 0))
        if publications:
            result["publications"] = publications
    else:
        result["offset"] = top.offset


def subscription_ttl(expire_at: float, now: float) -> int:
    return max(1, int(expire_at) - int(now))


# =========================================================================================
# publish, presence, history, unsubscribe
# =========================================================================================
def checked_channel(req: Request, rules: ChannelRules) -> tuple[str, ChannelOptions]:
    """The command's channel (3501 if empty), its options (102) and a valid name (107)."""
    ch = req.get("channel", "")
    if not ch:
        raise DisconnectError(DISCONNECT_BAD_REQUEST)
    opts = rules.resolve(ch)
    rules.check_name(ch)
    return ch, opts


def plan_publish(
    req: Request,
    ctx: SessionContext,
    *,
    user: str,
    subscribed: Container[str],
    json_client: bool,
) -> tuple[str, ChannelOptions, bytes, bool]:
    """A client's publish: channel, options, data and whether the data is JSON."""
    ch, opts = checked_channel(req, ctx.rules)
    if req.get("type"):
        raise ReplyError(ERROR_NOT_AVAILABLE)
    data: bytes = req.get("data", b"")
    data_json = json_client or json_codec.is_json(data)
    check_data_format(opts, ctx.channel.publication_data_format, data, data_json)
    # else the publish proxy decides, or the publication goes into the subscriber's stream
    if not (opts.publish_proxy_enabled or opts.subscribe_stream_proxy_enabled):
        ctx.rules.check_publish(opts, user, ch in subscribed)
    return ch, opts, data, data_json


def presence_channel(
    req: Request, ctx: SessionContext, user: str, subscribed: Container[str]
) -> str:
    """The channel of ``presence`` / ``presence_stats`` once access is allowed."""
    ch, opts = checked_channel(req, ctx.rules)
    ctx.rules.check_presence(opts, user, ch in subscribed)
    return ch


def plan_history(
    req: Request, ctx: SessionContext, user: str, subscribed: Container[str]
) -> tuple[str, HistoryFilter, float]:
    """Channel, filter (limit capped by ``history_max_publication_limit``) and meta TTL."""
    ch, opts = checked_channel(req, ctx.rules)
    ctx.rules.check_history(opts, user, ch in subscribed)
    limit = int(req.get("limit", 0))
    cap = ctx.client.history_max_publication_limit
    if cap > 0 and (limit < 0 or limit > cap):
        limit = cap
    since = req.get("since")
    flt = HistoryFilter(
        since=StreamPosition(int(since.get("offset", 0)), since.get("epoch", ""))
        if since is not None
        else None,
        limit=limit,
        reverse=bool(req.get("reverse")),
    )
    return ch, flt, opts.history_meta_ttl


def unsubscribe_channel(req: Request) -> str:
    ch: str = req.get("channel", "")
    if not ch:
        raise DisconnectError(DISCONNECT_BAD_REQUEST)
    return ch
