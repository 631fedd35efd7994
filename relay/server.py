"""Composition root of one worker: build everything from ``Config``, serve, shut down.

``relay --config FILE`` runs the front (``process/front.py``), whose workers each
run one ``RelayServer`` (``process/worker.py``). Tests use ``RelayServer`` directly (an
in-process server on port 0).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web

from relay import fastpath
from relay.api import Executor
from relay.cluster.links import BusLink, ClusterLink, RedisLink
from relay.cluster.spec import WorkerSpec
from relay.config import Config, RedisConfig
from relay.engines.base import Engine
from relay.engines.memory import MemoryEngine
from relay.metrics import Metrics
from relay.node import Node
from relay.proxy import Proxies, uses_proxies
from relay.transports import admin, emulation, http_api, ports, swagger, tls, uni, ws_fallback
from relay.transports.grpc_api import GrpcAPI
from relay.transports.http_log import http_logger
from relay.transports.ports import WEBSOCKET
from relay.transports.uni_grpc import UniGrpc
from relay.transports.websocket import Gateway, GatewayContext

if TYPE_CHECKING:
    from relay.cluster.bus import Bus
    from relay.consumers import Consumers
    from relay.engines.sharded import ShardedEngine

__all__ = ["RelayServer"]

log = logging.getLogger("relay.server")


def build_app(
    node: Node, executor: Executor, handlers: frozenset[str], workers: int = 1
) -> web.Application:
    """The aiohttp application of one listener, serving the endpoints in ``handlers``
    (``workers``: the node's, for the per-worker share of the connection limits)."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    http_api.setup(app, node, executor, handlers)
    if WEBSOCKET in handlers:
        ws_fallback.setup(app, node)
    if handlers & {ports.SSE, ports.HTTP_STREAM, ports.EMULATION}:
        emulation.setup(app, node, handlers, workers)
    if handlers & {ports.UNI_WEBSOCKET, ports.UNI_SSE, ports.UNI_HTTP_STREAM}:
        uni.setup(app, node, handlers, workers)
    if ports.SWAGGER in handlers:
        swagger.setup(app, node)
    if ports.ADMIN in handlers:
        admin.setup(app, node, executor)  # last: its UI is a catch-all route
    return app


def _tls_context(config: Config, listener: ports.Listener) -> ssl.SSLContext | None:
    if listener.tls is None:
        return None
    internal = not listener.external and config.http_server.internal_tls.enabled
    return tls.server_context(listener.tls, f"http_server.{'internal_tls' if internal else 'tls'}")


def _memory_engine(config: Config, cluster: WorkerSpec | None) -> MemoryEngine:
    """The worker's memory engine; with ``engine.memory.persistence.dir`` its streams are
    replayed from and written to ``<dir>/worker-<id>/`` (``engines/persistent.py``)."""
    persistence = config.engine.memory.persistence
    if not persistence.dir:
        return MemoryEngine(default_meta_ttl=config.channel.history_meta_ttl)
    from relay.engines.persistent import PersistentMemoryEngine
    from relay.engines.store import StreamStore
    from relay.engines.store_layout import claim_layout

    worker, workers = (cluster.id, cluster.workers) if cluster is not None else (0, 1)
    root = claim_layout(persistence.dir, workers)
    store = StreamStore(
        os.path.join(root, f"worker-{worker}"),
        persistence.sync,
        persistence.sync_interval,
    )
    return PersistentMemoryEngine(store, default_meta_ttl=config.channel.history_meta_ttl)


class RelayServer:
    """One worker: node + engine + HTTP app + the listening gateway."""

    def __init__(self, config: Config, cluster: WorkerSpec | None = None) -> None:
        self.config = config
        self.cluster = cluster
        self.metrics = Metrics()
        self._worker_label = str(cluster.id if cluster is not None else 0)
        self.metrics.worker_connections.labels(self._worker_label).set(0)  # present at once
        node_uid = cluster.node_uid if cluster is not None else str(uuid.uuid4())
        worker_key = f"{node_uid}.{cluster.id if cluster is not None else 0}"
        self.bus: Bus | None = None  # links to the other workers when there are several
        self.sharded: ShardedEngine | None = None
        self.link: ClusterLink | None = None
        self.engine = self._build_engine(config, cluster, worker_key)
        self.node = Node(config, self.engine, self.metrics)
        self.node.uid = node_uid
        if uses_proxies(config):
            self.node.proxies = Proxies(config, self.metrics, tls.client_context)
        self.metrics.build.labels(version=self.node.version).set(1)
        self.executor = Executor(self.node)
        #: What each listening address serves (``transports/ports.py``), external first.
        self.listeners = ports.plan(config)
        workers = cluster.workers if cluster is not None else 1
        self.apps = [
            build_app(self.node, self.executor, lst.handlers, workers) for lst in self.listeners
        ]
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._contexts: list[GatewayContext] = []
        self._tls = [_tls_context(config, lst) for lst in self.listeners]
        self._housekeeping: asyncio.Task[None] | None = None
        self.ports: list[int] = [0] * len(self.listeners)
        #: ``grpc_api``: every worker serves it on the same port (SO_REUSEPORT).
        self.grpc_api = GrpcAPI(self.node, self.executor) if config.grpc_api.enabled else None
        #: ``uni_grpc``: the same, on its own port.
        self.uni_grpc = UniGrpc(self.node) if config.uni_grpc.enabled else None
        #: ``consumers``: run by the node's first worker only
        self.consumers: Consumers | None = None
        if any(c.enabled for c in config.consumers) and (cluster is None or cluster.id == 0):
            from relay.consumers import Consumers

            self.consumers = Consumers(config, self.executor, node_uid)

    @property
    def app(self) -> web.Application:
        """The application of the first listener (the only one without ``internal_port``)."""
        return self.apps[0]

    @property
    def port(self) -> int:
        """The port of the first listener (external, or internal when nothing is external)."""
        return self.ports[0] if self.ports else 0

    @property
    def internal_port(self) -> int:
        """The port of the internal endpoints (the only port without ``internal_port``)."""
        return self.ports[-1] if self.ports else 0

    async def start(self, sock: socket.socket | None = None, listen: bool = True) -> None:
        """Start the engine and listen (the first listener on ``sock`` if given, else
        every listener on its configured address).

        ``listen=False`` is a worker's mode: connections arrive through ``adopt``.
        """
        loop = asyncio.get_running_loop()
        if self.bus is not None:
            await self.bus.start()
        await self.engine.start()
        if self.link is not None:
            await self.node.attach_link(self.link)
        workers = self.cluster.workers if self.cluster is not None else 1
        for app, lst in zip(self.apps, self.listeners, strict=True):
            runner = web.AppRunner(app, access_log=None, handle_signals=False, logger=http_logger())
            await runner.setup()
            self._runners.append(runner)
            http_factory: Any = runner.server
            self._contexts.append(
                GatewayContext(self.node, http_factory, loop, workers, WEBSOCKET in lst.handlers)
            )
        if self.grpc_api is not None:
            self.grpc_api.announce = self.cluster is None or self.cluster.id == 0
            await self.grpc_api.start()
        if self.uni_grpc is not None:
            self.uni_grpc.announce = self.cluster is None or self.cluster.id == 0
            await self.uni_grpc.start()
        self._housekeeping = loop.create_task(self._run_housekeeping())
        if self.consumers is not None:
            self.consumers.start()
        if not listen:
            return
        for i, lst in enumerate(self.listeners):
            factory = self._protocol_factory(i)
            if i == 0 and sock is not None:
                server = await loop.create_server(factory, sock=sock, ssl=self._tls[i])
            else:
                server = await loop.create_server(
                    factory, host=lst.address or None, port=lst.port, reuse_address=True,
                    ssl=self._tls[i],
                )  # fmt: skip
            self._servers.append(server)
            self.ports[i] = server.sockets[0].getsockname()[1]
            log.info(
                "serving %s endpoints on %s:%s%s (fastpath: %s)",
                lst.label,
                lst.address,
                self.ports[i],
                " with TLS" if lst.tls is not None else "",
                fastpath.IMPLEMENTATION,
            )

    def _protocol_factory(self, listener: int) -> Callable[[], Gateway]:
        ctx = self._contexts[listener]
        return lambda: Gateway(ctx)

    def _build_engine(self, config: Config, cluster: WorkerSpec | None, worker_key: str) -> Engine:
        """The engine of ``engine.type`` (Redis: every worker of every node on it; memory:
        one worker, or sharded over the bus), with its broker and/or presence manager
        replaced by the standalone ``broker`` / ``presence_manager`` when enabled."""
        broker_cfg, presence_cfg = config.broker, config.presence_manager
        engine: Engine | None = None
        if not (broker_cfg.enabled and presence_cfg.enabled):
            engine = self._redis_or_memory(config.engine.type, config.engine.redis, cluster,
                                           worker_key)  # fmt: skip
        broker: Any = engine
        presence: Any = engine
        if broker_cfg.enabled:
            if broker_cfg.type == "nats":
                from relay.engines.nats import NatsBroker

                broker = NatsBroker(broker_cfg.nats, worker_key, tls.client_context)
                self.link = RedisLink(broker, worker_key)  # control over NATS
            else:
                broker = self._redis_or_memory(broker_cfg.type, broker_cfg.redis, cluster,
                                               worker_key)  # fmt: skip
        if presence_cfg.enabled:
            presence = self._redis_or_memory(presence_cfg.type, presence_cfg.redis, cluster,
                                             worker_key, link=False)  # fmt: skip
        #: presence entries expire unless refreshed (Redis): housekeeping re-adds them
        self.presence_ttl = (
            presence_cfg.type if presence_cfg.enabled else config.engine.type
        ) == "redis"
        if broker is presence:  # no split: the engine, or one memory engine for both
            return cast(Engine, broker)
        from relay.engines.split import SplitEngine

        return cast(Engine, SplitEngine(broker, presence))

    def _redis_or_memory(
        self,
        kind: str,
        redis_cfg: RedisConfig,
        cluster: WorkerSpec | None,
        worker_key: str,
        link: bool = True,
    ) -> Engine:
        """A Redis engine, or the memory engine (sharded over the bus with several
        workers); ``link``: its control link is the node's (the broker's)."""
        if kind == "redis":
            from relay.engines.redis import RedisEngine

            redis = RedisEngine(redis_cfg, self.config.channel.history_meta_ttl, worker_key)
            if link:
                self.link = RedisLink(redis, worker_key)
            return redis
        if self.sharded is not None:
            return self.sharded
        memory = _memory_engine(self.config, cluster)
        if cluster is None or cluster.workers <= 1:
            return memory
        from relay.cluster.bus import Bus
        from relay.engines.sharded import ShardedEngine

        links = {peer: socket.socket(fileno=fd) for peer, fd in cluster.links}
        self.bus = Bus(cluster.id, cluster.workers, links, cluster.generation)
        self.bus.peer_generation = list(cluster.peer_generations)
        if link or self.link is None:
            self.link = BusLink(self.bus)
        self.sharded = ShardedEngine(self.bus, memory)
        return self.sharded

    async def adopt(self, sock: socket.socket, listener: int = 0) -> None:
        """Serve a connection the front accepted on its ``listener``-th address."""
        if not 0 <= listener < len(self._contexts):
            sock.close()
            return
        try:
            await asyncio.get_running_loop().connect_accepted_socket(
                self._protocol_factory(listener), sock, ssl=self._tls[listener]
            )
        except (OSError, ssl.SSLError) as exc:
            log.info("could not adopt a connection: %s", exc)
            sock.close()

    def worker_restarted(
        self, worker: int, generation: int, link: socket.socket | None = None
    ) -> None:
        """The front restarted ``worker`` (``link``: the new socket to it): fence its old
        life, resync its channels."""
        bus = self.bus
        if bus is not None:
            bus.peer_restarted(worker, generation)
        if self.sharded is not None:
            self.sharded.worker_restarted(worker)
        if bus is not None and link is not None:
            asyncio.get_running_loop().create_task(bus.attach(worker, link))
        elif link is not None:
            link.close()

    async def _run_housekeeping(self) -> None:
        presence_due = time.monotonic() + self.config.client.presence_update_interval
        while True:
            await asyncio.sleep(1)
            if time.monotonic() >= presence_due and self.presence_ttl:
                presence_due = time.monotonic() + self.config.client.presence_update_interval
                await self.node.refresh_presence()
            expire = getattr(self.engine, "expire", None)
            if expire is not None:
                expire()
            if self.bus is not None:
                self.metrics.bus_counters(self.bus.counters)
            self.metrics.worker_connections.labels(self._worker_label).set(
                len(self.node.hub.connections)
            )
            if isinstance(self.link, RedisLink):
                self.metrics.set_nodes(self.link.live_nodes())
            self.metrics.tick()

    async def stop(self) -> None:
        """Numbered steps: 1 stop accepting; 2 close clients with 3001; 3 finish HTTP; 4 engine."""
        for server in self._servers:
            server.close()
        if self.grpc_api is not None:
            await self.grpc_api.stop()
        if self.uni_grpc is not None:
            await self.uni_grpc.stop()
        if self.consumers is not None:
            await self.consumers.stop()
        await self.node.shutdown()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        for runner in self._runners:
            await runner.cleanup()
        await asyncio.sleep(0.05)
        self.metrics.flush()  # a worker's last counts stay in the node's totals
        if self.link is not None:
            await self.link.close()
        if self.bus is not None:
            self.bus.close()
