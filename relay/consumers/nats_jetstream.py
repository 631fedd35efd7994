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
from relay.consumers.base import Backoff, ConsumerBase, PublicationFields, publication_params
from relay.consumers.dispatch import Dispatcher, Retry

if TYPE_CHECKING:
    from relay.metrics import Metrics

__all__ = ["NatsJetStreamConsumer", "header_params"]

log = logging.getLogger("relay.consumers")

_ACK_WAIT = 30.0
_FETCH_TIMEOUT = 5.0


def header_params(
    cfg: NatsJetStreamConsumerConfig, headers: dict[str, str]
) -> tuple[list[str], dict[str, Any]]:
    """The channels and publish fields of a publication-data message (an empty header
    counts as absent, as nats.go's ``Header.Get`` reads it)."""
    mode = cfg.publication_data_mode
    names = PublicationFields(mode.channels_header, mode.idempotency_key_header,
                              mode.delta_header, mode.version_header, mode.version_epoch_header,
                              mode.tags_header_prefix)  # fmt: skip
    return publication_params(headers, names, empty_is_absent=True)


class NatsJetStreamConsumer(ConsumerBase):
    def __init__(
        self,
        name: str,
        cfg: NatsJetStreamConsumerConfig,
        dispatcher: Dispatcher,
        metrics: Metrics,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(name, metrics)
        self.cfg = cfg
        self.dispatcher = dispatcher
        self._tls = tls

    async def run(self) -> None:
        import nats

        cfg = self.cfg
        auth: dict[str, Any] = {}
        if cfg.username:
            auth = {"user": cfg.username, "password": cfg.password}
        elif cfg.token:
            auth = {"token": cfg.token}
        backoff = Backoff()
        while True:
            try:
                nc = await nats.connect(
                    servers=[u.strip() for u in cfg.url.split(",") if u.strip()],
                    max_reconnect_attempts=-1, tls=self._tls, name=f"relay consumer {self.name}",
                    **auth,
                )  # fmt: skip
                break
            except Exception as exc:
                self.failed("cannot connect to NATS", exc)
                await backoff.pause()
        try:
            await self._consume(nc)
        finally:
            await nc.close()

    async def _consume(self, nc: Any) -> None:
        """(Re)create the consumer and pull from it, for ever."""
        from nats.errors import TimeoutError as NatsTimeout

        js = nc.jetstream()
        backoff = Backoff()
        while True:
            try:
                sub = await self._subscription(js)
                log.info("consumer %s: consuming %s", self.name, self.cfg.stream_name)
                backoff.reset()
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
                self.failed("consumer unavailable, creating it again", exc)
                await backoff.pause()

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
            self.failed("processing message failed", exc)
            delivered = getattr(getattr(msg, "metadata", None), "num_delivered", 1) or 1
            await msg.nak(delay=next_backoff(0, min(int(delivered), 10)))
            return
        try:
            await msg.ack()
        except Exception as exc:
            self.failed("failed to ack message", exc)
            return
        self.metrics.consumer_done(self.name, processed=1)
