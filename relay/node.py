"""One worker's orchestration: clients, hub, engine and the operations they share.

Rules (written once):

* Only the node touches the hub and the engine on behalf of clients and the API.
* The node is the engine's event handler: publications, joins and leaves arrive
  here and go to the hub, which fans them out without awaiting.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from relay import CENTRIFUGO_VERSION
from relay.auth import TokenVerifier
from relay.cluster.links import ClusterLink
from relay.config import ChannelOptions, Config
from relay.context import ClientContext
from relay.engines.base import Engine, PublishOptions
from relay.errors import DISCONNECT_SHUTDOWN, ERROR_BAD_REQUEST, Disconnect, ReplyError
from relay.hub import Connection, Hub
from relay.metrics import Metrics
from relay.protocol.channels import ChannelRules, check_data_format
from relay.protocol.commands import SessionContext
from relay.protocol.messages import (
    ClientInfo,
    HistoryFilter,
    HistoryResult,
    Publication,
    StreamPosition,
)
from relay.proxy import Proxies

__all__ = ["Node"]

log = logging.getLogger("relay.node")


class Node:
    """Clients, subscriptions and publications of one worker process."""

    def __init__(self, config: Config, engine: Engine, metrics: Metrics | None = None) -> None:
        self.config = config
        self.engine = engine
        self.hub = Hub()
        self.metrics = metrics or Metrics()
        self.rules = ChannelRules(config.channel, insecure=config.client.insecure)
        self.conn_verifier = TokenVerifier(
            config.client.token,
            skip_signature_verify=config.client.insecure_skip_token_signature_verify,
        )
        sub_cfg = config.client.subscription_token
        self.sub_verifier = (
            TokenVerifier(
                sub_cfg, skip_signature_verify=config.client.insecure_skip_token_signature_verify
            )
            if sub_cfg.enabled
            else self.conn_verifier
        )
        self.uid = str(uuid.uuid4())
        self.name = config.node.name or f"{socket.gethostname()}_{config.http_server.port}"
        self.version = f"{CENTRIFUGO_VERSION} OSS"
        self.started_at = time.time()
        self.client_context = ClientContext(
            SessionContext(config.client, config.channel, self.rules, self.version),
            self.conn_verifier,
            self.sub_verifier,
        )
        #: the backend proxies (``relay/proxy/``), set by the server when any is configured
        self.proxies: Proxies | None = None
        self.shutting_down = False
        self.link: ClusterLink | None = None
        self._broker_lost: set[str] = set()
        self.control_handlers: dict[str, Callable[[Any], Awaitable[None]]] = {}
        engine.set_event_handler(self)

    # ---- engine events ----------------------------------------------------------------
    def handle_publication(self, channel: str, pub: Publication, sp: StreamPosition) -> None:
        started = time.perf_counter()
        n = self.hub.broadcast_publication(channel, pub, sp.epoch)
        seconds = time.perf_counter() - started
        others = self.hub.other_transports(channel)
        self.metrics.publication_delivered(n, self.hub.last_push_size, seconds, others)

    def handle_publications(self, batch: Sequence[tuple[str, Publication, StreamPosition]]) -> None:
        """``handle_publication`` for each, in order; the publications of channels without
        a subscriber here are only counted (the batch path's common case)."""
        live = self.hub.subscribed_channels
        quiet = 0
        for channel, pub, sp in batch:
            if channel in live:
                self.handle_publication(channel, pub, sp)
            else:
                quiet += 1
        if quiet:
            self.metrics.publications_received(quiet)

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        self.metrics.message_received("join")
        self.hub.broadcast_join_leave(channel, "join", info)

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        self.metrics.message_received("leave")
        self.hub.broadcast_join_leave(channel, "leave", info)

    # ---- clients ----------------------------------------------------------------------
    def add_client(self, client: Connection) -> None:
        self.metrics.action("add_client")
        self.hub.connected(client)
        self.metrics.set_clients(self.hub.num_clients, self.hub.num_users)

    def remove_client(self, client: Connection) -> None:
        self.metrics.action("remove_client")
        known = client.uid in self.hub.clients
        self.hub.closed(client)
        if known:
            self.metrics.set_clients(self.hub.num_clients, self.hub.num_users)

    async def add_subscription(self, channel: str, client: Connection) -> None:
        self.metrics.action("add_subscription")
        self.metrics.subscriptions_changed(client.name, 1)
        if self.hub.add(channel, client):
            self.metrics.action("broker_subscribe")
            await self.engine.subscribe(channel)
        self.metrics.set_subscriptions(self.hub.num_subscriptions, self.hub.num_channels)

    async def remove_subscription(self, channel: str, client: Connection) -> None:
        self.metrics.action("remove_subscription")
        if self.hub.subscribed(channel, client):
            self.metrics.subscriptions_changed(client.name, -1)
        if self.hub.remove(channel, client):
            self.metrics.action("broker_unsubscribe")
            self._broker_lost.discard(channel)
            await self.engine.unsubscribe(channel)
        self.metrics.set_subscriptions(self.hub.num_subscriptions, self.hub.num_channels)

    # ---- the engine: history, presence, join/leave (only the node touches it) ----------
    async def history(
        self, channel: str, flt: HistoryFilter, meta_ttl: float, action: str = "history"
    ) -> HistoryResult:
        """``action``: the node action it counts as (``history``, ``history_recover``,
        ``history_stream_top``), as Centrifugo names them. A reverse read since offset 0
        is refused (107) before any engine is asked, as centrifuge does."""
        self.metrics.action(action)
        if flt.reverse and flt.since is not None and flt.since.offset == 0:
            raise ReplyError(ERROR_BAD_REQUEST)
        return await self.engine.history(channel, flt, meta_ttl)

    async def remove_history(self, channel: str) -> None:
        self.metrics.action("history_remove")
        await self.engine.remove_history(channel)

    async def add_presence(self, channel: str, client_id: str, info: ClientInfo) -> None:
        self.metrics.action("add_presence")
        await self.engine.add_presence(channel, client_id, info)

    async def remove_presence(self, channel: str, client_id: str, user: str) -> None:
        self.metrics.action("remove_presence")
        await self.engine.remove_presence(channel, client_id, user)

    async def presence(self, channel: str) -> dict[str, ClientInfo]:
        self.metrics.action("presence")
        return await self.engine.presence(channel)

    async def presence_stats(self, channel: str) -> tuple[int, int]:
        self.metrics.action("presence_stats")
        return await self.engine.presence_stats(channel)

    async def publish_join(self, channel: str, info: ClientInfo) -> None:
        self.metrics.message_sent("join")
        await self.engine.publish_join(channel, info)

    async def publish_leave(self, channel: str, info: ClientInfo) -> None:
        self.metrics.message_sent("leave")
        await self.engine.publish_leave(channel, info)

    # ---- publishing -------------------------------------------------------------------
    def publish_options(
        self,
        opts: ChannelOptions,
        skip_history: bool = False,
        key: str = "",
        version: int = 0,
        version_epoch: str = "",
    ) -> PublishOptions:
        """The engine's options for a publication into a channel with ``opts``; a
        ``version`` only matters with history (centrifuge's brokers check it there)."""
        if skip_history or not opts.history_enabled:
            return PublishOptions(idempotency_key=key)
        return PublishOptions(
            history_size=opts.history_size,
            history_ttl=opts.history_ttl,
            history_meta_ttl=opts.history_meta_ttl,
            idempotency_key=key,
            version=version,
            version_epoch=version_epoch,
        )

    async def publish_many(
        self, items: list[tuple[str, Publication, PublishOptions]]
    ) -> list[tuple[StreamPosition, str] | ReplyError]:
        """Publish a batch through the engine (one bus message per owning shard)."""
        outcomes = await self.engine.publish_many(items)
        self.metrics.message_sent("publication", len(items))
        for outcome in outcomes:
            if not isinstance(outcome, ReplyError) and outcome[1]:
                self.metrics.publish_suppressed_by(outcome[1])
        return outcomes

    async def publish(
        self,
        channel: str,
        pub: Publication,
        opts: ChannelOptions,
        *,
        skip_history: bool = False,
        idempotency_key: str = "",
        version: int = 0,
        version_epoch: str = "",
    ) -> StreamPosition:
        """Publish into ``channel`` through the engine; returns its stream position (the
        stream's top when the publication was suppressed)."""
        popts = self.publish_options(opts, skip_history, idempotency_key, version, version_epoch)
        sp, suppressed = await self.engine.publish(channel, pub, popts)
        self.metrics.message_sent("publication")
        if suppressed:
            self.metrics.publish_suppressed_by(suppressed)
        return sp

    def check_data_format(self, opts: ChannelOptions, data: bytes, data_json: bool) -> None:
        """``publication_data_format`` (namespace, else global): 107 on mismatch."""
        check_data_format(opts, self.config.channel.publication_data_format, data, data_json)

    # ---- shutdown ---------------------------------------------------------------------
    async def shutdown(self, disconnect: Disconnect = DISCONNECT_SHUTDOWN) -> None:
        """Step 1: refuse new work; 2: close every client with ``disconnect``; 3: engine."""
        self.shutting_down = True
        for client in list(self.hub.connections):
            client.disconnect(disconnect)
        await asyncio.sleep(0)
        await self.client_context.jwks.close()
        if self.proxies is not None:
            await self.proxies.close()
        await self.engine.close()

    def channels(self) -> Iterable[str]:
        return self.hub.channels()

    # ---- cluster-wide operations (the workers of this node) ---------------------------
    async def attach_link(self, link: ClusterLink) -> None:
        """Join the cluster (the node's workers, or every node over Redis)."""
        self.link = link
        await link.attach(self)

    async def control(self, op: str, req: Mapping[str, Any]) -> None:
        """Run a connection action (subscribe, unsubscribe, disconnect, refresh) everywhere."""
        plain = dict(req)  # what crosses to the other workers: a plain dict
        if self.link is not None:
            self.metrics.message_sent("control")
            self.link.broadcast(op, plain)
        await self._apply_control(op, plain)

    def apply_control(self, op: str, req: dict[str, Any]) -> None:
        """A control operation that another worker broadcast."""
        self.metrics.message_received("control")
        asyncio.get_running_loop().create_task(self._apply_control(op, req))

    async def _apply_control(self, op: str, req: dict[str, Any]) -> None:
        handler = self.control_handlers.get(op)
        if handler is None:
            log.warning("unknown control operation %s", op)
            return
        try:
            await handler(req)
        except Exception:
            log.exception("control operation %s failed", op)

    def local_survey(self, op: str) -> Any:
        """This worker's part of a survey: ``channels`` or ``info``."""
        if op == "channels":
            return {ch: self.hub.num_subscribers(ch) for ch in self.hub.channels()}
        return {
            "node": self.uid,
            "name": self.name,
            "version": self.version,
            "started_at": self.started_at,
            "num_clients": self.hub.num_clients,
            "users": list(self.hub.users),
            "num_channels": self.hub.num_channels,
            "num_subs": self.hub.num_subscriptions,
            "channels": self.hub.channels(),
        }

    async def survey(self, op: str) -> list[Any]:
        """Every worker's answer (workers that fail to answer are left out)."""
        started = time.perf_counter()
        self.metrics.action("survey")
        results = [self.local_survey(op)]
        if self.link is not None:
            results.extend(await self.link.survey(op))
        if op == "channels":  # Centrifugo's only survey (its info comes another way)
            self.metrics.survey(op, time.perf_counter() - started)
        return results

    async def refresh_presence(self) -> None:
        """Re-add this worker's presence entries (engines with a presence TTL)."""
        for client in list(self.hub.clients.values()):
            for channel, info in client.presence_entries():
                try:
                    await self.engine.add_presence(channel, client.uid, info)
                except ReplyError as exc:
                    log.warning("presence refresh of %s failed: %s", channel, exc)
                    return

    def handle_broker_lost(self, channels: list[str]) -> None:
        """The broker's PUB/SUB connection broke: publications of ``channels`` may be lost.

        As Centrifugo does, subscriptions stay while the broker is away; they are told
        to resync once it is back (``handle_broker_resubscribed``).
        """
        self._broker_lost.update(channels)

    def handle_broker_resubscribed(self, channels: list[str]) -> None:
        """PUB/SUB is back: positioned subscriptions of channels that had lost it resync
        (insufficient state -> the SDK recovers from the stream or learns it cannot)."""
        for channel in channels:
            if channel in self._broker_lost:
                self._broker_lost.discard(channel)
                self._streams_lost(channel)

    def _streams_lost(self, channel: str) -> None:
        for sub in self.hub.subscribers(channel):
            client = self.hub.clients.get(sub.uid)
            if client is not None:
                client.stream_lost(channel)
