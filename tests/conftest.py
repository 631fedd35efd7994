"""Shared fixtures: a real relay server on port 0, config factories, tokens.

``relay_server(**overrides)`` starts an in-process worker (memory engine) and yields a
handle with ``ws_url``, ``api_url``, ``http_url`` and the ``node``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest

from relay.auth import encode_hmac_token
from relay.cluster.spec import WorkerSpec
from relay.config import (
    ChannelConfig,
    ChannelOptions,
    ClientConfig,
    Config,
    HTTPAPIConfig,
    HTTPServerConfig,
    Namespace,
    TokenConfig,
)
from relay.process.front import mesh as supervisor_mesh
from relay.server import RelayServer

SECRET = "test-secret"
API_KEY = "test-api-key"
#: One time unit for tests; raise RELAY_TEST_MS on slow machines.
MS = float(os.environ.get("RELAY_TEST_MS", "1")) / 1000


def namespace(name: str, **opts: Any) -> Namespace:
    return Namespace(name=name, **opts)


def make_config(**overrides: Any) -> Config:
    """A permissive test config: HMAC secret, API key, a few namespaces."""
    channel = ChannelConfig(
        without_namespace=ChannelOptions(
            allow_subscribe_for_client=True,
            allow_publish_for_client=True,
            allow_presence_for_client=True,
            allow_history_for_client=True,
            presence=True,
        ),
        namespaces=(
            namespace(
                "chat",
                presence=True,
                join_leave=True,
                force_push_join_leave=True,
                history_size=100,
                history_ttl=300.0,
                force_recovery=True,
                allow_subscribe_for_client=True,
                allow_publish_for_subscriber=True,
                allow_presence_for_subscriber=True,
                allow_history_for_subscriber=True,
            ),
            namespace(
                "hist",
                history_size=3,
                history_ttl=300.0,
                allow_subscribe_for_client=True,
                allow_history_for_client=True,
                allow_recovery=True,
                allow_positioning=True,
                allow_publish_for_client=True,
            ),
            namespace("closed"),
        ),
    )
    cfg = Config(
        http_server=HTTPServerConfig(port=0, address="127.0.0.1"),
        client=ClientConfig(token=TokenConfig(hmac_secret_key=SECRET)),
        channel=channel,
        http_api=HTTPAPIConfig(key=API_KEY),
    )
    for key, value in overrides.items():
        cfg = replace(cfg, **{key: value})
    return cfg


def token(user: str = "42", **claims: Any) -> str:
    body: dict[str, Any] = {"sub": user}
    body.update(claims)
    return encode_hmac_token(body, SECRET)


@dataclass
class ServerHandle:
    server: RelayServer

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/connection/websocket"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def node(self) -> Any:
        return self.server.node

    @property
    def nodes(self) -> list[Any]:
        """Every worker's node (one in single mode)."""
        workers = getattr(self.server, "workers", None)
        return [w.node for w in workers] if workers else [self.server.node]

    @property
    def clients(self) -> dict[str, Any]:
        """Connected clients of all workers, by client id."""
        merged: dict[str, Any] = {}
        for node in self.nodes:
            merged.update(node.hub.clients)
        return merged

    def num_subscribers(self, channel: str) -> int:
        return sum(node.hub.num_subscribers(channel) for node in self.nodes)

    def server_disconnects(self, code: int) -> float:
        total = 0.0
        for node in self.nodes:
            node.metrics.flush()  # counts reach prometheus-client once a second otherwise
            total += node.metrics.server_disconnects.labels(str(code))._value.get()
        return total


class ClusterServer:
    """Several workers in one event loop behind a tiny front (round-robin hand-over).

    The workers talk over the real bus (a socket pair per two workers, as the front
    makes them) and shard channels exactly as separate processes do; only the process
    boundary is missing (tests/cluster/ covers it).
    """

    def __init__(self, config: Config, workers: int) -> None:
        uid = str(uuid.uuid4())
        mesh = [
            tuple((peer, sock.detach()) for peer, sock in links.items())
            for links in supervisor_mesh(workers)
        ]
        self.workers = [
            RelayServer(config, cluster=WorkerSpec(i, workers, mesh[i], 0, (0,) * workers, uid))
            for i in range(workers)
        ]
        self.node = self.workers[0].node
        self.port = 0
        self._listener: socket.socket | None = None
        self._next = 0

    async def start(self, sock: socket.socket) -> None:
        for worker in self.workers:
            await worker.start(listen=False)
        sock.setblocking(False)
        self._listener = sock
        self.port = sock.getsockname()[1]
        asyncio.get_running_loop().add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            worker = self.workers[self._next % len(self.workers)]
            self._next += 1
            asyncio.get_running_loop().create_task(worker.adopt(conn))

    async def stop(self) -> None:
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        for worker in self.workers:
            await worker.stop()


#: "single": one in-process worker; "workers2": two sharded workers (the real bus).
MODES = os.environ.get("RELAY_TEST_MODES", "single,workers2").split(",")


@asynccontextmanager
async def run_server(
    config: Config | None = None, mode: str = "single"
) -> AsyncIterator[ServerHandle]:
    if mode.startswith("workers"):
        cluster = ClusterServer(config or make_config(), int(mode[len("workers") :]))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1024)
        await cluster.start(sock)
        try:
            yield ServerHandle(cluster)  # type: ignore[arg-type]
        finally:
            await cluster.stop()
        return
    server = RelayServer(config or make_config())
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    await server.start(sock=sock)
    try:
        yield ServerHandle(server)
    finally:
        await server.stop()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Every integration test runs with one worker and with several."""
    return str(request.param)


@pytest.fixture
async def relay(mode: str) -> AsyncIterator[ServerHandle]:
    async with run_server(mode=mode) as handle:
        yield handle


@pytest.fixture
def server_factory(mode: str) -> Callable[..., Any]:
    """``async with server_factory(config) as srv:`` for tests needing their own config."""
    return functools.partial(run_server, mode=mode)


@pytest.fixture(
    scope="session",
    params=["asyncio", "uvloop"],
    autouse=False,
)
def event_loop_policy(request: pytest.FixtureRequest) -> Any:
    """Integration tests run on both loops (uvloop is what `relay` serves with)."""
    if request.param == "uvloop":
        import uvloop

        return uvloop.EventLoopPolicy()
    import asyncio

    return asyncio.DefaultEventLoopPolicy()


#: Tests that time real processes or a real browser on a small shared machine: one retry.
_TIMED_DIRS = ("tests/cluster/", "tests/e2e/")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(part in item.nodeid for part in _TIMED_DIRS):
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=1))
