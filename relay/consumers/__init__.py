"""Async consumers (``consumers: [...]``): outside sources turned into API commands.

Each enabled consumer runs as one task in the node's first worker (one per node, as
Centrifugo runs them per node; several nodes share a source safely: advisory locks for
the outbox table, the consumer group for Redis Streams). A consumer never stops on a
failure of its source: it logs, counts ``centrifugo_consumers_errors_total`` and retries
with backoff; ``centrifugo_consumers_messages_processed_total`` counts what ran.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Protocol

from relay.consumers.dispatch import Dispatcher

if TYPE_CHECKING:
    from relay.api import Executor
    from relay.config import Config
    from relay.config.consumer_tree import ConsumerConfig
    from relay.config.proxy_tree import TLSConfig
    from relay.metrics import Metrics

__all__ = ["Consumers"]

log = logging.getLogger("relay.consumers")


class _Consumer(Protocol):
    name: str

    async def run(self) -> None: ...


def _tls(block: TLSConfig, entity: str) -> ssl.SSLContext | None:
    from relay.transports.tls import client_context

    return client_context(block, entity) if block.enabled else None


def _make(c: ConsumerConfig, dispatcher: Dispatcher, metrics: Metrics, node_id: str) -> _Consumer:
    """The consumer of an enabled ``consumers[]`` entry (validate refused other types)."""
    entity = f"consumers.{c.name}.{c.type}.tls"
    if c.type == "postgresql":
        from relay.consumers.postgresql import PostgresConsumer

        return PostgresConsumer(c.name, c.postgresql, dispatcher, metrics,
                                _tls(c.postgresql.tls, entity))  # fmt: skip
    if c.type == "nats_jetstream":
        from relay.consumers.nats_jetstream import NatsJetStreamConsumer

        return NatsJetStreamConsumer(c.name, c.nats_jetstream, dispatcher, metrics,
                                     _tls(c.nats_jetstream.tls, entity))  # fmt: skip
    from relay.consumers.redis_stream import RedisStreamConsumer

    return RedisStreamConsumer(c.name, c.redis_stream, dispatcher, metrics, node_id)


class Consumers:
    """The node's enabled consumers, started and stopped with the worker."""

    def __init__(self, config: Config, executor: Executor, node_id: str) -> None:
        self._consumers: list[_Consumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        dispatcher = Dispatcher(executor)
        metrics = executor.node.metrics
        for c in config.consumers:
            if not c.enabled:
                log.info("consumer %s (%s) is not enabled, skip", c.name, c.type)
                continue
            metrics.consumer_started(c.name)
            self._consumers.append(_make(c, dispatcher, metrics, node_id))

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for consumer in self._consumers:
            log.info("running consumer %s", consumer.name)
            self._tasks.append(loop.create_task(self._run(consumer)))

    @staticmethod
    async def _run(consumer: _Consumer) -> None:
        try:
            await consumer.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug: say so loudly (a source's failures are retried inside)
            log.exception("consumer %s stopped", consumer.name)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
