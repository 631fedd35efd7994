"""The typed configuration tree: frozen dataclasses named after Centrifugo v6's keys.

Durations are float seconds (parsed from Go duration strings such as ``"25s"``).
The tree is frozen after loading and passed explicitly; nothing holds it in a global.
Each field's docstring says what the key does; "not implemented" keys are the ones
listed in :mod:`relay.config.schema`. Enumerated string options are ``Literal`` types;
the loader treats them as plain strings and :func:`relay.config.validate` rejects
values outside the set.

Source: centrifugo ``internal/configtypes/types.go``, ``internal/configtypes/namespace.go``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from relay.config.consumer_tree import ConsumerConfig
from relay.config.engine_tree import (
    BrokerConfig,
    EngineConfig,
    PresenceManagerConfig,
)
from relay.config.proxy_tree import (
    ChannelProxyConfig,
    ClientProxyConfig,
    NamedProxy,
    RPCConfig,
)
from relay.config.proxy_tree import TLSConfig as TLSConfig  # its home before proxy_tree
from relay.config.transport_tree import (
    ConnectCodeToUnidirectionalDisconnect,
    EmulationConfig,
    StreamEndpointConfig,
    UniGrpcConfig,
    UniStreamConfig,
    UniWebsocketConfig,
    WebsocketConfig,
)

RecoveryMode: TypeAlias = Literal["", "stream", "cache"]
"""``force_recovery_mode``: ``""`` means ``"stream"``."""
PublicationDataFormat: TypeAlias = Literal["", "json", "json_object", "binary"]
"""``publication_data_format`` (channel options and ``channel``)."""
ErrorMode: TypeAlias = Literal["", "transport"]
"""``http_api.error_mode`` and ``grpc_api.error_mode``."""


@dataclass(frozen=True)
class ChannelOptions:
    """Options of ``channel.without_namespace`` and of each namespace."""

    presence: bool = False
    """Keep presence for the channels; needed by presence/presence_stats (else 108)."""
    join_leave: bool = False
    """Emit join/leave events (pushed to subscribers that ask for them)."""
    force_push_join_leave: bool = False
    """Push join/leave events to every subscriber without it asking."""
    history_size: int = 0
    """Max publications kept in a channel's history (0 = no history; needs history_ttl)."""
    history_ttl: float = 0.0
    """How long history is kept after the last publish (whole seconds; 0 = no history)."""
    history_meta_ttl: float = 0.0
    """Stream meta (epoch, offset) TTL, >= history_ttl (0 = ``channel.history_meta_ttl``)."""
    force_positioning: bool = False
    """Always enable positioning for subscriptions (needs history)."""
    allow_positioning: bool = False
    """Let clients ask for positioning (needs history)."""
    force_recovery: bool = False
    """Always enable recovery for subscriptions (needs history)."""
    allow_recovery: bool = False
    """Let clients ask for recovery (needs history)."""
    force_recovery_mode: RecoveryMode = ""
    """Recovery mode: ``stream`` (missed publications) or ``cache`` (latest one); "" = stream."""
    allowed_delta_types: tuple[str, ...] = ()
    """Delta types subscribers may ask for (only ``fossil``); empty: no delta compression."""
    delta_publish: bool = False
    """Treat every publication as ``delta: true`` (deltas go to subscribers that asked)."""
    allow_tags_filter: bool = False
    """Let clients subscribe with a tags filter. Not implemented by relay (warns when set)."""
    allow_subscribe_for_client: bool = False
    """Authenticated clients may subscribe without a subscription token."""
    allow_subscribe_for_anonymous: bool = False
    """With allow_subscribe_for_client: anonymous clients may subscribe too."""
    allow_publish_for_client: bool = False
    """Any authenticated client may publish."""
    allow_publish_for_subscriber: bool = False
    """Clients subscribed to the channel may publish."""
    allow_publish_for_anonymous: bool = False
    """Extends the two publish permissions above to anonymous clients."""
    allow_presence_for_client: bool = False
    """Any authenticated client may call presence/presence_stats."""
    allow_presence_for_subscriber: bool = False
    """Clients subscribed to the channel may call presence/presence_stats."""
    allow_presence_for_anonymous: bool = False
    """Extends the two presence permissions above to anonymous clients."""
    allow_history_for_client: bool = False
    """Any authenticated client may call history."""
    allow_history_for_subscriber: bool = False
    """Clients subscribed to the channel may call history."""
    allow_history_for_anonymous: bool = False
    """Extends the two history permissions above to anonymous clients."""
    allow_user_limited_channels: bool = False
    """Enable user-limited channels (``chat#user1,user2``: only those users may subscribe)."""
    channel_regex: str = ""
    """Regex the channel name after the namespace must match ("" = ASCII only)."""
    publication_data_format: PublicationDataFormat = ""
    """Publication data check: "" (non-empty), ``json``, ``json_object`` or ``binary`` (any);
    "" falls back to ``channel.publication_data_format``."""
    subscribe_proxy_enabled: bool = False
    """Ask the subscribe proxy whether a client may subscribe (without a token)."""
    subscribe_proxy_name: str = "default"
    """The proxy for subscribe: ``default`` (``channel.proxy.subscribe``) or a ``proxies`` name."""
    publish_proxy_enabled: bool = False
    """Send client publications through the publish proxy (it may reject or rewrite them)."""
    publish_proxy_name: str = "default"
    """The proxy for publish: ``default`` (``channel.proxy.publish``) or a ``proxies`` name."""
    sub_refresh_proxy_enabled: bool = False
    """Refresh expiring subscriptions server-side through the sub_refresh proxy."""
    sub_refresh_proxy_name: str = "default"
    """The proxy for sub_refresh: ``default`` (``channel.proxy.sub_refresh``) or a name."""
    subscribe_stream_proxy_enabled: bool = False
    """Subscriptions without a token open a gRPC stream to the subscribe_stream proxy: its
    first answer allows them, its publications go to that subscriber only."""
    subscribe_stream_proxy_name: str = "default"
    """The proxy for subscribe_stream: ``default`` (``channel.proxy.subscribe_stream``) or a
    ``proxies`` name (gRPC endpoints only)."""
    subscribe_stream_proxy_bidirectional: bool = False
    """Open ``SubscribeBidirectional`` instead: the subscriber's publishes go into its stream."""

    @property
    def history_enabled(self) -> bool:
        return self.history_size > 0 and self.history_ttl > 0


@dataclass(frozen=True)
class Namespace(ChannelOptions):
    """A named namespace: ``{"name": ..., <ChannelOptions>}``."""

    name: str = ""
    """Namespace name (``^[-a-zA-Z0-9_.]{2,}$``, unique): channels ``<name>:...``."""


@dataclass(frozen=True)
class ChannelConfig:
    proxy: ChannelProxyConfig = field(default_factory=ChannelProxyConfig)
    """The ``default`` subscribe, publish, sub_refresh, subscribe_stream proxies."""
    without_namespace: ChannelOptions = field(default_factory=ChannelOptions)
    """Options of channels without a namespace."""
    namespaces: tuple[Namespace, ...] = ()
    """The channel namespaces."""
    history_meta_ttl: float = 720 * 3600.0
    """Default stream meta TTL (whole seconds, default 720h)."""
    publication_data_format: PublicationDataFormat = ""
    """Default publication_data_format for namespaces that leave it "" (same values)."""
    max_length: int = 255
    """Max channel name length for client subscribe (default 255)."""
    private_prefix: str = "$"
    """Prefix of private channels, which need a subscription token (default ``$``)."""
    namespace_boundary: str = ":"
    """Separator between namespace and channel name (default ``:``)."""
    user_boundary: str = "#"
    """Start of the user list of a user-limited channel (default ``#``)."""
    user_separator: str = ","
    """Separator of users in a user-limited channel (default ``,``)."""


@dataclass(frozen=True)
class TokenConfig:
    """``client.token``: how connection JWTs are verified."""

    hmac_secret_key: str = ""
    """Secret for HS256/HS384/HS512 tokens ("" = HMAC off)."""
    hmac_previous_secret_key: str = ""
    """Previous HMAC secret, still accepted during key rotation."""
    hmac_previous_secret_key_valid_until: int = 0
    """Unix time (seconds) after which the previous HMAC secret is rejected."""
    rsa_public_key: str = ""
    """PEM RSA public key for RS256/RS384/RS512 tokens."""
    ecdsa_public_key: str = ""
    """PEM ECDSA public key for ES256/ES384/ES512 tokens."""
    jwks_public_endpoint: str = ""
    """JWKS URL (http/https) whose keys verify tokens, picked by the token's ``kid``; when
    set, the HMAC/RSA/ECDSA keys are ignored. ``{{name}}`` placeholders take the named
    groups of issuer_regex / audience_regex."""
    audience: str = ""
    """Required ``aud`` claim (exclusive with audience_regex)."""
    audience_regex: str = ""
    """Regex the ``aud`` claim must match (exclusive with audience)."""
    issuer: str = ""
    """Required ``iss`` claim (exclusive with issuer_regex)."""
    issuer_regex: str = ""
    """Regex the ``iss`` claim must match (exclusive with issuer)."""
    user_id_claim: str = ""
    """Claim holding the user ID ("" = ``sub``; must match ``^[a-zA-Z_]+$``)."""
    insecure_skip_jwks_endpoint_safety_check: bool = False
    """Allow a JWKS URL placeholder filled by a regex group that is not a fixed list of
    values (logs a warning; INSECURE)."""


@dataclass(frozen=True)
class SubscriptionTokenConfig(TokenConfig):
    """``client.subscription_token``: a separate verifier when ``enabled``."""

    enabled: bool = False
    """Verify subscription tokens with these keys (else with ``client.token``)."""


@dataclass(frozen=True)
class PersonalChannelConfig:
    """``client.subscribe_to_user_personal_channel``."""

    enabled: bool = False
    """Subscribe every authenticated connection to its user's ``<ns>:#<user>`` channel."""
    personal_channel_namespace: str = ""
    """Namespace of the personal channel ("" = no namespace); it must exist."""
    single_connection: bool = False
    """Keep one connection per user (needs presence).
    Not implemented by relay (warns when set)."""


@dataclass(frozen=True)
class ClientConfig:
    proxy: ClientProxyConfig = field(default_factory=ClientProxyConfig)
    """Connect and refresh proxies."""
    connect_code_to_unidirectional_disconnect: ConnectCodeToUnidirectionalDisconnect = field(
        default_factory=ConnectCodeToUnidirectionalDisconnect
    )
    """Connect error code -> disconnect of uni-directional transports."""
    allowed_origins: tuple[str, ...] = ()
    """Glob patterns for the ``Origin`` header (empty: requests with an Origin are refused)."""
    token: TokenConfig = field(default_factory=TokenConfig)
    """Connection token verification."""
    subscription_token: SubscriptionTokenConfig = field(default_factory=SubscriptionTokenConfig)
    """Subscription token verification (separate keys when enabled)."""
    allow_anonymous_connect_without_token: bool = False
    """Connect without a token as anonymous user ""."""
    disallow_anonymous_connection_tokens: bool = False
    """Reject connection tokens with an empty user (disconnect 3507)."""
    insecure: bool = False
    """No authentication; every channel operation allowed, token expiry ignored."""
    insecure_skip_token_signature_verify: bool = False
    """Accept tokens without checking their signature."""
    ping_interval: float = 25.0
    """Server ping period (default 25s, negative disables); must exceed pong_timeout."""
    pong_timeout: float = 8.0
    """Wait for the client's pong before disconnect 3012 (default 8s, negative disables)."""
    expired_close_delay: float = 25.0
    """Grace after connection expiry before disconnect 3005 (default 25s)."""
    expired_sub_close_delay: float = 25.0
    """Grace after subscription expiry before disconnect 3006 (default 25s)."""
    stale_close_delay: float = 10.0
    """Close a connection that sends no connect command within this time (default 10s)."""
    channel_limit: int = 128
    """Max channels per connection (default 128; over it: 106, or 3505 on connect)."""
    queue_max_size: int = 1048576
    """Max bytes queued to a client before disconnect 3008 "slow" (default 1 MiB)."""
    presence_update_interval: float = 27.0
    """Period for refreshing presence of every subscription (default 27s)."""
    concurrency: int = 0
    """Commands of one connection processed concurrently (0/1 = sequentially).
    Not implemented by relay (warns when set)."""
    channel_position_check_delay: float = 40.0
    """Period of the stream position check (default 40s).
    Not implemented by relay (warns when set)."""
    channel_position_max_time_lag: float = 0.0
    """Max time lag of the position check. Not implemented by relay (warns when set)."""
    connection_limit: int = 0
    """Max connections of the node (0 = no limit; relay: split over workers)."""
    user_connection_limit: int = 0
    """Max connections of one user on the node (0 = no limit; over it: 3504)."""
    connection_rate_limit: int = 0
    """Max new connections per second of the node (0 = no limit; relay: split over workers)."""
    connect_include_server_time: bool = False
    """Include the server time (ms) in the connect reply."""
    history_max_publication_limit: int = 300
    """Cap on the ``limit`` of a client history call (default 300; 0 = no cap)."""
    recovery_max_publication_limit: int = 300
    """Max publications recovered on subscribe (default 300; 0 = no cap)."""
    user_id_http_header: str = ""
    """Take the user ID from this HTTP header. Not implemented by relay (warns when set)."""
    subscribe_to_user_personal_channel: PersonalChannelConfig = field(
        default_factory=PersonalChannelConfig
    )
    """Automatic subscription to the user's personal channel."""


@dataclass(frozen=True)
class HTTPServerConfig:
    address: str = ""
    """Address to listen on ("" = all interfaces)."""
    port: int = 8000
    """Port to listen on (default 8000)."""
    internal_address: str = ""
    """Address of the internal endpoints ("" = ``address``)."""
    internal_port: str = ""
    """Port of the internal endpoints: API, admin, metrics, health, swagger ("" = ``port``,
    everything on one port)."""
    tls: TLSConfig = field(default_factory=TLSConfig)
    """TLS of the HTTP server (both ports unless ``tls_external``)."""
    tls_external: bool = False
    """TLS only on the external port; the internal port stays plain."""
    internal_tls: TLSConfig = field(default_factory=TLSConfig)
    """TLS of the internal port when it differs from ``tls``."""


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    """none|trace|debug|info|warn|error|fatal, any case (default info; unknown: info + WARN)."""
    file: str = ""
    """Append JSON log lines to this file ("" = stderr)."""


@dataclass(frozen=True)
class HTTPAPIConfig:
    disabled: bool = False
    """Turn the server HTTP API off."""
    handler_prefix: str = "/api"
    """Path of the HTTP API (default ``/api``; methods at ``<prefix>/<method>``)."""
    key: str = ""
    """API key (``X-API-Key`` header etc.); "" and not insecure: every call is 401."""
    insecure: bool = False
    """Skip the API key check."""
    external: bool = False
    """Serve the API on the external port: relay serves everything on its one port, as
    Centrifugo does without ``internal_port``."""
    error_mode: ErrorMode = ""
    """``transport``: errors as HTTP status codes instead of 200 + error body."""


@dataclass(frozen=True)
class GrpcAPIConfig:
    """``grpc_api``: the server API over gRPC (``relay/transports/grpc_api.py``)."""

    enabled: bool = False
    """Serve the gRPC server API (service ``centrifugal.centrifugo.api.CentrifugoApi``)."""
    error_mode: ErrorMode = ""
    """``transport``: errors as gRPC status codes (the API error in the status details)
    instead of an OK reply carrying ``error``."""
    address: str = ""
    """Address to listen on ("" = all interfaces)."""
    port: int = 10000
    """Port to listen on (default 10000); every worker binds it (SO_REUSEPORT)."""
    key: str = ""
    """API key: calls must send metadata ``authorization: apikey <key>`` ("" = no check)."""
    tls: TLSConfig = field(default_factory=TLSConfig)
    """TLS of the gRPC server (``client_ca_pem`` asks for client certificates)."""
    reflection: bool = False
    """Serve gRPC server reflection (v1alpha), for tools such as grpcurl."""
    max_receive_message_size: int = 0
    """Largest request message in bytes (0 = gRPC's default, 4 MiB)."""


@dataclass(frozen=True)
class AdminConfig:
    enabled: bool = False
    """Serve the admin web UI and its ``/admin/*`` API."""
    handler_prefix: str = ""
    """Path prefix of the admin UI ("" = ``/``)."""
    password: str = ""
    """Admin login password ("" = login refused)."""
    secret: str = ""
    """Secret signing admin session tokens ("" = login refused)."""
    insecure: bool = False
    """No admin login: the admin API is open."""
    external: bool = False
    """Serve the admin on the external port: relay serves everything on its one port, as
    Centrifugo does without ``internal_port``."""
    web_path: str = ""
    """Directory of a custom admin UI ("" = the built-in one)."""
    web_proxy_address: str = ""
    """Proxy the admin UI to this address (development).
    Not implemented by relay (warns when set)."""


@dataclass(frozen=True)
class EndpointConfig:
    """``prometheus``, ``health``, ``swagger``, ``debug``: enabled + handler prefix."""

    enabled: bool = False
    """Serve the endpoint."""
    handler_prefix: str = ""
    """Path of the endpoint ("" = its default path)."""


@dataclass(frozen=True)
class NodeConfig:
    name: str = ""
    """Node name ("" = ``<hostname>_<port>``)."""
    info_metrics_aggregate_interval: float = 60.0
    """Period of the metrics snapshot in the ``info`` reply (default 60s)."""


@dataclass(frozen=True)
class ShutdownConfig:
    timeout: float = 30.0
    """Graceful shutdown limit before a hard exit (default 30s; relay waits at most 5s)."""


@dataclass(frozen=True)
class Config:
    """The root of the tree (Centrifugo v6 top-level sections)."""

    http_server: HTTPServerConfig = field(default_factory=HTTPServerConfig)
    """Listener address and port."""
    log: LogConfig = field(default_factory=LogConfig)
    """Log level and file."""
    engine: EngineConfig = field(default_factory=EngineConfig)
    """Broker and presence engine."""
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    """A standalone broker instead of the engine's (``nats``, ``redis``, ``memory``)."""
    presence_manager: PresenceManagerConfig = field(default_factory=PresenceManagerConfig)
    """A standalone presence manager instead of the engine's (``redis``, ``memory``)."""
    client: ClientConfig = field(default_factory=ClientConfig)
    """Client connections: auth, timeouts, limits."""
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    """Channel options and namespaces."""
    rpc: RPCConfig = field(default_factory=RPCConfig)
    """Client RPC: namespaces and the RPC proxy."""
    proxies: tuple[NamedProxy, ...] = ()
    """Named proxies, chosen by ``*_proxy_name`` in namespaces and RPC namespaces."""
    http_api: HTTPAPIConfig = field(default_factory=HTTPAPIConfig)
    """Server HTTP API."""
    grpc_api: GrpcAPIConfig = field(default_factory=GrpcAPIConfig)
    """Server API over gRPC."""
    admin: AdminConfig = field(default_factory=AdminConfig)
    """Admin web UI."""
    websocket: WebsocketConfig = field(default_factory=WebsocketConfig)
    """WebSocket transport."""
    sse: StreamEndpointConfig = field(
        default_factory=lambda: StreamEndpointConfig(handler_prefix="/connection/sse")
    )
    """Bidirectional SSE (EventSource) with the emulation endpoint."""
    http_stream: StreamEndpointConfig = field(
        default_factory=lambda: StreamEndpointConfig(handler_prefix="/connection/http_stream")
    )
    """Bidirectional HTTP streaming with the emulation endpoint."""
    emulation: EmulationConfig = field(default_factory=EmulationConfig)
    """The emulation endpoint (served when ``sse`` or ``http_stream`` is enabled)."""
    uni_websocket: UniWebsocketConfig = field(default_factory=UniWebsocketConfig)
    """Unidirectional WebSocket."""
    uni_sse: UniStreamConfig = field(
        default_factory=lambda: UniStreamConfig(handler_prefix="/connection/uni_sse")
    )
    """Unidirectional SSE."""
    uni_http_stream: UniStreamConfig = field(
        default_factory=lambda: UniStreamConfig(handler_prefix="/connection/uni_http_stream")
    )
    """Unidirectional HTTP streaming."""
    uni_grpc: UniGrpcConfig = field(default_factory=UniGrpcConfig)
    """Unidirectional gRPC."""
    prometheus: EndpointConfig = field(
        default_factory=lambda: EndpointConfig(handler_prefix="/metrics")
    )
    """Prometheus metrics endpoint (default path ``/metrics``)."""
    health: EndpointConfig = field(default_factory=lambda: EndpointConfig(handler_prefix="/health"))
    """Health check endpoint (default path ``/health``)."""
    swagger: EndpointConfig = field(
        default_factory=lambda: EndpointConfig(handler_prefix="/swagger")
    )
    """Swagger document and page of the HTTP API (default path ``/swagger``:
    ``/swagger/swagger.json``, ``/swagger/``)."""
    debug: EndpointConfig = field(
        default_factory=lambda: EndpointConfig(handler_prefix="/debug/pprof")
    )
    """Go pprof endpoints (default path ``/debug/pprof``). Not implemented by relay (warns
    when set)."""
    node: NodeConfig = field(default_factory=NodeConfig)
    """Node name and info metrics."""
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    """Graceful shutdown."""
    consumers: tuple[ConsumerConfig, ...] = ()
    """Async consumers: a PostgreSQL outbox table or Redis Streams turned into API commands."""
    pid_file: str = ""
    """Write the front process's ID to this file (removed on exit; "" = none)."""
    workers: int = 0
    """relay's own key: worker processes (0 = CPU count). Env ``CENTRIFUGO_WORKERS``."""

    def namespace(self, name: str) -> Namespace | None:
        """The namespace called ``name`` in ``channel.namespaces``, or ``None``."""
        for ns in self.channel.namespaces:
            if ns.name == name:
                return ns
        return None
