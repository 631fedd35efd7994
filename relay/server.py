"""Composition root of one worker: build everything from ``Config``, serve, shut down.

``relay --config FILE`` runs the front (``process/front.py``), whose workers each
run one ``RelayServer`` (``process/worker.py``). Tests use ``RelayServer`` directly (an
in-process server on port 0).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from relay import fastpath
from relay.api import Executor
from relay.cluster.links import BusLink, ClusterLink, RedisLink
from relay.cluster.spec import WorkerSpec
from relay.config import Config
from relay.engines.base import Engine
from relay.engines.memory import MemoryEngine
from relay.metrics import Metrics
from relay.node import Node
from relay.transports import admin, http_api, ws_fallback
from relay.transports.http_log import http_logger
from relay.transports.websocket import Gateway, GatewayContext

if TYPE_CHECKING:
    from relay.cluster.bus import Bus
    from relay.engines.sharded import ShardedEngine

__all__ = ["RelayServer"]

log = logging.getLogger("relay.server")


class RelayServer:
    """One worker: node + engine + HTTP app + the listening gateway."""

    def __init__(self, config: Config, cluster: WorkerSpec | None = None) -> None:
        self.config = config
        self.cluster = cluster
        self.metrics = Metrics()
        node_uid = cluster.node_uid if cluster is not None else str(uuid.uuid4())
        worker_key = f"{node_uid}.{cluster.id if cluster is not None else 0}"
        self.bus: Bus | None = None  # links to the other workers when there are several
        self.sharded: ShardedEngine | None = None
        self.link: ClusterLink | None = None
        self.engine = self._build_engine(config, cluster, worker_key)
        self.node = Node(config, self.engine, self.metrics)
        self.node.uid = node_uid
        self.metrics.build.labels(version=self.node.version).set(1)
        self.executor = Executor(self.node)
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        http_api.setup(self.app, self.node, self.executor)
        ws_fallback.setup(self.app, self.node)
        admin.setup(self.app, self.node, self.executor)  # last: its UI is a catch-all route
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None
        self._ctx: GatewayContext | None = None
        self._housekeeping: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self, sock: socket.socket | None = None, listen: bool = True) -> None:
        """Start the engine and listen (on ``sock`` if given, else the configured address).

        ``listen=False`` is a worker's mode: connections arrive through ``adopt``.
        """
        loop = asyncio.get_running_loop()
        if self.bus is not None:
            await self.bus.start()
        await self.engine.start()
        if self.link is not None:
            await self.node.attach_link(self.link)
        self._runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, logger=http_logger()
        )
        await self._runner.setup()
        http_factory: Any = self._runner.server
        workers = self.cluster.workers if self.cluster is not None else 1
        self._ctx = GatewayContext(self.node, http_factory, loop, workers)
        ctx = self._ctx
        self._housekeeping = loop.create_task(self._run_housekeeping())
        if not listen:
            return
        if sock is not None:
            self._server = await loop.create_server(lambda: Gateway(ctx), sock=sock)
        else:
            cfg = self.config.http_server
            self._server = await loop.create_server(
                lambda: Gateway(ctx), host=cfg.address or None, port=cfg.port, reuse_address=True
            )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "serving websocket, api, health, metrics endpoints on %s:%s (fastpath: %s)",
            self.config.http_server.address,
            self.port,
            fastpath.IMPLEMENTATION,
        )

    def _build_engine(self, config: Config, cluster: WorkerSpec | None, worker_key: str) -> Engine:
        """Redis (every worker of every node on it), or memory: one worker, or sharded."""
        if config.engine.type == "redis":
            from relay.engines.redis import RedisEngine

            redis = RedisEngine(config.engine.redis, config.channel.history_meta_ttl, worker_key)
            self.link = RedisLink(redis, worker_key)
            return redis
        memory = MemoryEngine(default_meta_ttl=config.channel.history_meta_ttl)
        if cluster is None or cluster.workers <= 1:
            return memory
        from relay.cluster.bus import Bus
        from relay.engines.sharded import ShardedEngine

        links = {peer: socket.socket(fileno=fd) for peer, fd in cluster.links}
        self.bus = Bus(cluster.id, cluster.workers, links, cluster.generation)
        self.bus.peer_generation = list(cluster.peer_generations)
        self.link = BusLink(self.bus)
        self.sharded = ShardedEngine(self.bus, memory)
        return self.sharded

    async def adopt(self, sock: socket.socket) -> None:
        """Serve a connection accepted by the front process."""
        assert self._ctx is not None
        ctx = self._ctx
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: Gateway(ctx), sock)
        except OSError as exc:
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
            if time.monotonic() >= presence_due and self.config.engine.type == "redis":
                presence_due = time.monotonic() + self.config.client.presence_update_interval
                await self.node.refresh_presence()
            expire = getattr(self.engine, "expire", None)
            if expire is not None:
                expire()
            if self.bus is not None:
                self.metrics.bus_counters(self.bus.counters)
            self.metrics.worker_connections.set(len(self.node.hub.connections))
            if isinstance(self.link, RedisLink):
                self.metrics.set_nodes(self.link.live_nodes())
            self.metrics.tick()

    async def stop(self) -> None:
        """Numbered steps: 1 stop accepting; 2 close clients with 3001; 3 finish HTTP; 4 engine."""
        if self._server is not None:
            self._server.close()
        await self.node.shutdown()
        if self._housekeeping is not None:
            self._housekeeping.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        await asyncio.sleep(0.05)
        self.metrics.flush()  # a worker's last counts stay in the node's totals
        if self.link is not None:
            await self.link.close()
        if self.bus is not None:
            self.bus.close()
