"""The NATS JetStream consumer (``type: nats_jetstream``).

A durable pull consumer on ``stream_name`` (created or updated with ``subjects``,
``deliver_policy``, a 30 s ack wait and ``max_ack_pending``; or, with
``use_existing_consumer``, bound as it exists), shared by every node. Each message's
command (method in ``method_header``, else a ``{method, payload}`` envelope), or with
``publication_data_mode`` its publication data for the channels in ``channels_header``,
is run; the message is acknowledged when it ran and NAKed with backoff when it failed with
100 (redelivered by the server).

When the stream or the consumer goes away (deleted, or the server lost its state) the
consumer is created again as soon as it can be, retrying with backoff for ever and
counting each failure; NATS itself is reconnected by the client library.
Source: centrifugo ``internal/consuming/nats_jetstream.go``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any

from relay.config.consumer_tree import NatsJetStreamConsumerConfig
from relay.consumers.backoff import next_backoff
from relay.consumers.dispatch import Dispatcher, Retry

if TYPE_CHECKING:
    from relay.metrics import Metrics

__all__ = ["NatsJetStreamConsumer", "header_params"]

log = logging.getLogger("relay.consumers")

_ACK_WAIT = 30.0
_FETCH_TIMEOUT = 5.0
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def header_params(cfg: NatsJetStreamConsumerConfig, headers: dict[str, str]) -> tuple[
    list[str], dict[str, Any]
]:  # fmt: skip
    """The channels and publish fields of a publication-data message; a delta or version
    header that does not parse is ``ValueError`` (the message is skipped)."""
    mode = cfg.publication_data_mode

    def get(name: str) -> str:
        return headers.get(name, "") if name else ""

    channels = [c for c in get(mode.channels_header).split(",") if c]
    params: dict[str, Any] = {}
    if get(mode.idempotency_key_header):
        params["idempotency_key"] = get(mode.idempotency_key_header)
    delta = get(mode.delta_header)
    if delta:
        if delta not in _TRUE + _FALSE:
            raise ValueError(f"error parsing header {mode.delta_header!r}")
        if delta in _TRUE:
            params["delta"] = True
    version = get(mode.version_header)
    if version:
        if not version.isdigit():
            raise ValueError(f"error parsing header {mode.version_header!r}")
        params["version"] = int(version)
    if get(mode.version_epoch_header):
        params["version_epoch"] = get(mode.version_epoch_header)
    prefix = mode.tags_header_prefix
    tags = {k[len(prefix) :]: v for k, v in headers.items() if prefix and k.startswith(prefix)}
    if tags:
        params["tags"] = tags
    return channels, params


class NatsJetStreamConsumer:
    def __init__(
        self,
        name: str,
        cfg: NatsJetStreamConsumerConfig,
        dispatcher: Dispatcher,
        metrics: Metrics,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.dispatcher = dispatcher
        self.metrics = metrics
        self._tls = tls

    def _failed(self, what: str, exc: BaseException | str) -> None:
        self.metrics.consumer_done(self.name, errors=1)
        log.error("consumer %s: %s: %s", self.name, what, exc or type(exc).__name__)

    async def run(self) -> None:
        import nats

        cfg = self.cfg
        auth: dict[str, Any] = {}
        if cfg.username:
            auth = {"user": cfg.username, "password": cfg.password}
        elif cfg.token:
            auth = {"token": cfg.token}
        backoff, retries = 0.0, 0
        while True:
            try:
                nc = await nats.connect(
                    servers=[u.strip() for u in cfg.url.split(",") if u.strip()],
                    max_reconnect_attempts=-1, tls=self._tls, name=f"relay consumer {self.name}",
                    **auth,
                )  # fmt: skip
                break
            except Exception as exc:
                retries += 1
                backoff = next_backoff(backoff, retries)
                self._failed("cannot connect to NATS", exc)
                await asyncio.sleep(backoff)
        try:
            await self._consume(nc)
        finally:
            await nc.close()

    async def _consume(self, nc: Any) -> None:
        """(Re)create the consumer and pull from it, for ever."""
        from nats.errors import TimeoutError as NatsTimeout

        js = nc.jetstream()
        backoff, retries = 0.0, 0
        while True:
            try:
                sub = await self._subscription(js)
                log.info("consumer %s: consuming %s", self.name, self.cfg.stream_name)
                retries, backoff = 0, 0.0
                while True:
                    try:
                        msgs = await sub.fetch(self.cfg.max_ack_pending, timeout=_FETCH_TIMEOUT)
                    except (TimeoutError, NatsTimeout):
                        await self._check_consumer(js)  # a silent deletion shows here
                        continue
                    for msg in msgs:
                        await self._process(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # stream or consumer gone, NATS away: start again
                retries += 1
                backoff = next_backoff(backoff, retries)
                self._failed("consumer unavailable, creating it again", exc)
                await asyncio.sleep(backoff)

    async def _subscription(self, js: Any) -> Any:
        from nats.js.api import ConsumerConfig, DeliverPolicy

        cfg = self.cfg
        if not cfg.use_existing_consumer:
            subjects = list(cfg.subjects)
            await js.add_consumer(
                cfg.stream_name,
                ConsumerConfig(
                    name=cfg.durable_consumer_name,
                    durable_name=cfg.durable_consumer_name,
                    deliver_policy=DeliverPolicy.ALL
                    if cfg.deliver_policy == "all"
                    else DeliverPolicy.NEW,
                    ack_wait=_ACK_WAIT,
                    max_ack_pending=cfg.max_ack_pending,
                    filter_subject=subjects[0] if len(subjects) == 1 else None,
                    filter_subjects=subjects if len(subjects) > 1 else None,
                ),
            )
        return await js.pull_subscribe_bind(
            durable=cfg.durable_consumer_name, stream=cfg.stream_name
        )

    async def _check_consumer(self, js: Any) -> None:
        """Raises when the consumer (or its stream) no longer exists."""
        await js.consumer_info(self.cfg.stream_name, self.cfg.durable_consumer_name)

    async def _process(self, msg: Any) -> None:
        headers = dict(msg.headers or {})
        try:
            if self.cfg.publication_data_mode.enabled:
                try:
                    channels, params = header_params(self.cfg, headers)
                except ValueError as exc:
                    log.error("consumer %s: %s, skipping message", self.name, exc)
                    channels, params = [], {}
                if channels:
                    await self.dispatcher.publication(channels, msg.data, params)
                else:
                    log.info("consumer %s: no channels found, skipping message", self.name)
            else:
                method = headers.get(self.cfg.method_header, "") if self.cfg.method_header else ""
                await self.dispatcher.command(method, msg.data)
        except Retry as exc:
            self._failed("processing message failed", exc)
            delivered = getattr(getattr(msg, "metadata", None), "num_delivered", 1) or 1
            await msg.nak(delay=next_backoff(0, min(int(delivered), 10)))
            return
        try:
            await msg.ack()
        except Exception as exc:
            self._failed("failed to ack message", exc)
            return
        self.metrics.consumer_done(self.name, processed=1)
