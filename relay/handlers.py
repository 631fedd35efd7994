"""What each client command does once its plan is made: the I/O of ``protocol/commands.py``.

One function per command method, all in the table ``HANDLERS`` that ``Client`` dispatches
through. A handler asks the pure planner what to do, performs it (engine work through
the node, timers, subscriptions) and returns the reply's result, or raises the reply
error / disconnect the planner chose.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from relay import proxied, subscriptions
from relay.errors import (
    DISCONNECT_BAD_REQUEST,
    DISCONNECT_CONNECTION_CLOSED,
    DISCONNECT_NOT_AVAILABLE,
    ERROR_EXPIRED,
    ERROR_METHOD_NOT_FOUND,
    ERROR_NOT_AVAILABLE,
    DisconnectError,
    ReplyError,
)
from relay.protocol import commands as cmd
from relay.protocol import json_codec
from relay.protocol import refresh as refresh_plans
from relay.protocol.codecs import Codec
from relay.protocol.messages import Publication
from relay.protocol.session import Session
from relay.protocol.tokens import REFRESH, SUB_REFRESH
from relay.proxy.outcomes import ProxiedSubscribe
from relay.subscriptions import SubscriptionOwner

__all__ = ["CommandClient", "HANDLERS"]

Request = dict[str, Any]
Result = dict[str, Any]


class CommandClient(SubscriptionOwner, Protocol):
    """What the handlers need of a connection (``relay.client.Client``)."""

    session: Session
    codec: Codec
    conn_info: bytes | None
    exp: float | None
    name: str
    version: str
    after_reply: list[Callable[[], Any]]
    connect_extra: Result | None
    meta: bytes | None
    headers: dict[str, str]

    @property
    def transport_name(self) -> str: ...

    def on_expire(self) -> None: ...

    def on_ping(self) -> None: ...

    def set_expiry(self, exp: float | None, expire_in: float | None) -> None: ...

    def disconnect(self, disconnect: Any) -> None: ...

    def unsubscribe_server(self, ch: str, unsub: Any = ...) -> None: ...


async def _fetched(client: CommandClient, key: Awaitable[None]) -> None:
    """Await the fetch of a token's JWKS key (``relay/context.py``) before its planner
    verifies the token synchronously; a connection closed meanwhile ends the command."""
    await key
    if client.closed:
        raise DisconnectError(DISCONNECT_CONNECTION_CLOSED)


async def connect(client: CommandClient, req: Request) -> Result:
    if (key := client.ctx.connect_key(req.get("token"))) is not None:
        await _fetched(client, key)
    proxies = client.node.proxies
    via_proxy = None
    if proxies is not None and proxies.connect is not None and not req.get("token"):
        via_proxy = await proxied.connect(client, proxies.connect, req)
    plan = cmd.plan_connect(
        req,
        client.ctx.session,
        uid=client.uid,
        now=client.timers.now(),
        verify=client.ctx.verify_connect,
        connections_of=client.node.hub.num_user_connections,
        jitter=random.uniform,
        proxied=via_proxy.claims if via_proxy is not None else None,
        data=via_proxy.data if via_proxy is not None else None,
        server_refresh=proxies is not None and proxies.refresh is not None,
    )
    client.user, client.conn_info, client.exp = plan.user, plan.conn_info, plan.exp
    client.meta = plan.meta
    client.name, client.version = plan.name, plan.version
    client.session.connected()
    client.timers.cancel("stale")
    client.node.add_client(client)
    client.node.metrics.connection_accepted(client.transport_name, client.name, client.version)
    if plan.expire_in is not None:
        client.timers.set("expire", plan.expire_in, client.on_expire)
    if plan.ping_in is not None:
        client.timers.set("ping", plan.ping_in, client.on_ping)
    result = plan.result
    if client.connect_extra:
        result.update(client.connect_extra)  # session/node of emulation and uni transports
    subs = await _connect_subscriptions(client, plan.wanted, req.get("subs") or {})
    if subs:
        result["subs"] = subs
    return result


async def _connect_subscriptions(
    client: CommandClient, wanted: dict[str, Any], requested: dict[str, Request]
) -> dict[str, Result]:
    results: dict[str, Result] = {}
    rules = client.ctx.session.rules
    for ch, sub_opts in wanted.items():
        opts = rules.resolve(ch)
        override = sub_opts.override if sub_opts is not None else None
        features = rules.features(opts, client.user, override=override)
        res, sub = await subscriptions.subscribe(
            client,
            ch,
            opts,
            features,
            requested.get(ch) or {},
            chan_info=sub_opts.info if sub_opts is not None else None,
            server_side=True,
        )
        if sub_opts is not None and sub_opts.data:
            res["data"] = sub_opts.data
        results[ch] = res
        client.after_reply.append(functools.partial(subscriptions.activate, client, sub))
    return results


async def subscribe(client: CommandClient, req: Request) -> Result:
    if (key := client.ctx.subscribe_key(req.get("token"))) is not None:
        await _fetched(client, key)
    plan = cmd.plan_subscribe(
        req,
        client.ctx.session,
        user=client.user,
        uid=client.uid,
        subscribed=client.subs,
        num_subs=len(client.subs),
        verify=client.ctx.verify_subscribe,
        now=client.timers.now(),
    )
    proxies = client.node.proxies
    if plan.via_stream:
        return await _subscribe_stream(client, plan, req)
    if plan.via_proxy:
        proxy = proxies.channel_proxy("subscribe", plan.opts) if proxies else None
        if proxy is None:
            raise ReplyError(ERROR_NOT_AVAILABLE)
        answer = await proxied.subscribe(client, proxy, plan.channel, req)
        plan = _proxied_plan(client, plan, answer)
    server_refresh = (
        proxies is not None and proxies.channel_proxy("sub_refresh", plan.opts) is not None
    )
    return await _subscribe_planned(client, plan, req, server_refresh=server_refresh)


async def _subscribe_planned(
    client: CommandClient,
    plan: cmd.SubscribePlan,
    req: Request,
    *,
    server_refresh: bool = False,
    stream: proxied.StreamSubscription | None = None,
) -> Result:
    """Subscribe as ``plan`` says; after the reply the subscription goes live (and the
    stream, if any, starts)."""
    result, sub = await subscriptions.subscribe(
        client,
        plan.channel,
        plan.opts,
        plan.features,
        req,
        chan_info=plan.chan_info,
        expire_at=plan.expire_at,
        server_refresh=server_refresh,
        stream=stream,
    )
    if plan.data:
        result["data"] = plan.data
    client.after_reply.append(functools.partial(subscriptions.activate, client, sub))
    if stream is not None:
        client.after_reply.append(functools.partial(stream.start, client, sub))
    return result


def _proxied_plan(
    client: CommandClient, plan: cmd.SubscribePlan, answer: ProxiedSubscribe
) -> cmd.SubscribePlan:
    """The plan once the subscribe (or subscribe stream) proxy allowed it."""
    return cmd.proxied_subscribe(
        plan,
        client.ctx.session,
        user=client.user,
        info=answer.info,
        data=answer.data,
        override=answer.override,
        expire_at=answer.expire_at,
        now=client.timers.now(),
    )


async def _subscribe_stream(client: CommandClient, plan: cmd.SubscribePlan, req: Request) -> Result:
    """A subscribe_stream namespace: the stream's first answer decides; once the reply
    is out the backend's publications flow (``proxied.StreamSubscription``)."""
    proxies = client.node.proxies
    proxy = proxies.channel_proxy("subscribe_stream", plan.opts) if proxies else None
    if proxy is None:
        raise ReplyError(ERROR_NOT_AVAILABLE)
    bidirectional = plan.opts.subscribe_stream_proxy_bidirectional
    answer, stream = await proxied.subscribe_stream(client, proxy, plan.channel, req, bidirectional)
    try:
        return await _subscribe_planned(
            client, _proxied_plan(client, plan, answer), req, stream=stream
        )
    except BaseException:
        stream.cancel()
        raise


async def unsubscribe(client: CommandClient, req: Request) -> Result:
    await subscriptions.unsubscribe(client, cmd.unsubscribe_channel(req))
    return {}


# ---- publish, presence, history ---------------------------------------------------------
async def publish(client: CommandClient, req: Request) -> Result:
    ch, opts, data, data_json = cmd.plan_publish(
        req,
        client.ctx.session,
        user=client.user,
        subscribed=client.subs,
        json_client=client.codec.name == "json",
    )
    if opts.subscribe_stream_proxy_enabled:  # into the subscriber's own stream, if any
        sub = client.subs.get(ch)
        stream = sub.stream if sub is not None else None
        if stream is None or not opts.subscribe_stream_proxy_bidirectional:
            raise ReplyError(ERROR_NOT_AVAILABLE)
        await stream.publish(data)
        return {}
    skip_history, idempotency_key = False, ""
    if opts.publish_proxy_enabled:  # before the publication goes to the channel's owner
        proxies = client.node.proxies
        proxy = proxies.channel_proxy("publish", opts) if proxies else None
        if proxy is None:
            raise ReplyError(ERROR_NOT_AVAILABLE)
        answer = await proxied.publish(client, proxy, ch, data)
        if answer.data is not data:
            data, data_json = answer.data, json_codec.is_json(answer.data)
        skip_history, idempotency_key = answer.skip_history, answer.idempotency_key
    info = client.client_info(client.subs.get(ch))
    # centrifugo internal/client/handler.go OnPublish: WithDelta(chOpts.DeltaPublish)
    pub = Publication(data, info=info, data_json=data_json, delta=opts.delta_publish)
    await client.node.publish(
        ch, pub, opts, skip_history=skip_history, idempotency_key=idempotency_key
    )
    return {}


async def presence(client: CommandClient, req: Request) -> Result:
    ch = cmd.presence_channel(req, client.ctx.session, client.user, client.subs)
    entries = await client.node.presence(ch)
    return {"presence": {cid: info.to_dict() for cid, info in entries.items()}}


async def presence_stats(client: CommandClient, req: Request) -> Result:
    ch = cmd.presence_channel(req, client.ctx.session, client.user, client.subs)
    clients, users = await client.node.presence_stats(ch)
    return {"num_clients": clients, "num_users": users}


async def history(client: CommandClient, req: Request) -> Result:
    ch, flt, meta_ttl = cmd.plan_history(req, client.ctx.session, client.user, client.subs)
    hist = await client.node.history(ch, flt, meta_ttl)
    return {
        "publications": [client.pub_dict(p) for p in hist.publications],
        "epoch": hist.position.epoch,
        "offset": hist.position.offset,
    }


async def rpc(client: CommandClient, req: Request) -> Result:
    ping = client.node.config.rpc.ping
    if ping.enabled and req.get("method", "") == ping.method:
        return {}  # the built-in ping method
    proxies = client.node.proxies
    if proxies is None or not proxies.by_kind["rpc"]:
        # no RPC proxy: 108 (Centrifugo has no RPC handler), 104 beside the ping method
        raise ReplyError(ERROR_METHOD_NOT_FOUND if ping.enabled else ERROR_NOT_AVAILABLE)
    return await proxied.rpc(client, req)


async def send(client: CommandClient, req: Request) -> Result:
    raise DisconnectError(DISCONNECT_NOT_AVAILABLE)  # no message handler: close 3508


# ---- refresh, sub_refresh ---------------------------------------------------------------
async def refresh(client: CommandClient, req: Request) -> Result:
    proxies = client.node.proxies
    if proxies is not None and proxies.refresh is not None:
        raise DisconnectError(DISCONNECT_BAD_REQUEST)  # server-side refresh expected
    if (key := client.ctx.connect_key(req.get("token"))) is not None:
        await _fetched(client, key)
    plan = refresh_plans.plan_refresh(
        req,
        client.ctx.session,
        user=client.user,
        verify=functools.partial(client.ctx.verify_connect, use=REFRESH),
        now=client.timers.now(),
    )
    if plan.info is not None:
        client.conn_info = plan.info
    if plan.expired:
        raise ReplyError(ERROR_EXPIRED)
    client.set_expiry(plan.exp, plan.expire_in)
    return plan.result


async def sub_refresh(client: CommandClient, req: Request) -> Result:
    current = client.subs.get(req.get("channel", ""))
    if current is not None and current.server_refresh:
        raise DisconnectError(DISCONNECT_BAD_REQUEST)  # server-side sub refresh expected
    if (key := client.ctx.subscribe_key(req.get("token"))) is not None:
        await _fetched(client, key)
    ch, plan = refresh_plans.plan_sub_refresh(
        req,
        client.ctx.session,
        user=client.user,
        uid=client.uid,
        subscribed=client.subs,
        verify=functools.partial(client.ctx.verify_subscribe, use=SUB_REFRESH),
        now=client.timers.now(),
    )
    sub = client.subs[ch]
    if plan.info is not None:
        sub.chan_info = plan.info
    if plan.expired:
        raise ReplyError(ERROR_EXPIRED)
    sub.expire_at = plan.exp
    if plan.expire_in is None:
        client.timers.cancel("sub:" + ch)
    else:
        client.timers.set("sub:" + ch, plan.expire_in, lambda: client.sub_expired(sub))
    return plan.result


async def server_refresh(client: CommandClient) -> None:
    """The connection expired and a refresh proxy is on: ask it (``proxied.refresh``)."""
    await proxied.refresh(client)


async def server_sub_refresh(client: CommandClient, sub: subscriptions.Subscription) -> None:
    """A server-refreshed subscription expired: ask its sub_refresh proxy; expired ends it
    as an expired subscription does."""
    proxies = client.node.proxies
    opts = client.ctx.session.rules.resolve(sub.channel)
    proxy = proxies.channel_proxy("sub_refresh", opts) if proxies else None
    if proxy is None or not await proxied.sub_refresh(client, sub, proxy):
        client.sub_expired(sub, force=True)
        return
    if client.subs.get(sub.channel) is sub and sub.expire_at is not None:
        delay = client.ctx.session.client.expired_sub_close_delay
        client.timers.at(
            "sub:" + sub.channel, sub.expire_at, delay, lambda: client.sub_expired(sub)
        )


Handler = Callable[[CommandClient, Request], Awaitable[Result]]

#: command method -> its handler (``protocol/session.py`` decides which may run when)
HANDLERS: dict[str, Handler] = {
    "connect": connect,
    "subscribe": subscribe,
    "unsubscribe": unsubscribe,
    "publish": publish,
    "presence": presence,
    "presence_stats": presence_stats,
    "history": history,
    "rpc": rpc,
    "send": send,
    "refresh": refresh,
    "sub_refresh": sub_refresh,
}
