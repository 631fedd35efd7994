"""The PostgreSQL outbox consumer (``type: postgresql``): the transactional outbox.

The application inserts rows into its outbox table in the same transaction as its own
writes; each of ``num_partitions`` tasks reads its partition in ``id`` order, runs each
row's command and deletes the rows it ran, in one transaction that holds the
partition's advisory lock (so several nodes share a table without running a row twice).
An internal error (100) stops the batch: the rows before it are deleted, the row and the
ones after it stay and are retried with backoff. ``partition_notification_channel``
wakes a partition on ``NOTIFY <channel>, '<partition>'`` instead of waiting for the poll.

Centrifugo's layout (any columns may follow)::

    CREATE TABLE centrifugo_outbox (
        id BIGSERIAL PRIMARY KEY, method text NOT NULL, payload JSONB NOT NULL,
        partition INTEGER NOT NULL default 0,
        created_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP NOT NULL);

Unlike Centrifugo (which exits when PostgreSQL is unreachable at start), relay keeps
connecting; every failure is logged and counted in ``centrifugo_consumers_errors_total``.
Source: centrifugo ``internal/consuming/postgresql.go``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any

from relay.config.consumer_tree import PostgresConsumerConfig
from relay.consumers.base import Backoff, ConsumerBase
from relay.consumers.dispatch import Dispatcher, Retry

if TYPE_CHECKING:
    from relay.metrics import Metrics

__all__ = ["PostgresConsumer"]

log = logging.getLogger("relay.consumers")


class _LockBusy(Exception):
    """``use_try_lock``: another node holds the partition."""


def _payload(value: Any) -> bytes:
    """A ``payload`` column as bytes (``jsonb``/``json``/``text`` come as str)."""
    return value.encode() if isinstance(value, str) else bytes(value)


class PostgresConsumer(ConsumerBase):
    def __init__(
        self,
        name: str,
        cfg: PostgresConsumerConfig,
        dispatcher: Dispatcher,
        metrics: Metrics,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(name, metrics)
        self.cfg = cfg
        self.dispatcher = dispatcher
        self._tls = tls
        self._lock_prefix = f"centrifugo_partition_lock_{name}"
        self._wake = [asyncio.Event() for _ in range(cfg.num_partitions)]
        self._pool: Any = None

    async def run(self) -> None:
        """Connect (retrying for ever), then run every partition and the listener."""
        import asyncpg

        backoff = Backoff()
        while self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self.cfg.dsn, min_size=1, max_size=self.cfg.num_partitions + 1,
                    ssl=self._tls, timeout=10,
                )  # fmt: skip
            except Exception as exc:
                self.failed("cannot connect to PostgreSQL", exc)
                await backoff.pause()
        log.info("consumer %s: reading outbox %s", self.name, self.cfg.outbox_table_name)
        tasks = [self._partition(i) for i in range(self.cfg.num_partitions)]
        if self.cfg.partition_notification_channel:
            tasks.append(self._listen())
        try:
            await asyncio.gather(*tasks)
        finally:
            await self._pool.close()

    async def _partition(self, partition: int) -> None:
        backoff = Backoff()
        limit = self.cfg.partition_select_limit
        while True:
            try:
                done = await self._process_once(partition)
            except _LockBusy:
                await self._pause(partition)
                continue
            except Exception as exc:  # the database, or a command to retry (Retry)
                self.failed("error processing postgresql outbox", exc, f"partition {partition}")
                await backoff.pause()
                continue
            backoff.reset()
            if done < limit:
                await self._pause(partition)

    async def _pause(self, partition: int) -> None:
        """Until the poll interval passes or a NOTIFY names the partition."""
        wake = self._wake[partition]
        try:
            async with asyncio.timeout(self.cfg.partition_poll_interval):
                await wake.wait()
        except TimeoutError:
            pass
        wake.clear()

    async def _process_once(self, partition: int) -> int:
        """One transaction: lock, read up to the limit, run, delete what ran."""
        table = self.cfg.outbox_table_name
        failure: Retry | None = None
        done: list[int] = []
        async with self._pool.acquire() as conn, conn.transaction(isolation="read_committed"):
            lock = f"{self._lock_prefix}{partition}"
            if self.cfg.use_try_lock:
                if not await conn.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", lock):
                    raise _LockBusy
            else:
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", lock)
            rows = await conn.fetch(
                f"SELECT id, method, payload, partition FROM {table} "
                "WHERE partition=$1 ORDER BY id ASC LIMIT $2",
                partition, self.cfg.partition_select_limit,
            )  # fmt: skip
            for row in rows:
                try:
                    await self.dispatcher.command(row["method"] or "", _payload(row["payload"]))
                except Retry as exc:
                    failure = exc
                    break
                done.append(row["id"])
            if done:
                await conn.execute(f"DELETE FROM {table} WHERE id = ANY($1)", done)
        if done:
            self.metrics.consumer_done(self.name, processed=len(done))
        if failure is not None:
            raise failure
        return len(done)

    async def _listen(self) -> None:
        """LISTEN on its own connection; reconnect a second after it is lost."""
        import asyncpg

        channel = self.cfg.partition_notification_channel
        dsn = self.cfg.partition_notification_dsn or self.cfg.dsn
        while True:
            try:
                conn = await asyncpg.connect(dsn, ssl=self._tls, timeout=10)
            except Exception as exc:
                self.failed("error listening outbox notifications", exc)
                await asyncio.sleep(1)
                continue
            try:
                await conn.add_listener(channel, self._on_notify)
                while not conn.is_closed():
                    await asyncio.sleep(1)
                    await conn.execute("SELECT 1")  # notices a dead connection
            except Exception as exc:
                self.failed("error listening outbox notifications", exc)
            finally:
                if not conn.is_closed():
                    await conn.close()
            await asyncio.sleep(1)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            partition = int(payload)
        except ValueError:
            log.error("consumer %s: error converting postgresql notification", self.name)
            return
        if not 0 <= partition < len(self._wake):
            log.error("consumer %s: outbox partition %d is out of range", self.name, partition)
            return
        self._wake[partition].set()
