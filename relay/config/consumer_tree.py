"""Config of the async consumers (``consumers: [...]``): each turns rows or messages of an
outside source into server API commands.

Part of the typed tree (``config/tree.py`` re-exports every class).
Source: centrifugo ``internal/configtypes/types.go`` (``Consumer``,
``PostgresConsumerConfig``, ``RedisStreamConsumerConfig``, ``NatsJetStreamConsumerConfig``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from relay.config.engine_tree import RedisConfig
from relay.config.proxy_tree import TLSConfig

ConsumerType: TypeAlias = Literal[
    "postgresql",
    "redis_stream",
    "kafka",
    "nats_jetstream",
    "google_pub_sub",
    "aws_sqs",
    "azure_service_bus",
]
"""``consumers[].type`` (relay runs ``postgresql``, ``redis_stream`` and
``nats_jetstream``; an enabled consumer of another type stops the start)."""


@dataclass(frozen=True)
class PostgresConsumerConfig:
    dsn: str = ""
    """PostgreSQL connection string (``postgres://user:pass@host:5432/db``). Required."""
    outbox_table_name: str = ""
    """The outbox table (``id``, ``method``, ``payload``, ``partition``). Required."""
    num_partitions: int = 1
    """Partitions of the table, each read in order by one task (default 1)."""
    partition_select_limit: int = 100
    """Rows read per partition per transaction (default 100)."""
    partition_poll_interval: float = 0.3
    """Pause of a partition that had fewer rows than the limit (default 300ms)."""
    partition_notification_channel: str = ""
    """LISTEN to this channel: a NOTIFY with a partition number wakes that partition."""
    partition_notification_dsn: str = ""
    """Connection string of the LISTEN connection ("" = ``dsn``)."""
    tls: TLSConfig = field(default_factory=TLSConfig)
    """TLS to PostgreSQL."""
    use_try_lock: bool = False
    """``pg_try_advisory_xact_lock``: a partition locked by another node is skipped."""


@dataclass(frozen=True)
class RedisStreamPublicationDataModeConfig:
    enabled: bool = False
    """The payload is publication data for the channels named by ``channels_value``."""
    channels_value: str = "centrifugo-channels"
    """Field with the comma-separated channels."""
    idempotency_key_value: str = "centrifugo-idempotency-key"
    """Field with the idempotency key."""
    delta_value: str = "centrifugo-delta"
    """Field with ``delta`` (a Go boolean: ``true``, ``1``, ``f``...)."""
    version_value: str = "centrifugo-version"
    """Field with the publication version."""
    version_epoch_value: str = "centrifugo-version-epoch"
    """Field with the version epoch."""
    tags_value_prefix: str = "centrifugo-tag-"
    """Fields with this prefix are tags (the prefix removed)."""


@dataclass(frozen=True)
class RedisStreamConsumerConfig(RedisConfig):
    """The Redis connection keys (``address``, ``password``, ``tls``...) plus these."""

    streams: tuple[str, ...] = ()
    """Stream keys to consume. Required."""
    consumer_group: str = ""
    """Consumer group (created at ``$`` with MKSTREAM when missing). Required."""
    visibility_timeout: float = 30.0
    """A message not acknowledged within this time is claimed again (default 30s)."""
    num_workers: int = 1
    """Messages processed at once per stream (default 1)."""
    payload_value: str = "payload"
    """Field with the command (or publication data)."""
    method_value: str = "method"
    """Field with the API method ("" field or value: the payload is ``{method, payload}``)."""
    publication_data_mode: RedisStreamPublicationDataModeConfig = field(
        default_factory=RedisStreamPublicationDataModeConfig
    )
    """Treat the payload as publication data."""


@dataclass(frozen=True)
class NatsJetStreamPublicationDataModeConfig:
    enabled: bool = False
    """The message data is publication data for the channels in ``channels_header``."""
    channels_header: str = "centrifugo-channels"
    """Header with the comma-separated channels."""
    idempotency_key_header: str = "centrifugo-idempotency-key"
    """Header with the idempotency key."""
    delta_header: str = "centrifugo-delta"
    """Header with ``delta`` (a Go boolean)."""
    version_header: str = "centrifugo-version"
    """Header with the publication version."""
    version_epoch_header: str = "centrifugo-version-epoch"
    """Header with the version epoch."""
    tags_header_prefix: str = "centrifugo-tag-"
    """Headers with this prefix are tags (the prefix removed)."""


@dataclass(frozen=True)
class NatsJetStreamConsumerConfig:
    url: str = "nats://127.0.0.1:4222"
    """NATS server URL (default ``nats://127.0.0.1:4222``)."""
    credentials_file: str = ""
    """A NATS credentials file (user JWT and seed)."""
    username: str = ""
    """User name (when there is no credentials file)."""
    password: str = ""
    """Password of ``username``."""
    token: str = ""
    """Token (when there is neither a credentials file nor a user name)."""
    stream_name: str = ""
    """The JetStream stream to consume. Required."""
    use_existing_consumer: bool = False
    """Bind to ``durable_consumer_name`` as it exists instead of creating or updating it."""
    subjects: tuple[str, ...] = ()
    """Subjects of the stream to consume (all when empty)."""
    durable_consumer_name: str = ""
    """The durable consumer shared by every node. Required."""
    deliver_policy: str = "new"
    """Where a new consumer starts: ``new`` or ``all``."""
    max_ack_pending: int = 100
    """Messages delivered and not acknowledged at most (default 100)."""
    method_header: str = "centrifugo-method"
    """Header with the API method (none: the data is a ``{method, payload}`` envelope)."""
    publication_data_mode: NatsJetStreamPublicationDataModeConfig = field(
        default_factory=NatsJetStreamPublicationDataModeConfig
    )
    """Treat the data as publication data."""
    tls: TLSConfig = field(default_factory=TLSConfig)
    """TLS to NATS."""


@dataclass(frozen=True)
class ConsumerConfig:
    name: str = ""
    """Unique name (``^[a-zA-Z0-9_]{2,}$``), the ``consumer_name`` label of the metrics."""
    enabled: bool = False
    """Run this consumer."""
    type: str = ""
    """``postgresql``, ``redis_stream`` or ``nats_jetstream`` (checked by validate)."""
    postgresql: PostgresConsumerConfig = field(default_factory=PostgresConsumerConfig)
    """The outbox table consumer."""
    redis_stream: RedisStreamConsumerConfig = field(default_factory=RedisStreamConsumerConfig)
    """The Redis Streams consumer."""
    nats_jetstream: NatsJetStreamConsumerConfig = field(default_factory=NatsJetStreamConsumerConfig)
    """The NATS JetStream consumer."""
