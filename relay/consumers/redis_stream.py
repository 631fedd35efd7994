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
from relay.consumers.backoff import next_backoff
from relay.consumers.dispatch import Dispatcher, Retry
from relay.engines.redis.shard import REDIS_FAILURES

if TYPE_CHECKING:
    from relay.engines.redis.shard import Shard
    from relay.metrics import Metrics

__all__ = ["RedisStreamConsumer", "publication_params"]

log = logging.getLogger("relay.consumers")

RECLAIM_INTERVAL = 5.0
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def publication_params(cfg: RedisStreamConsumerConfig, fields: dict[str, str]) -> tuple[
    list[str], dict[str, Any]
]:  # fmt: skip
    """The channels and the publish fields of a publication-data entry (``ValueError``
    for a delta or version that does not parse, as Go's ``strconv`` refuses it)."""
    mode = cfg.publication_data_mode
    channels = [c for c in fields.get(mode.channels_value, "").split(",") if c]
    params: dict[str, Any] = {}
    key = fields.get(mode.idempotency_key_value, "") if mode.idempotency_key_value else ""
    if key:
        params["idempotency_key"] = key
    delta = fields.get(mode.delta_value) if mode.delta_value else None
    if delta is not None:
        if delta not in _TRUE + _FALSE:
            raise ValueError(f"error parsing delta property {mode.delta_value!r}")
        if delta in _TRUE:
            params["delta"] = True
    version = fields.get(mode.version_value) if mode.version_value else None
    if version is not None:
        if not version.isdigit():
            raise ValueError(f"error parsing version property {mode.version_value!r}")
        params["version"] = int(version)
    epoch = fields.get(mode.version_epoch_value, "") if mode.version_epoch_value else ""
    if epoch:
        params["version_epoch"] = epoch
    prefix = mode.tags_value_prefix
    tags = {k[len(prefix) :]: v for k, v in fields.items() if prefix and k.startswith(prefix)}
    if tags:
        params["tags"] = tags
    return channels, params


class RedisStreamConsumer:
    def __init__(
        self,
        name: str,
        cfg: RedisStreamConsumerConfig,
        dispatcher: Dispatcher,
        metrics: Metrics,
        node_id: str,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.node_id = node_id
        self._shard: Shard | None = None

    def _failed(self, what: str, exc: BaseException, stream: str) -> None:
        self.metrics.consumer_done(self.name, errors=1)
        log.error("consumer %s: %s (stream %s): %s", self.name, what, stream,
                  exc or type(exc).__name__)  # fmt: skip

    async def run(self) -> None:
        from relay.engines.redis.shard import Shard

        self._shard = Shard(0, shard_addresses(self.cfg)[0], self.cfg)
        try:
            await asyncio.gather(*(self._stream(s) for s in self.cfg.streams))
        finally:
            await self._shard.close()

    async def _stream(self, stream: str) -> None:
        """Create the group, then read and reclaim, retrying every failure for ever."""
        backoff, retries = 0.0, 0
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
                    retries, backoff = 0, 0.0
            except REDIS_FAILURES as exc:
                retries += 1
                backoff = next_backoff(backoff, retries)
                self._failed("error from consumer", exc, stream)
                await asyncio.sleep(backoff)

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
            self._failed("error processing redis stream message", exc, stream)
            return
        self.metrics.consumer_done(self.name, processed=1)
        try:
            await self._shard.client.xack(stream, self.cfg.consumer_group, entry_id)
        except REDIS_FAILURES as exc:
            self._failed("error acknowledging message", exc, stream)

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
