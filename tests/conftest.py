"""Shared fixtures: a real relay server on port 0, config factories, tokens.

``relay_server(**overrides)`` starts an in-process worker (memory engine) and yields a
handle with ``ws_url``, ``api_url``, ``http_url`` and the ``node``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest

from relay.auth import encode_hmac_token
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


@asynccontextmanager
async def run_server(config: Config | None = None) -> AsyncIterator[ServerHandle]:
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


@pytest.fixture
async def relay() -> AsyncIterator[ServerHandle]:
    async with run_server() as handle:
        yield handle


@pytest.fixture
def server_factory() -> Callable[..., Any]:
    """``async with server_factory(config) as srv:`` for tests needing their own config."""
    return run_server


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
