"""The proxy calls of the client commands (``handlers.py`` calls these when a proxy is on).

Each function builds the request (``relay/proxy/registry.py``), makes the call in this
worker, and turns the answer into what the handler applies (``relay/proxy/outcomes.py``).
A failed call (timeout, refused, HTTP error, bad body) is error 100 for the client, as in
Centrifugo; the refreshes extend the expiry by a minute instead. A connection closed
while its call was in flight ends the command (3000 internally: nothing is written).

Connections that use no proxy never come here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from relay.errors import (
    DISCONNECT_CONNECTION_CLOSED,
    DISCONNECT_EXPIRED,
    ERROR_INTERNAL,
    DisconnectError,
    ReplyError,
)
from relay.proxy import Proxies, Proxy, ProxyFailure
from relay.proxy.outcomes import (
    ProxiedConnect,
    ProxiedPublish,
    ProxiedRefresh,
    ProxiedSubscribe,
    connect_outcome,
    publish_outcome,
    refresh_outcome,
    rpc_outcome,
    subscribe_outcome,
)
from relay.subscriptions import Subscription, SubscriptionOwner

if TYPE_CHECKING:
    from relay.protocol.codecs import Codec

__all__ = [
    "ProxyClient",
    "connect",
    "subscribe",
    "publish",
    "rpc",
    "refresh",
    "sub_refresh",
    "RETRY_AFTER_FAILURE",
]

log = logging.getLogger("relay.proxy")

#: a failed refresh or sub_refresh call gives the connection/subscription this long
RETRY_AFTER_FAILURE = 60


class ProxyClient(SubscriptionOwner, Protocol):
    codec: Codec
    meta: bytes | None
    headers: dict[str, str]

    @property
    def transport_name(self) -> str: ...


async def _call(
    client: ProxyClient, proxy: Proxy, request: dict[str, Any], fail_as_internal: bool = True
) -> dict[str, Any]:
    proxies = client.node.proxies
    assert proxies is not None
    try:
        answer = await proxies.call(proxy, request, client.headers, client.uid)
    except ProxyFailure:
        if client.closed:
            raise DisconnectError(DISCONNECT_CONNECTION_CLOSED) from None
        if fail_as_internal:
            raise ReplyError(ERROR_INTERNAL) from None
        raise
    if client.closed:
        raise DisconnectError(DISCONNECT_CONNECTION_CLOSED)
    return answer


def _request(client: ProxyClient, proxy: Proxy, user: bool = True) -> dict[str, Any]:
    request = Proxies.base(proxy, client.uid, client.transport_name, client.codec.name)
    if user:
        request["user"] = client.user
    if proxy.include_meta and client.meta is not None:
        request["meta"] = client.meta
    return request


def _proxies(client: ProxyClient) -> Proxies:
    proxies = client.node.proxies
    assert proxies is not None
    return proxies


# ---- connect, subscribe, publish, rpc ----------------------------------------------------
async def connect(client: ProxyClient, proxy: Proxy, req: dict[str, Any]) -> ProxiedConnect:
    request = Proxies.base(proxy, client.uid, client.transport_name, client.codec.name)
    Proxies.put_data(proxy, request, req.get("data"))
    request["name"] = req.get("name", "")
    request["version"] = req.get("version", "")
    request["channels"] = list(req.get("subs") or ())
    return connect_outcome(await _call(client, proxy, request))


async def subscribe(
    client: ProxyClient, proxy: Proxy, channel: str, req: dict[str, Any]
) -> ProxiedSubscribe:
    request = _request(client, proxy)
    request["channel"] = channel
    request["token"] = req.get("token", "")
    Proxies.put_data(proxy, request, req.get("data"))
    return subscribe_outcome(await _call(client, proxy, request))


async def publish(client: ProxyClient, proxy: Proxy, channel: str, data: bytes) -> ProxiedPublish:
    """What to publish (the backend may rewrite it, keep it out of history, dedupe it)."""
    request = _request(client, proxy)
    request["channel"] = channel
    Proxies.put_data(proxy, request, data)
    return publish_outcome(await _call(client, proxy, request), data)


async def rpc(client: ProxyClient, req: dict[str, Any]) -> dict[str, Any]:
    method = req.get("method", "")
    proxy = _proxies(client).rpc_proxy(method)
    request = _request(client, proxy)
    request["method"] = method
    Proxies.put_data(proxy, request, req.get("data"))
    data = rpc_outcome(await _call(client, proxy, request))
    return {"data": data} if data else {}


# ---- server-side refreshes ---------------------------------------------------------------
async def _refresh_answer(client: ProxyClient, proxy: Proxy, request: dict[str, Any]) -> Any:
    """The refresh outcome, or None after a failed call (retry in a minute)."""
    try:
        answer = await _call(client, proxy, request, fail_as_internal=False)
    except ProxyFailure:
        return None
    return refresh_outcome(answer)


class RefreshTarget(ProxyClient, Protocol):
    exp: float | None
    conn_info: bytes | None

    def set_expiry(self, exp: float | None, expire_in: float | None) -> None: ...

    def disconnect(self, disconnect: Any) -> None: ...


async def refresh(client: RefreshTarget) -> None:
    """The connection reached its expiry: ask the refresh proxy (Centrifugo's
    ``expire``): expired or no result closes with 3005; a new ``expire_at`` extends it
    (0 keeps the old one, which has passed: 3005); a failed call gives a minute."""
    proxy = _proxies(client).refresh
    assert proxy is not None
    try:
        outcome: ProxiedRefresh | None = await _refresh_answer(
            client, proxy, _request(client, proxy)
        )
    except DisconnectError:
        return  # closed meanwhile
    now = client.timers.now()
    if outcome is None:
        client.set_expiry(now + RETRY_AFTER_FAILURE, RETRY_AFTER_FAILURE)
        return
    if outcome.expired:
        client.disconnect(DISCONNECT_EXPIRED)
        return
    if outcome.expire_at > 0:
        client.exp = float(outcome.expire_at)
        if outcome.info is not None:
            client.conn_info = outcome.info
    if outcome.meta is not None:
        client.meta = outcome.meta
    ttl = (client.exp or 0) - now
    if ttl > 0:
        client.set_expiry(client.exp, ttl)
    else:
        client.disconnect(DISCONNECT_EXPIRED)


async def sub_refresh(client: ProxyClient, sub: Subscription, proxy: Proxy) -> bool:
    """A subscription reached its expiry: ask the sub_refresh proxy. False: expired
    (the caller unsubscribes); else ``sub`` has its new expiry (None: never) and info."""
    request = _request(client, proxy)
    request["channel"] = sub.channel
    try:
        outcome: ProxiedRefresh | None = await _refresh_answer(client, proxy, request)
    except DisconnectError:
        return True  # closed meanwhile: nothing to do
    now = client.timers.now()
    if outcome is None:
        sub.expire_at = now + RETRY_AFTER_FAILURE
        return True
    if outcome.expired or 0 < outcome.expire_at < now:
        return False
    if outcome.info:
        sub.chan_info = outcome.info
    sub.expire_at = float(outcome.expire_at) if outcome.expire_at > 0 else None
    return True
