"""Who may open a connection now: ``client.connection_limit`` and
``client.connection_rate_limit`` (refused: HTTP 503), for every connection endpoint."""

from __future__ import annotations

import asyncio

from relay.node import Node

__all__ = ["Admission"]


class Admission:
    """``client.connection_limit`` and ``client.connection_rate_limit`` (HTTP 503 when hit).

    Both are node-wide in Centrifugo; a worker enforces its share (limit / workers).
    """

    def __init__(self, node: Node, loop: asyncio.AbstractEventLoop, workers: int = 1) -> None:
        cfg = node.config.client
        self.node = node
        self.loop = loop
        self.limit = -(-cfg.connection_limit // workers) if cfg.connection_limit else 0
        self.rate = cfg.connection_rate_limit / workers if cfg.connection_rate_limit else 0.0
        self._capacity = max(1.0, self.rate)  # a burst of one second's worth
        self._tokens = self._capacity
        self._refilled = loop.time()

    def admit(self) -> bool:
        if self.limit and len(self.node.hub.connections) >= self.limit:
            return False
        if self.rate:
            now = self.loop.time()
            self._tokens = min(self._capacity, self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
        return True
