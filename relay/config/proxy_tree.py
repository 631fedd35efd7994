"""The proxy part of the config tree (and the TLS block it shares with the servers).

Source: centrifugo ``internal/configtypes/types.go`` (``Proxy``, ``ProxyCommon``,
``NamedProxy``, ``RPC``) and ``rpc_namespace.go``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias


@dataclass(frozen=True)
class TLSConfig:
    """A TLS block (``http_server.tls``, ``internal_tls``, ``grpc_api.tls``...).

    Each ``*_pem`` value is raw PEM, base64 of PEM, or a path to a PEM file (tried in that
    order, as Centrifugo's ``configtypes/pem.go``)."""

    enabled: bool = False
    """Use TLS."""
    cert_pem: str = ""
    """Certificate (chain) in PEM."""
    key_pem: str = ""
    """Private key in PEM matching ``cert_pem``."""
    server_ca_pem: str = ""
    """Root CA used to verify a server's certificate (client side)."""
    client_ca_pem: str = ""
    """CA verifying client certificates: setting it requires them (mutual TLS)."""
    insecure_skip_verify: bool = False
    """Client side: do not verify the server's certificate."""
    server_name: str = ""
    """Client side: the expected server name (SNI)."""


StrMap: TypeAlias = tuple[tuple[str, str], ...]
"""A string -> string map (``static_headers``...), as sorted pairs; JSON object in files."""


@dataclass(frozen=True)
class TransformError:
    code: int = 0
    """Protocol error code sent to the client."""
    message: str = ""
    """Its message."""
    temporary: bool = False
    """Whether the error is temporary."""


@dataclass(frozen=True)
class TransformDisconnect:
    code: int = 0
    """Disconnect code the connection is closed with."""
    reason: str = ""
    """Its reason."""


@dataclass(frozen=True)
class StatusToCodeTransform:
    """One ``http.status_to_code_transforms`` rule."""

    status_code: int = 0
    """HTTP status of the backend's answer to match."""
    to_error: TransformError = field(default_factory=TransformError)
    """Reply with this error (when its code > 0)."""
    to_disconnect: TransformDisconnect = field(default_factory=TransformDisconnect)
    """Else close with this disconnect (when its code > 0)."""


@dataclass(frozen=True)
class ProxyHTTPConfig:
    tls: TLSConfig = field(default_factory=TLSConfig)
    """TLS of the HTTP proxy client (``server_ca_pem``, ``insecure_skip_verify``, client
    certificate)."""
    static_headers: StrMap = ()
    """Headers added to every request (forwarded client headers override them)."""
    status_to_code_transforms: tuple[StatusToCodeTransform, ...] = ()
    """HTTP status -> protocol error or disconnect for the client."""


@dataclass(frozen=True)
class ProxyGRPCConfig:
    tls: TLSConfig = field(default_factory=TLSConfig)
    """TLS of the gRPC proxy channel."""
    credentials_key: str = ""
    """Metadata key sent with every call (per-RPC credentials)."""
    credentials_value: str = ""
    """Its value."""
    compression: bool = False
    """gzip the calls."""
    static_metadata: StrMap = ()
    """Metadata added to every call."""


@dataclass(frozen=True)
class ProxyConfig:
    """One proxy: Centrifugo's ``configtypes.Proxy``.

    ``endpoint``: ``http://``/``https://`` (HTTP POST of JSON), ``grpc://host:port`` (the
    ``CentrifugoProxy`` service), or relay's own ``python://package.module:function`` (an
    in-process coroutine, see ``relay/proxy/hook.py``)."""

    endpoint: str = ""
    """Where the backend is."""
    timeout: float = 1.0
    """Limit of one call (default 1s)."""
    http_headers: tuple[str, ...] = ()
    """Headers of the WebSocket upgrade request forwarded to the backend (gRPC: metadata)."""
    grpc_metadata: tuple[str, ...] = ()
    """gRPC metadata keys forwarded (relay has no gRPC client transport: nothing to forward)."""
    emulated_headers: tuple[str, ...] = ()
    """Headers of Centrifugo's header emulation forwarded. Not implemented by relay."""
    binary_encoding: bool = False
    """Send data as base64 (``b64data``, encoding ``binary``): for Protobuf clients' bytes."""
    include_connection_meta: bool = False
    """Send the connection's ``meta`` (from the connect proxy's result) with each request."""
    http: ProxyHTTPConfig = field(default_factory=ProxyHTTPConfig)
    """HTTP-only options."""
    grpc: ProxyGRPCConfig = field(default_factory=ProxyGRPCConfig)
    """gRPC-only options."""


@dataclass(frozen=True)
class EnabledProxyConfig(ProxyConfig):
    """``client.proxy.connect`` / ``client.proxy.refresh``: a proxy with a switch."""

    enabled: bool = False
    """Use this proxy."""


@dataclass(frozen=True)
class NamedProxy(ProxyConfig):
    """An element of ``proxies``, chosen by name in namespaces and RPC namespaces."""

    name: str = ""
    """Unique name (``^[-a-zA-Z0-9_.]{2,}$``; ``default`` is reserved)."""


@dataclass(frozen=True)
class ClientProxyConfig:
    connect: EnabledProxyConfig = field(default_factory=EnabledProxyConfig)
    """Connect proxy: authenticates connections that come without a token."""
    refresh: EnabledProxyConfig = field(default_factory=EnabledProxyConfig)
    """Refresh proxy: extends expiring connections server-side."""


@dataclass(frozen=True)
class ChannelProxyConfig:
    subscribe: ProxyConfig = field(default_factory=ProxyConfig)
    """The ``default`` subscribe proxy."""
    publish: ProxyConfig = field(default_factory=ProxyConfig)
    """The ``default`` publish proxy."""
    sub_refresh: ProxyConfig = field(default_factory=ProxyConfig)
    """The ``default`` sub_refresh proxy."""
    subscribe_stream: ProxyConfig = field(default_factory=ProxyConfig)
    """The ``default`` subscribe_stream proxy (gRPC only)."""


@dataclass(frozen=True)
class RpcOptions:
    proxy_enabled: bool = False
    """Send RPC calls of this namespace to the RPC proxy (else 108)."""
    proxy_name: str = "default"
    """The proxy: ``default`` (``rpc.proxy``) or a ``proxies`` name."""


@dataclass(frozen=True)
class RpcNamespace(RpcOptions):
    name: str = ""
    """Namespace name: methods ``<name><namespace_boundary>...``."""


@dataclass(frozen=True)
class RPCPingConfig:
    enabled: bool = False
    """Answer the RPC method ``method`` with an empty result, without a proxy."""
    method: str = "ping"
    """Name of that method (default ``ping``)."""


@dataclass(frozen=True)
class RPCConfig:
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    """The ``default`` RPC proxy."""
    without_namespace: RpcOptions = field(default_factory=RpcOptions)
    """Options of methods without a namespace."""
    namespaces: tuple[RpcNamespace, ...] = ()
    """RPC namespaces (unknown namespace: 104)."""
    ping: RPCPingConfig = field(default_factory=RPCPingConfig)
    """The built-in ping method."""
    namespace_boundary: str = ":"
    """Separator between RPC namespace and method (default ``:``)."""
