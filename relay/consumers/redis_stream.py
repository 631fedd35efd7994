"""The Redis Streams consumer (``type: redis_stream``).

Per stream: the consumer group is created at ``$`` (with MKSTREAM) when missing, this
node reads new entries as consumer ``<node id>`` (XREADGROUP), runs each entry's command
and acknowledges it (XACK) only when it ran; an entry whose command failed with 100 stays
pending and is claimed again (XAUTOCLAIM, every 5 s) once it has been idle for
``visibility_timeout``, by this node or another of the group. Entries are not deleted
(as in Centrifugo: trim the stream with MAXLEN when adding).

The entry's ``payload_value`` field holds the command (with the method in
``method_value``, else a ``{"method", "payload"}`` envelope); with
``publication_data_mode`` it holds publication data for the channels in
``channels_value``, with idempotency key, delta, version, version epoch and
``tags_value_prefix`` fields beside.
Source: centrifugo ``internal/consuming/redis_stream.go``, ``internal/redisqueue``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from relay.config.consumer_tree import RedisStreamConsumerConfig
from relay.config.redis_address import shard_addresses
from relay.consumers import base
from relay.consumers.base import Backoff, ConsumerBase, PublicationFields
from relay.consumers.dispatch import Dispatcher, Retry
from relay.engines.redis.shard import REDIS_FAILURES

if TYPE_CHECKING:
    from relay.engines.redis.shard import Shard
    from relay.metrics import Metrics

__all__ = ["RedisStreamConsumer", "publication_params"]

log = logging.getLogger("relay.consumers")

RECLAIM_INTERVAL = 5.0


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def publication_params(
    cfg: RedisStreamConsumerConfig, fields: dict[str, str]
) -> tuple[list[str], dict[str, Any]]:
    """The channels and publish fields of a publication-data entry (a field present but
    empty does not parse, as in Centrifugo)."""
    mode = cfg.publication_data_mode
    names = PublicationFields(mode.channels_value, mode.idempotency_key_value,
                              mode.delta_value, mode.version_value, mode.version_epoch_value,
                              mode.tags_value_prefix)  # fmt: skip
    return base.publication_params(fields, names, empty_is_absent=False)


class RedisStreamConsumer(ConsumerBase):
    def __init__(
        self,
        name: str,
        cfg: RedisStreamConsumerConfig,
        dispatcher: Dispatcher,
        metrics: Metrics,
        node_id: str,
    ) -> None:
        super().__init__(name, metrics)
        self.cfg = cfg
        self.dispatcher = dispatcher
        self.node_id = node_id
        self._shard: Shard | None = None

    async def run(self) -> None:
        from relay.engines.redis.shard import Shard

        self._shard = Shard(0, shard_addresses(self.cfg)[0], self.cfg)
        try:
            await asyncio.gather(*(self._stream(s) for s in self.cfg.streams))
        finally:
            await self._shard.close()

    async def _stream(self, stream: str) -> None:
        """Create the group, then read and reclaim, retrying every failure for ever."""
        backoff = Backoff()
        reclaim_due = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._ensure_group(stream)
                while True:
                    if loop.time() >= reclaim_due:
                        reclaim_due = loop.time() + RECLAIM_INTERVAL
                        await self._reclaim(stream)
                    await self._read(stream)
                    backoff.reset()
            except REDIS_FAILURES as exc:
                self.failed("error from consumer", exc, f"stream {stream}")
                await backoff.pause()

    async def _ensure_group(self, stream: str) -> None:
        assert self._shard is not None
        try:
            await self._shard.client.xgroup_create(
                stream, self.cfg.consumer_group, id="$", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _block_ms(self) -> int:
        """XREADGROUP's BLOCK: 5 s as Centrifugo, inside the command timeout."""
        return max(100, min(5000, int(self.cfg.io_timeout * 1000) - 500))

    async def _read(self, stream: str) -> None:
        assert self._shard is not None
        reply: Any = await self._shard.client.xreadgroup(
            self.cfg.consumer_group, self.node_id, {stream: ">"},
            count=self.cfg.num_workers, block=self._block_ms(),
        )  # fmt: skip
        for _name, entries in reply or ():
            await self._process_all(stream, entries)

    async def _reclaim(self, stream: str) -> None:
        """Entries pending longer than ``visibility_timeout``: this node takes them."""
        if self.cfg.visibility_timeout <= 0:
            return
        assert self._shard is not None
        start = "0-0"
        while True:
            reply: Any = await self._shard.client.xautoclaim(
                stream, self.cfg.consumer_group, self.node_id,
                min_idle_time=int(self.cfg.visibility_timeout * 1000), start_id=start,
                count=max(10, self.cfg.num_workers),
            )  # fmt: skip
            start, entries = _text(reply[0]), reply[1]
            await self._process_all(stream, [e for e in entries if e and e[1] is not None])
            if start == "0-0":
                return

    async def _process_all(self, stream: str, entries: list[Any]) -> None:
        """``num_workers`` entries at once; each is acknowledged when its command ran."""
        await asyncio.gather(*(self._process(stream, entry) for entry in entries))

    async def _process(self, stream: str, entry: Any) -> None:
        assert self._shard is not None
        entry_id, raw = entry
        fields = {_text(k): _text(v) for k, v in (raw or {}).items()}
        try:
            await self._dispatch(fields)
        except (Retry, ValueError) as exc:  # stays pending: claimed again after the timeout
            self.failed("error processing redis stream message", exc, f"stream {stream}")
            return
        self.metrics.consumer_done(self.name, processed=1)
        try:
            await self._shard.client.xack(stream, self.cfg.consumer_group, entry_id)
        except REDIS_FAILURES as exc:
            self.failed("error acknowledging message", exc, f"stream {stream}")

    async def _dispatch(self, fields: dict[str, str]) -> None:
        data = fields.get(self.cfg.payload_value)
        if data is None:
            log.error("consumer %s: payload value %r not found in redis stream message",
                      self.name, self.cfg.payload_value)  # fmt: skip
            return
        if self.cfg.publication_data_mode.enabled:
            channels, params = publication_params(self.cfg, fields)
            if not channels:
                log.info("consumer %s: no channels found, skipping message", self.name)
                return
            await self.dispatcher.publication(channels, data.encode(), params)
            return
        method = fields.get(self.cfg.method_value, "") if self.cfg.method_value else ""
        await self.dispatcher.command(method, data.encode())
