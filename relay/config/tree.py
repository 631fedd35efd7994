"""The typed configuration tree: frozen dataclasses named after Centrifugo v6's keys.

Durations are float seconds (parsed from Go duration strings such as ``"25s"``).
The tree is frozen after loading and passed explicitly; nothing holds it in a global.

Source: centrifugo ``internal/configtypes/types.go``, ``internal/configtypes/namespace.go``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ChannelOptions:
    """Options of ``channel.without_namespace`` and of each namespace."""

    presence: bool = False
    join_leave: bool = False
    force_push_join_leave: bool = False
    history_size: int = 0
    history_ttl: float = 0.0
    history_meta_ttl: float = 0.0
    force_positioning: bool = False
    allow_positioning: bool = False
    force_recovery: bool = False
    allow_recovery: bool = False
    force_recovery_mode: str = ""
    allowed_delta_types: tuple[str, ...] = ()
    delta_publish: bool = False
    allow_tags_filter: bool = False
    allow_subscribe_for_client: bool = False
    allow_subscribe_for_anonymous: bool = False
    allow_publish_for_client: bool = False
    allow_publish_for_subscriber: bool = False
    allow_publish_for_anonymous: bool = False
    allow_presence_for_client: bool = False
    allow_presence_for_subscriber: bool = False
    allow_presence_for_anonymous: bool = False
    allow_history_for_client: bool = False
    allow_history_for_subscriber: bool = False
    allow_history_for_anonymous: bool = False
    allow_user_limited_channels: bool = False
    channel_regex: str = ""
    publication_data_format: str = ""
    subscribe_proxy_enabled: bool = False
    publish_proxy_enabled: bool = False
    sub_refresh_proxy_enabled: bool = False
    subscribe_stream_proxy_enabled: bool = False

    @property
    def history_enabled(self) -> bool:
        return self.history_size > 0 and self.history_ttl > 0


@dataclass(frozen=True)
class Namespace(ChannelOptions):
    """A named namespace: ``{"name": ..., <ChannelOptions>}``."""

    name: str = ""


@dataclass(frozen=True)
class ChannelConfig:
    without_namespace: ChannelOptions = field(default_factory=ChannelOptions)
    namespaces: tuple[Namespace, ...] = ()
    history_meta_ttl: float = 720 * 3600.0
    publication_data_format: str = ""
    max_length: int = 255
    private_prefix: str = "$"
    namespace_boundary: str = ":"
    user_boundary: str = "#"
    user_separator: str = ","


@dataclass(frozen=True)
class TokenConfig:
    """``client.token``: how connection JWTs are verified."""

    hmac_secret_key: str = ""
    hmac_previous_secret_key: str = ""
    hmac_previous_secret_key_valid_until: int = 0
    rsa_public_key: str = ""
    ecdsa_public_key: str = ""
    jwks_public_endpoint: str = ""
    audience: str = ""
    audience_regex: str = ""
    issuer: str = ""
    issuer_regex: str = ""
    user_id_claim: str = ""
    insecure_skip_jwks_endpoint_safety_check: bool = False


@dataclass(frozen=True)
class SubscriptionTokenConfig(TokenConfig):
    """``client.subscription_token``: a separate verifier when ``enabled``."""

    enabled: bool = False


@dataclass(frozen=True)
class PersonalChannelConfig:
    """``client.subscribe_to_user_personal_channel``."""

    enabled: bool = False
    personal_channel_namespace: str = ""
    single_connection: bool = False


@dataclass(frozen=True)
class ClientConfig:
    allowed_origins: tuple[str, ...] = ()
    token: TokenConfig = field(default_factory=TokenConfig)
    subscription_token: SubscriptionTokenConfig = field(default_factory=SubscriptionTokenConfig)
    allow_anonymous_connect_without_token: bool = False
    disallow_anonymous_connection_tokens: bool = False
    insecure: bool = False
    insecure_skip_token_signature_verify: bool = False
    ping_interval: float = 25.0
    pong_timeout: float = 8.0
    expired_close_delay: float = 25.0
    expired_sub_close_delay: float = 25.0
    stale_close_delay: float = 10.0
    channel_limit: int = 128
    queue_max_size: int = 1048576
    presence_update_interval: float = 27.0
    concurrency: int = 0
    channel_position_check_delay: float = 40.0
    channel_position_max_time_lag: float = 0.0
    connection_limit: int = 0
    user_connection_limit: int = 0
    connection_rate_limit: int = 0
    connect_include_server_time: bool = False
    history_max_publication_limit: int = 300
    recovery_max_publication_limit: int = 300
    user_id_http_header: str = ""
    subscribe_to_user_personal_channel: PersonalChannelConfig = field(
        default_factory=PersonalChannelConfig
    )


@dataclass(frozen=True)
class HTTPServerConfig:
    address: str = ""
    port: int = 8000
    internal_address: str = ""
    internal_port: str = ""


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    file: str = ""


@dataclass(frozen=True)
class HTTPAPIConfig:
    disabled: bool = False
    handler_prefix: str = "/api"
    key: str = ""
    insecure: bool = False
    external: bool = False
    error_mode: str = ""


@dataclass(frozen=True)
class AdminConfig:
    enabled: bool = False
    handler_prefix: str = ""
    password: str = ""
    secret: str = ""
    insecure: bool = False
    external: bool = False
    web_path: str = ""
    web_proxy_address: str = ""


@dataclass(frozen=True)
class RedisConfig:
    address: tuple[str, ...] = ("redis://127.0.0.1:6379",)
    prefix: str = "centrifugo"
    connect_timeout: float = 1.0
    io_timeout: float = 4.0
    db: int = 0
    user: str = ""
    password: str = ""
    client_name: str = ""
    force_resp2: bool = False
    cluster_address: tuple[str, ...] = ()
    sentinel_address: tuple[str, ...] = ()
    sentinel_master_name: str = ""
    history_use_lists: bool = False
    presence_ttl: float = 60.0
    presence_hash_field_ttl: bool = False
    presence_user_mapping: bool = False


@dataclass(frozen=True)
class EngineConfig:
    type: str = "memory"
    redis: RedisConfig = field(default_factory=RedisConfig)


@dataclass(frozen=True)
class WebsocketConfig:
    disabled: bool = False
    handler_prefix: str = "/connection/websocket"
    message_size_limit: int = 65536
    write_timeout: float = 1.0
    compression: bool = False
    compression_level: int = 1
    compression_min_size: int = 0
    read_buffer_size: int = 0
    write_buffer_size: int = 0
    use_write_buffer_pool: bool = False


@dataclass(frozen=True)
class EndpointConfig:
    """``prometheus``, ``health``, ``swagger``, ``debug``: enabled + handler prefix."""

    enabled: bool = False
    handler_prefix: str = ""


@dataclass(frozen=True)
class NodeConfig:
    name: str = ""
    info_metrics_aggregate_interval: float = 60.0


@dataclass(frozen=True)
class ShutdownConfig:
    timeout: float = 30.0


@dataclass(frozen=True)
class Config:
    """The root of the tree (Centrifugo v6 top-level sections)."""

    http_server: HTTPServerConfig = field(default_factory=HTTPServerConfig)
    log: LogConfig = field(default_factory=LogConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    http_api: HTTPAPIConfig = field(default_factory=HTTPAPIConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    websocket: WebsocketConfig = field(default_factory=WebsocketConfig)
    prometheus: EndpointConfig = field(
        default_factory=lambda: EndpointConfig(handler_prefix="/metrics")
    )
    health: EndpointConfig = field(default_factory=lambda: EndpointConfig(handler_prefix="/health"))
    swagger: EndpointConfig = field(
        default_factory=lambda: EndpointConfig(handler_prefix="/swagger")
    )
    debug: EndpointConfig = field(
        default_factory=lambda: EndpointConfig(handler_prefix="/debug/pprof")
    )
    node: NodeConfig = field(default_factory=NodeConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    pid_file: str = ""
    workers: int = 0
    """relay's own key: worker processes (0 = CPU count). Env ``CENTRIFUGO_WORKERS``."""

    def namespace(self, name: str) -> Namespace | None:
        """The namespace called ``name`` in ``channel.namespaces``, or ``None``."""
        for ns in self.channel.namespaces:
            if ns.name == name:
                return ns
        return None
