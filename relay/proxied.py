"""The proxy calls of the client commands (``handlers.py`` calls these when a proxy is on).

Each function builds the request (``relay/proxy/registry.py``), makes the call in this
worker, and turns the answer into what the handler applies (``relay/proxy/outcomes.py``).
A failed call (timeout, refused, HTTP error, bad body) is error 100 for the client, as in
Centrifugo; the refreshes extend the expiry by a minute instead. A connection closed
while its call was in flight ends the command (3000 internally: nothing is written).

A subscribe_stream subscription keeps its gRPC stream open (:class:`StreamSubscription`,
``Subscription.stream``): a task of this worker writes the backend's publications to
this connection only (never to the channel, never over the bus) and ends the
subscription when the stream ends (2000 server unsubscribe) or fails (2500 insufficient
state, so the SDK subscribes again); unsubscribing or disconnecting cancels the stream.

Connections that use no proxy never come here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from relay.errors import (
    DISCONNECT_CONNECTION_CLOSED,
    DISCONNECT_EXPIRED,
    ERROR_INTERNAL,
    UNSUBSCRIBE_INSUFFICIENT_STATE,
    UNSUBSCRIBE_SERVER,
    DisconnectError,
    ReplyError,
    Unsubscribe,
)
from relay.protocol.json_codec import is_json
from relay.protocol.messages import Publication
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
    stream_subscribe_outcome,
    subscribe_outcome,
)
from relay.subscriptions import Subscription, SubscriptionOwner

if TYPE_CHECKING:
    from relay.protocol.codecs import Codec
    from relay.proxy.stream import SubscribeStream

__all__ = [
    "ProxyClient",
    "connect",
    "subscribe",
    "subscribe_stream",
    "StreamSubscription",
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

    def disconnect(self, disconnect: Any) -> None: ...

    def unsubscribe_server(self, ch: str, unsub: Unsubscribe = ...) -> None: ...


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


# ---- subscribe_stream ---------------------------------------------------------------------
async def subscribe_stream(
    client: ProxyClient, proxy: Proxy, channel: str, req: dict[str, Any], bidirectional: bool
) -> tuple[ProxiedSubscribe, StreamSubscription]:
    """Open the namespace's stream and read the backend's answer. A failure to open is
    error 100; an answer that refuses, or anything raised here, cancels the stream."""
    request = _request(client, proxy)
    request["channel"] = channel
    request["token"] = req.get("token", "")
    Proxies.put_data(proxy, request, req.get("data"))
    try:
        answer, stream = await _proxies(client).open_stream(
            proxy, bidirectional, request, client.headers, client.uid
        )
    except ProxyFailure:
        if client.closed:
            raise DisconnectError(DISCONNECT_CONNECTION_CLOSED) from None
        raise ReplyError(ERROR_INTERNAL) from None
    try:
        if client.closed:
            raise DisconnectError(DISCONNECT_CONNECTION_CLOSED)
        outcome = stream_subscribe_outcome(answer)
    except BaseException:
        stream.cancel()
        raise
    return outcome, StreamSubscription(stream)


class StreamSubscription:
    """The open stream of one subscription and the task that reads it (started once
    the subscribe reply is out: :meth:`start`)."""

    def __init__(self, stream: SubscribeStream) -> None:
        self.stream = stream
        self.task: asyncio.Task[None] | None = None
        self.cancelled = False

    def start(self, client: ProxyClient, sub: Subscription) -> None:
        if not self.cancelled and self.task is None:
            self.task = asyncio.get_running_loop().create_task(_read_stream(client, sub, self))

    def cancel(self) -> None:
        self.cancelled = True
        self.stream.cancel()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()

    async def publish(self, data: bytes) -> None:
        """The subscriber's publish into a bidirectional stream (error 100 if it fails)."""
        try:
            await self.stream.publish(data)
        except ProxyFailure as exc:
            log.error("error publishing into subscribe stream: %s", exc)
            raise ReplyError(ERROR_INTERNAL) from None


def _stream_publication(client: ProxyClient, data: bytes, tags: dict[str, str]) -> dict[str, Any]:
    """A streamed publication as this client's ``pub`` push (JSON clients: 3506 for data
    that is not JSON, as Centrifugo's encoder; newlines dropped as in its ``Raw``)."""
    json_client = client.codec.name == "json"
    if json_client and data:
        data_json = is_json(data)
        if data_json:
            data = data.replace(b"\n", b"")
    else:
        data_json = True
    return client.pub_dict(Publication(data, tags=tags or None, data_json=data_json))


async def _read_stream(client: ProxyClient, sub: Subscription, owner: StreamSubscription) -> None:
    ch = sub.channel
    unsub = UNSUBSCRIBE_SERVER
    try:
        while True:
            item = await owner.stream.next_publication()
            if item is None:
                break  # the backend ended the stream
            if client.closed or client.subs.get(ch) is not sub:
                return
            try:
                push = _stream_publication(client, *item)
            except DisconnectError as exc:
                client.disconnect(exc.disconnect)
                return
            client.send_push({"channel": ch, "pub": push})
    except ProxyFailure as exc:
        log.info("subscribe stream of client %s channel %s failed: %s", client.uid, ch, exc)
        unsub = UNSUBSCRIBE_INSUFFICIENT_STATE
    except Exception:
        log.exception("subscribe stream of client %s channel %s failed", client.uid, ch)
        unsub = UNSUBSCRIBE_INSUFFICIENT_STATE
    owner.stream.cancel()
    if not client.closed and client.subs.get(ch) is sub:
        client.unsubscribe_server(ch, unsub)


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
