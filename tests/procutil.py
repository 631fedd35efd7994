"""Helpers for tests that run relay (or Redis) as real processes."""

from __future__ import annotations

import asyncio
import socket
import time

__all__ = ["OPEN_CHANNELS", "free_port", "wait_port"]

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
