"""Config of the engines: ``engine.type``, ``engine.redis``, relay's own
``engine.memory`` (persistence), and the standalone ``broker`` / ``presence_manager``
that replace the engine's broker or presence manager.

Part of the typed tree (``config/tree.py`` re-exports every class).
Source: centrifugo ``internal/configtypes/types.go`` (``Redis``, ``NatsBroker``) and
``engine.go`` (``Broker``, ``PresenceManager``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from relay.config.proxy_tree import TLSConfig

EngineType: TypeAlias = Literal["memory", "redis"]
"""``engine.type``."""
BrokerType: TypeAlias = Literal["memory", "redis", "nats", "postgres"]
"""``broker.type`` (``postgres`` is Centrifugo's PostgreSQL stream broker: refused)."""
PresenceManagerType: TypeAlias = Literal["memory", "redis"]
"""``presence_manager.type``."""
PersistenceSync: TypeAlias = Literal["interval", "always", "none"]
"""``engine.memory.persistence.sync`` (relay's own key)."""


@dataclass(frozen=True)
class RedisConfig:
    address: tuple[str, ...] = ("redis://127.0.0.1:6379",)
    """Redis URL(s); several are independent shards (default ``redis://127.0.0.1:6379``)."""
    prefix: str = "centrifugo"
    """Prefix of every Redis key and channel (default ``centrifugo``)."""
    connect_timeout: float = 1.0
    """Redis connect timeout (default 1s)."""
    io_timeout: float = 4.0
    """Timeout of every Redis command (default 4s)."""
    db: int = 0
    """Redis database number."""
    user: str = ""
    """Redis ACL user name."""
    password: str = ""
    """Redis password."""
    client_name: str = ""
    """Connection name (``CLIENT SETNAME``)."""
    force_resp2: bool = False
    """Use RESP2 instead of RESP3. Not implemented by relay (warns when set)."""
    cluster_address: tuple[str, ...] = ()
    """Redis Cluster shards: each entry a comma-separated list of seed ``host:port`` of one
    cluster (keys and PUB/SUB channels then tag the channel: ``{ch}``)."""
    sentinel_address: tuple[str, ...] = ()
    """Redis Sentinel shards: each entry a comma-separated list of sentinel ``host:port``
    (the master is found through them and followed on failover)."""
    sentinel_master_name: str = ""
    """Sentinel master name (required with ``sentinel_address``)."""
    sentinel_user: str = ""
    """ACL user name for the sentinels."""
    sentinel_password: str = ""
    """Password of the sentinels."""
    sentinel_client_name: str = ""
    """Connection name relay gives its sentinel connections."""
    sentinel_tls: TLSConfig = field(default_factory=TLSConfig)
    """TLS to the sentinels (``server_ca_pem``, ``insecure_skip_verify``, client cert)."""
    tls: TLSConfig = field(default_factory=TLSConfig)
    """TLS to every Redis server (``server_ca_pem``, ``insecure_skip_verify``,
    ``cert_pem``/``key_pem`` as a client certificate)."""
    history_use_lists: bool = False
    """Keep history in lists instead of streams. Not implemented by relay (warns when set)."""
    presence_ttl: float = 60.0
    """How long a presence entry lives without refresh (default 60s)."""
    presence_hash_field_ttl: bool = False
    """Use hash field TTLs for presence (Redis >= 7.4).
    Not implemented by relay (warns when set)."""
    presence_user_mapping: bool = False
    """Keep a user -> connections mapping for presence stats.
    Not implemented by relay (warns when set)."""


@dataclass(frozen=True)
class PersistenceConfig:
    """relay's own keys: the memory engine's history on local disk (``engines/store.py``)."""

    dir: str = ""
    """Directory of the history logs ("" = off: history lives in memory only, as in
    Centrifugo); each worker writes ``<dir>/worker-<id>/``. Ignored by the Redis engine."""
    sync: PersistenceSync = "interval"
    """When the log is fsynced: ``interval`` (every ``sync_interval``), ``always``
    (before each publish or batch is answered) or ``none`` (left to the OS)."""
    sync_interval: float = 1.0
    """fsync period of ``sync: interval`` (default 1s)."""


@dataclass(frozen=True)
class MemoryEngineConfig:
    """relay's own keys of the memory engine."""

    persistence: PersistenceConfig = field(default_factory=PersistenceConfig)
    """Keep history streams (epochs, offsets, publications, idempotency) on disk."""


@dataclass(frozen=True)
class EngineConfig:
    type: EngineType = "memory"
    """Engine: ``memory`` (default) or ``redis``."""
    redis: RedisConfig = field(default_factory=RedisConfig)
    """Options of the Redis engine."""
    memory: MemoryEngineConfig = field(default_factory=MemoryEngineConfig)
    """relay's own key: options of the memory engine (persistence)."""


@dataclass(frozen=True)
class NatsRawModeConfig:
    enabled: bool = False
    """Raw mode: subscribe and publish to NATS subjects named by the channel (plus
    ``prefix``) and pass payloads through untouched (no tags, info, join/leave)."""
    channel_replacements: tuple[tuple[str, str], ...] = ()
    """Substrings replaced in a channel name to make its subject (``{":": "."}``)."""
    prefix: str = ""
    """Prefix of the subjects in raw mode (stripped from incoming subjects)."""


@dataclass(frozen=True)
class NatsBrokerConfig:
    url: str = "nats://localhost:4222"
    """NATS server URL (default ``nats://localhost:4222``)."""
    prefix: str = "centrifugo"
    """Prefix of every NATS subject (default ``centrifugo``)."""
    dial_timeout: float = 1.0
    """Connect timeout (default 1s)."""
    write_timeout: float = 1.0
    """Flush timeout of a write (default 1s)."""
    tls: TLSConfig = field(default_factory=TLSConfig)
    """TLS to the NATS server."""
    allow_wildcards: bool = False
    """Allow subscriptions to channels with NATS wildcards (``*``, ``>``)."""
    raw_mode: NatsRawModeConfig = field(default_factory=NatsRawModeConfig)
    """Raw NATS subjects and payloads."""


@dataclass(frozen=True)
class BrokerConfig:
    """A standalone broker used instead of the engine's (Centrifugo's ``broker``)."""

    enabled: bool = False
    """Use this broker instead of the engine's."""
    type: BrokerType = "memory"
    """``memory``, ``redis`` or ``nats`` (``postgres`` is not implemented: refused)."""
    redis: RedisConfig = field(default_factory=RedisConfig)
    """Options of the ``redis`` broker (the ``engine.redis`` keys)."""
    nats: NatsBrokerConfig = field(default_factory=NatsBrokerConfig)
    """Options of the ``nats`` broker (no history: history and recovery answer 108)."""


@dataclass(frozen=True)
class PresenceManagerConfig:
    """A standalone presence manager used instead of the engine's."""

    enabled: bool = False
    """Use this presence manager instead of the engine's."""
    type: PresenceManagerType = "memory"
    """``memory`` or ``redis``."""
    redis: RedisConfig = field(default_factory=RedisConfig)
    """Options of the ``redis`` presence manager (the ``engine.redis`` keys)."""
