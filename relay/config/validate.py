"""Validation of a loaded :class:`Config` (Centrifugo's ``Validate()`` rules)."""

from __future__ import annotations

import re
import typing

from relay.config.consumer_tree import ConsumerConfig, ConsumerType
from relay.config.durations import _NS_PER_SECOND, format_duration
from relay.config.engine_tree import (
    BrokerType,
    EngineType,
    NatsBrokerConfig,
    PersistenceSync,
    PresenceManagerType,
    RedisConfig,
)
from relay.config.jwks import validate_jwks_endpoint
from relay.config.pem import TLSConfigError, load_pem
from relay.config.proxy_validate import validate_proxies
from relay.config.redis_address import shard_addresses
from relay.config.tree import (
    ChannelConfig,
    ChannelOptions,
    Config,
    ErrorMode,
    PublicationDataFormat,
    RecoveryMode,
    TLSConfig,
    TokenConfig,
)
from relay.errors import ConfigError

_NAMESPACE_NAME = re.compile(r"^[-a-zA-Z0-9_.]{2,}$")
_USER_ID_CLAIM = re.compile(r"^[a-zA-Z_]+$")
# The accepted values of the enumerated options are their ``Literal`` types in ``tree``.
_RECOVERY_MODES: frozenset[str] = frozenset(typing.get_args(RecoveryMode))
_DATA_FORMATS: frozenset[str] = frozenset(typing.get_args(PublicationDataFormat))
_DELTA_TYPES = frozenset({"fossil"})
_ENGINE_TYPES: frozenset[str] = frozenset(typing.get_args(EngineType))
_BROKER_TYPES: frozenset[str] = frozenset(typing.get_args(BrokerType))
_PRESENCE_TYPES: frozenset[str] = frozenset(typing.get_args(PresenceManagerType))
_NATS_SCHEMES = ("nats://", "tls://")
_CONSUMER_TYPES: tuple[str, ...] = typing.get_args(ConsumerType)
_CONSUMERS_RUN = ("postgresql", "redis_stream", "nats_jetstream")
_CONSUMER_NAME = re.compile(r"^[a-zA-Z0-9_]{2,}$")
_ERROR_MODES: frozenset[str] = frozenset(typing.get_args(ErrorMode))
_PERSISTENCE_SYNC: frozenset[str] = frozenset(typing.get_args(PersistenceSync))


def _check_whole_seconds(value: float, key: str, prefix: str) -> None:
    if round(value * _NS_PER_SECOND) % _NS_PER_SECOND:
        raise ConfigError(
            f"{prefix}malformed duration {format_duration(value)} for {key}, "
            "sub-second precision is not supported for this key"
        )


def _validate_options(opts: ChannelOptions, global_meta_ttl: float, prefix: str) -> None:
    """Rules shared by ``channel.without_namespace`` and each namespace."""
    _check_whole_seconds(opts.history_ttl, "history_ttl", prefix)
    _check_whole_seconds(opts.history_meta_ttl, "history_meta_ttl", prefix)
    if (opts.history_size == 0) != (opts.history_ttl == 0):
        raise ConfigError(f"{prefix}both history size and history ttl required for history")
    meta_ttl = opts.history_meta_ttl or global_meta_ttl
    if opts.history_ttl > 0 and meta_ttl < opts.history_ttl:
        raise ConfigError(
            f"{prefix}history meta ttl ({format_duration(meta_ttl)}) can not be less than "
            f"history ttl ({format_duration(opts.history_ttl)})"
        )
    if opts.force_recovery and not opts.history_enabled:
        raise ConfigError(f"{prefix}both history size and history ttl required for recovery")
    if opts.channel_regex:
        try:
            re.compile(opts.channel_regex)
        except re.error as exc:
            raise ConfigError(f"{prefix}error compiling channel regex: {exc}") from None
    for delta in opts.allowed_delta_types:
        if delta not in _DELTA_TYPES:
            raise ConfigError(f"{prefix}unknown allowed delta type: {delta}")
    if opts.force_recovery_mode not in _RECOVERY_MODES:
        raise ConfigError(f"{prefix}unknown recovery mode: {opts.force_recovery_mode}")
    if opts.publication_data_format not in _DATA_FORMATS:
        raise ConfigError(
            f"{prefix}unknown publication data format: {opts.publication_data_format}"
        )


def _validate_channels(channel: ChannelConfig) -> None:
    _check_whole_seconds(channel.history_meta_ttl, "channel.history_meta_ttl", "")
    if channel.publication_data_format not in _DATA_FORMATS:
        raise ConfigError(f"unknown publication data format: {channel.publication_data_format}")
    _validate_options(channel.without_namespace, channel.history_meta_ttl, "")
    seen: set[str] = set()
    for ns in channel.namespaces:
        if not _NAMESPACE_NAME.match(ns.name):
            raise ConfigError(
                f"namespace {ns.name}: invalid namespace name – {ns.name} "
                f"(must match {_NAMESPACE_NAME.pattern} regular expression)"
            )
        if ns.name in seen:
            raise ConfigError(f"namespace name must be unique: {ns.name}")
        seen.add(ns.name)
        _validate_options(ns, channel.history_meta_ttl, f"namespace {ns.name}: ")


def _validate_token(token: TokenConfig, section: str) -> None:
    if token.user_id_claim and not _USER_ID_CLAIM.match(token.user_id_claim):
        raise ConfigError(
            f"{section}.user_id_claim must match {_USER_ID_CLAIM.pattern} regular expression"
        )
    for plain, regex in (("audience", "audience_regex"), ("issuer", "issuer_regex")):
        if getattr(token, plain) and getattr(token, regex):
            raise ConfigError(f"{section}: can not use both {plain} and {regex}")
        pattern = getattr(token, regex)
        if pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{section}.{regex}: {exc}") from None


def _validate_jwks(token: TokenConfig, section: str) -> None:
    """Centrifugo's start-up checks of ``jwks_public_endpoint`` (``relay/config/jwks.py``)."""
    validate_jwks_endpoint(
        token.jwks_public_endpoint,
        token.issuer_regex,
        token.audience_regex,
        skip_safety_check=token.insecure_skip_jwks_endpoint_safety_check,
        section=section,
    )


def _validate_client(config: Config) -> None:
    client = config.client
    _validate_token(client.token, "client.token")
    _validate_token(client.subscription_token, "client.subscription_token")
    _validate_jwks(client.token, "client.token")
    if client.subscription_token.enabled:  # Centrifugo builds that verifier only then
        _validate_jwks(client.subscription_token, "client.subscription_token")
    personal = client.subscribe_to_user_personal_channel
    if personal.enabled:
        ns_name = personal.personal_channel_namespace
        opts: ChannelOptions | None = config.channel.without_namespace
        if ns_name:
            opts = config.namespace(ns_name)
            if opts is None:
                raise ConfigError(f"namespace for user personal channel not found: {ns_name}")
        if personal.single_connection and not (opts and opts.presence):
            raise ConfigError(
                "presence must be enabled for user personal channel namespace "
                "when single_connection is on"
            )
    # Ping/pong: Centrifugo requires ping_interval > pong_timeout even when one of them is
    # disabled by a negative value. relay keeps that rule but lets both be disabled
    # (both <= 0) at once, which Centrifugo rejects for equal values.
    ping, pong = client.ping_interval, client.pong_timeout
    if ping <= pong and not (ping <= 0 and pong <= 0):
        raise ConfigError(
            f"ping_interval ({format_duration(ping)}) must be greater than "
            f"pong_timeout ({format_duration(pong)})"
        )


def _validate_tls_pems(entity: str, block: TLSConfig, what: str) -> None:
    """A TLS block's PEMs must load (``what``: whose TLS config, in the message)."""
    if not block.enabled:
        return
    if block.server_name and what == "Redis":
        raise ConfigError(f"{entity}.server_name is not implemented by relay: refusing to start")
    for key in ("server_ca_pem", "cert_pem", "key_pem"):
        value = getattr(block, key)
        if value:
            try:
                load_pem(value, f"{entity}.{key}")
            except TLSConfigError as exc:
                raise ConfigError(f"error creating {what} TLS config: {exc}") from None


def _validate_redis(redis: RedisConfig, section: str = "engine.redis") -> None:
    """Every shard address must parse as Centrifugo parses it (its start-up error), and
    be of a kind relay serves (no replica client; cluster shards not mixed with others)."""
    try:
        shards = shard_addresses(redis)
    except ValueError as exc:
        raise ConfigError(f"error processing Redis address: {exc}") from None
    if len({shard.mode == "cluster" for shard in shards}) > 1:
        raise ConfigError(
            f"{section}: Redis Cluster shards cannot be mixed with other Redis shards"
        )
    for shard in shards:
        if shard.replica_client:
            raise ConfigError(
                "replica_client_enabled is not implemented by relay: refusing to start"
            )
    _validate_tls_pems(f"{section}.tls", redis.tls, "Redis")
    _validate_tls_pems(f"{section}.sentinel_tls", redis.sentinel_tls, "Redis")


def _validate_nats(nats: NatsBrokerConfig) -> None:
    """``broker.nats``: every server of the URL (a comma-separated list, as nats.go
    takes it) must be ``nats://`` or ``tls://``, and the TLS PEMs must load."""
    for url in nats.url.split(","):
        url = url.strip()
        if not url.startswith(_NATS_SCHEMES) or len(url) <= len("nats://"):
            raise ConfigError(
                f"error creating broker: broker.nats.url: {url!r} is not a nats:// or "
                "tls:// address"
            )
    _validate_tls_pems("broker.nats.tls", nats.tls, "NATS")


def _consumer_problem(c: ConsumerConfig) -> str:
    """What is wrong with an enabled consumer ("" = nothing): Centrifugo's ``Validate``
    texts, then what relay does not run."""
    if c.type not in _CONSUMERS_RUN:
        return f"{c.type} consumers are not implemented by relay: refusing to start"
    if c.type == "postgresql":
        pg = c.postgresql
        if not pg.dsn:
            return "no Postgres DSN provided"
        if not pg.outbox_table_name:
            return "no Postgres outbox table name provided"
        if pg.num_partitions < 1 or pg.partition_select_limit < 1:
            return "num_partitions and partition_select_limit must be positive"
        return ""
    if c.type == "nats_jetstream":
        js = c.nats_jetstream
        if not js.url:
            return "url is required"
        if not js.stream_name:
            return "stream_name is required"
        if not js.durable_consumer_name:
            return "durable_consumer_name is required for consumer"
        if not js.use_existing_consumer and js.deliver_policy not in ("new", "all"):
            return "deliver_policy must be either 'new' or 'all'"
        if js.publication_data_mode.enabled and not js.publication_data_mode.channels_header:
            return "channels_header is required for publication data mode"
        if js.credentials_file:
            return "credentials_file is not implemented by relay: refusing to start"
        return ""
    rs = c.redis_stream
    if not rs.address and not rs.sentinel_address:
        return "redis address is required"
    if not rs.streams:
        return "streams can't be empty"
    if not rs.consumer_group:
        return "consumer_group is required"
    if rs.publication_data_mode.enabled and not rs.publication_data_mode.channels_value:
        return "channels_value is required when publication data mode is enabled"
    if rs.num_workers < 1:
        return "num_workers must be positive"
    try:
        shards = shard_addresses(rs)
    except ValueError as exc:
        return f"error processing Redis address: {exc}"
    if len(shards) != 1 or shards[0].mode == "cluster":
        return f"expected a single Redis shard, got {len(shards)}"
    return ""


def _validate_consumers(config: Config) -> None:
    """centrifugo ``config/validate.go``: names, uniqueness, types, each enabled one."""
    names: set[str] = set()
    for c in config.consumers:
        if not _CONSUMER_NAME.match(c.name):
            raise ConfigError(
                f"invalid consumer name: {c.name}, must match {_CONSUMER_NAME.pattern} "
                "regular expression"
            )
        if c.name in names:
            raise ConfigError(f"invalid consumer name: {c.name}, must be unique")
        if c.type not in _CONSUMER_TYPES:
            raise ConfigError(f"unknown consumer type: {c.type}")
        problem = _consumer_problem(c) if c.enabled else ""
        if problem:
            raise ConfigError(f"in consumer {c.name} ({c.type}): {problem}")
        names.add(c.name)


def _validate_engines(config: Config) -> None:
    """``engine``, and the ``broker`` / ``presence_manager`` that replace its parts
    (centrifugo ``app/engine.go``: the engine is not made when both are enabled)."""
    if config.engine.type not in _ENGINE_TYPES:
        raise ConfigError(f"unknown engine type: {config.engine.type}")
    broker, presence = config.broker, config.presence_manager
    if config.engine.type == "redis" and not (broker.enabled and presence.enabled):
        _validate_redis(config.engine.redis)
    if broker.enabled:
        if broker.type not in _BROKER_TYPES:
            raise ConfigError(f"unknown broker type: {broker.type}")
        if broker.type == "postgres":
            raise ConfigError(
                "broker.type postgres (the PostgreSQL stream broker) is not implemented "
                "by relay: refusing to start"
            )
        if broker.type == "redis":
            _validate_redis(broker.redis, "broker.redis")
        if broker.type == "nats":
            _validate_nats(broker.nats)
    if presence.enabled:
        if presence.type not in _PRESENCE_TYPES:
            raise ConfigError(f"unknown presence manager type: {presence.type}")
        if presence.type == "redis":
            _validate_redis(presence.redis, "presence_manager.redis")


def _validate_connect_transforms(config: Config) -> None:
    """centrifugo ``config/validate.go``: ``validateCodeToUniDisconnectTransforms`` and
    ``validateConnectCodeTransforms`` (their wording)."""
    uni = config.client.connect_code_to_unidirectional_disconnect
    for i, t in enumerate(uni.transforms):
        if t.code == 0:
            raise ConfigError(f"no code specified in transforms[{i}]")
        if t.to.code == 0:
            raise ConfigError(f"no disconnect code specified in transforms[{i}].to")
        if not t.to.reason.isascii():
            raise ConfigError(f"disconnect reason must be ASCII in transforms[{i}].to")
    for block in (config.uni_sse, config.uni_http_stream):
        for i, h in enumerate(block.connect_code_to_http_response.transforms):
            if h.code == 0:
                raise ConfigError(
                    f"code should be set in connect_code_to_http_status.transforms[{i}]"
                )
            if h.to.status_code == 0:
                raise ConfigError(
                    "status_code should be set in "
                    f"connect_code_to_http_status.transforms[{i}].to_response"
                )


def validate(config: Config) -> None:
    """Check ``config`` like Centrifugo's ``Validate()`` plus its startup-fatal checks.

    Raises :class:`ConfigError` with the first problem found. Messages follow Centrifugo
    where known (namespace name/uniqueness, history size/ttl, engine type); the other
    texts are relay's own wording.
    """
    _validate_channels(config.channel)
    _validate_client(config)
    _validate_connect_transforms(config)
    validate_proxies(config)
    internal_port = config.http_server.internal_port.strip()
    if internal_port and not (internal_port.isdigit() and int(internal_port) <= 65535):
        raise ConfigError(f"http_server.internal_port is not a port number: {internal_port!r}")
    _validate_engines(config)
    _validate_consumers(config)
    persistence = config.engine.memory.persistence
    if persistence.sync not in _PERSISTENCE_SYNC:
        raise ConfigError(f"unknown engine.memory.persistence.sync: {persistence.sync}")
    if persistence.sync_interval <= 0:
        raise ConfigError("engine.memory.persistence.sync_interval must be positive")
    if config.http_api.error_mode not in _ERROR_MODES:
        raise ConfigError(f"unknown http_api.error_mode: {config.http_api.error_mode}")
