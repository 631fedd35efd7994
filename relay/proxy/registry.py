"""The proxies a node uses, built once from the config, and the one way to call them.

Which proxy serves what is Centrifugo's ``buildProxyMap``: ``client.proxy.connect`` and
``client.proxy.refresh`` when enabled; per namespace (and ``without_namespace``) the
subscribe / publish / sub_refresh / subscribe_stream proxy named ``default``
(``channel.proxy.*``) or an entry of ``proxies``; per RPC namespace the ``default``
(``rpc.proxy``) or a named one.
A proxy whose endpoint starts with ``http://``/``https://`` is an HTTP proxy,
``python://`` an in-process hook, anything else gRPC (``grpc://`` is optional, as in
Centrifugo). gRPC is imported only when such a proxy exists.

:meth:`Proxies.call` is where every call goes: the inflight gauge, the duration and error
families (``centrifugo_proxy_*``, labels protocol / type / name as Centrifugo), and one
log line per failure naming the proxy and the cause, never the payload.
:meth:`Proxies.open_stream` does the same for opening a subscribe stream (type
``subscribe_stream``): in flight and timed until its first message, an error when it
could not be opened (an error or disconnect answer is not one, as in Centrifugo).
"""

from __future__ import annotations

import base64
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from relay.config import ChannelOptions, Config
from relay.config.proxy_tree import ProxyConfig, TLSConfig
from relay.config.proxy_validate import DEFAULT_PROXY
from relay.errors import ERROR_METHOD_NOT_FOUND, ERROR_NOT_AVAILABLE, ReplyError
from relay.metrics import Metrics
from relay.proxy.hook import HookCaller
from relay.proxy.http import HTTPCaller
from relay.proxy.messages import ProxyFailure

if TYPE_CHECKING:
    from relay.proxy.stream import SubscribeStream

__all__ = ["Caller", "Proxy", "Proxies", "uses_proxies"]

_T = TypeVar("_T")
log = logging.getLogger("relay.proxy")

TLSFactory = Callable[[TLSConfig, str], ssl.SSLContext]


class Caller(Protocol):
    protocol: str

    async def __call__(
        self, kind: str, request: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Proxy:
    """One configured proxy for one request type."""

    kind: str
    name: str
    caller: Caller
    binary: bool
    include_meta: bool
    headers: tuple[str, ...]  # lower-cased ``http_headers``


def uses_proxies(config: Config) -> bool:
    """Whether anything in ``config`` switches a proxy on (else relay builds none)."""
    cp = config.client.proxy
    options = (config.channel.without_namespace, *config.channel.namespaces)
    rpc = (config.rpc.without_namespace, *config.rpc.namespaces)
    return (
        cp.connect.enabled
        or cp.refresh.enabled
        or any(
            o.subscribe_proxy_enabled
            or o.publish_proxy_enabled
            or o.sub_refresh_proxy_enabled
            or o.subscribe_stream_proxy_enabled
            for o in options
        )
        or any(o.proxy_enabled for o in rpc)
    )


def _caller(cfg: ProxyConfig, entity: str, tls: TLSFactory | None) -> Caller:
    endpoint = cfg.endpoint
    if endpoint.startswith(("http://", "https://")):
        context = None
        if cfg.http.tls.enabled and tls is not None:
            context = tls(cfg.http.tls, entity)
        return HTTPCaller(cfg, context)
    if endpoint.startswith("python://"):
        return HookCaller(cfg)
    from relay.proxy.grpc import GRPCCaller  # grpcio only for gRPC proxies

    caller: Caller = GRPCCaller(cfg, entity)
    return caller


def _forwarded(proxy: Proxy, headers: dict[str, str]) -> dict[str, str]:
    """The request headers ``proxy`` is configured to pass on (``http_headers``)."""
    if not headers:
        return {}
    return {k: v for k, v in headers.items() if k.lower() in proxy.headers}


class Proxies:
    """Every proxy of one worker, by request type and name."""

    def __init__(self, config: Config, metrics: Metrics, tls: TLSFactory | None = None) -> None:
        self.metrics = metrics
        self.config = config
        named = {p.name: p for p in config.proxies}
        cp = config.client.proxy
        self.connect = (
            self._make("connect", DEFAULT_PROXY, cp.connect, tls) if (cp.connect.enabled) else None
        )
        self.refresh = (
            self._make("refresh", DEFAULT_PROXY, cp.refresh, tls) if (cp.refresh.enabled) else None
        )
        channel = config.channel.proxy
        self.by_kind: dict[str, dict[str, Proxy]] = {
            "subscribe": {},
            "publish": {},
            "sub_refresh": {},
            "subscribe_stream": {},
            "rpc": {},
        }
        defaults = {
            "subscribe": channel.subscribe,
            "publish": channel.publish,
            "sub_refresh": channel.sub_refresh,
            "subscribe_stream": channel.subscribe_stream,
            "rpc": config.rpc.proxy,
        }
        wanted: list[tuple[str, str]] = []
        for o in (config.channel.without_namespace, *config.channel.namespaces):
            for kind, name in self._channel_proxies(o):
                wanted.append((kind, name))
        for r in (config.rpc.without_namespace, *config.rpc.namespaces):
            if r.proxy_enabled:
                wanted.append(("rpc", r.proxy_name))
        for kind, name in wanted:
            if name not in self.by_kind[kind]:
                cfg = defaults[kind] if name == DEFAULT_PROXY else named[name]
                self.by_kind[kind][name] = self._make(kind, name, cfg, tls)
        every = [p for p in (self.connect, self.refresh) if p is not None]
        every += [p for table in self.by_kind.values() for p in table.values()]
        self._all = every
        #: the upgrade request headers any proxy forwards (lower-cased)
        self.header_names = frozenset(h for p in every for h in p.headers)

    @staticmethod
    def _channel_proxies(o: ChannelOptions) -> list[tuple[str, str]]:
        out = []
        if o.subscribe_proxy_enabled:
            out.append(("subscribe", o.subscribe_proxy_name))
        if o.publish_proxy_enabled:
            out.append(("publish", o.publish_proxy_name))
        if o.sub_refresh_proxy_enabled:
            out.append(("sub_refresh", o.sub_refresh_proxy_name))
        if o.subscribe_stream_proxy_enabled:
            out.append(("subscribe_stream", o.subscribe_stream_proxy_name))
        return out

    def _make(self, kind: str, name: str, cfg: ProxyConfig, tls: TLSFactory | None) -> Proxy:
        entity = f"{kind}_proxy" if name == DEFAULT_PROXY else f"proxy {name}"
        caller = _caller(cfg, entity, tls)
        headers = tuple(h.lower() for h in cfg.http_headers)
        return Proxy(kind, name, caller, cfg.binary_encoding, cfg.include_connection_meta, headers)

    # ---- lookup ---------------------------------------------------------------------------
    def channel_proxy(self, kind: str, opts: ChannelOptions) -> Proxy | None:
        """The subscribe / publish / sub_refresh / subscribe_stream proxy of a namespace,
        or None when off."""
        if kind == "subscribe":
            on, name = opts.subscribe_proxy_enabled, opts.subscribe_proxy_name
        elif kind == "publish":
            on, name = opts.publish_proxy_enabled, opts.publish_proxy_name
        elif kind == "subscribe_stream":
            on, name = opts.subscribe_stream_proxy_enabled, opts.subscribe_stream_proxy_name
        else:
            on, name = opts.sub_refresh_proxy_enabled, opts.sub_refresh_proxy_name
        return self.by_kind[kind].get(name) if on else None

    def rpc_proxy(self, method: str) -> Proxy:
        """The proxy of an RPC method: 104 for an unknown namespace, 108 when it has none."""
        rpc = self.config.rpc
        boundary = rpc.namespace_boundary
        opts = rpc.without_namespace
        if boundary and boundary in method:
            ns = method.split(boundary, 1)[0]
            found = next((n for n in rpc.namespaces if n.name == ns), None)
            if found is None:
                log.info("rpc options not found for method %s", method)
                raise ReplyError(ERROR_METHOD_NOT_FOUND)
            opts = found
        if not opts.proxy_enabled:
            log.info("rpc proxy not enabled for method %s", method)
            raise ReplyError(ERROR_NOT_AVAILABLE)
        return self.by_kind["rpc"][opts.proxy_name]

    # ---- requests -------------------------------------------------------------------------
    @staticmethod
    def base(proxy: Proxy, client_id: str, transport: str, protocol: str) -> dict[str, Any]:
        """The fields every request starts with."""
        return {
            "client": client_id,
            "transport": transport,
            "protocol": protocol,
            "encoding": "binary" if proxy.binary else "json",
        }

    @staticmethod
    def put_data(proxy: Proxy, request: dict[str, Any], data: bytes | None) -> None:
        """``data`` as raw JSON, or ``b64data`` with ``binary_encoding``."""
        if not data:
            return
        if proxy.binary:
            request["b64data"] = base64.b64encode(data).decode("ascii")
        else:
            request["data"] = data

    # ---- calls ----------------------------------------------------------------------------
    async def call(
        self, proxy: Proxy, request: dict[str, Any], headers: dict[str, str], client_id: str
    ) -> dict[str, Any]:
        """One call with its metrics; a failure is logged once and re-raised."""
        protocol = proxy.caller.protocol
        labels = (protocol, proxy.kind, proxy.name)
        what = f"error proxying {proxy.kind} (proxy {proxy.name}, {protocol})"
        call = proxy.caller(proxy.kind, request, _forwarded(proxy, headers))
        return await self._measured(labels, call, what, f"client={client_id}")

    async def open_stream(
        self,
        proxy: Proxy,
        bidirectional: bool,
        request: dict[str, Any],
        headers: dict[str, str],
        client_id: str,
    ) -> tuple[dict[str, Any], SubscribeStream]:
        """Open a subscribe stream with its metrics; a failure is logged once and re-raised."""
        from relay.proxy.grpc import GRPCCaller
        from relay.proxy.stream import open_stream

        caller = proxy.caller
        assert isinstance(caller, GRPCCaller)  # config validation: gRPC endpoints only
        labels = ("grpc", proxy.kind, proxy.name)
        what = f"error from subscribe stream proxy (proxy {proxy.name})"
        where = f"client={client_id} channel={request.get('channel', '')}"
        opened = open_stream(caller, bidirectional, request, _forwarded(proxy, headers))
        return await self._measured(labels, opened, what, where)

    async def _measured(
        self, labels: tuple[str, str, str], call: Awaitable[_T], what: str, where: str
    ) -> _T:
        """Await ``call`` counted in the ``centrifugo_proxy_*`` metrics of ``labels``."""
        metrics = self.metrics
        metrics.proxy_inflight(labels, 1)
        started = time.perf_counter()
        try:
            return await call
        except ProxyFailure as exc:
            metrics.proxy_error(labels)
            log.error("%s: %s %s", what, exc, where)
            raise
        finally:
            metrics.proxy_inflight(labels, -1)
            metrics.proxy_duration(labels, time.perf_counter() - started)

    async def close(self) -> None:
        for proxy in self._all:
            await proxy.caller.close()
