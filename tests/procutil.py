"""Helpers for tests that run relay (or Redis) as real processes."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from relay.auth import encode_hmac_token
from tests.integration.wsutil import RawClient

ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "OPEN_CHANNELS",
    "RelayEndpoints",
    "free_port",
    "scrape_until",
    "spawn_relay",
    "wait_port",
]

#: ``channel.without_namespace`` for process tests: everything allowed to clients,
#: presence, and recoverable history.
OPEN_CHANNELS = {
    "allow_subscribe_for_client": True,
    "allow_publish_for_client": True,
    "allow_presence_for_client": True,
    "allow_history_for_client": True,
    "presence": True,
    "history_size": 100,
    "history_ttl": "300s",
    "force_recovery": True,
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_port(port: int, timeout: float = 15.0) -> None:
    """Wait until something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise TimeoutError(f"port {port} not open")


async def scrape_until(http: aiohttp.ClientSession, url: str, needle: str, **kw: Any) -> str:
    """The metrics text of ``url`` once it contains ``needle`` (up to 4 s), else the last
    one: each worker hands its gauges and counts on at its next flush, once a second."""
    text = ""
    for _ in range(40):
        async with http.get(url, **kw) as r:
            text = await r.text()
        if needle in text:
            break
        await asyncio.sleep(0.1)
    return text


def spawn_relay(config: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    """``python -m relay -c CONFIG`` on 127.0.0.1:``port`` with ``workers`` workers."""
    return subprocess.Popen(
        [sys.executable, "-m", "relay", "-c", str(config), "-p", str(port), "-a", "127.0.0.1",
         "--workers", str(workers), "--log.level", "error"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip


class RelayEndpoints:
    """WebSocket and API access to a relay process on ``port``."""

    port: int
    api_key: str
    secret: str

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/connection/websocket"

    async def api(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"http://127.0.0.1:{self.port}/api/{method}",
                json=body,
                headers={"X-API-Key": self.api_key},
            ) as resp:
                assert resp.status == 200
                data: dict[str, Any] = await resp.json()
                return data

    async def client(self, user: str) -> RawClient:
        """A JSON client connected as ``user``."""
        c = await RawClient.open(self.ws_url)
        await c.connect(token=encode_hmac_token({"sub": user}, self.secret))
        return c
