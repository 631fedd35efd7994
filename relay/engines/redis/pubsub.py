"""The PUB/SUB connection of one shard: batched (un)subscribes, reconnects, liveness."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from relay.engines.redis.cluster import ClusterShard
from relay.engines.redis.shard import REDIS_FAILURES, Shard, internal, untyped

__all__ = ["PubSubLink"]

log = logging.getLogger("relay.engines.redis")

_PING_INTERVAL = 2.0
_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0
_SUBSCRIBE_CHUNK = 512
_RESUB_MARK = b"relay-resubscribed"


class PubSubLink:
    """The PUB/SUB connection of one shard: subscriptions, reader, reconnects.

    ``wanted`` is the set of Redis channels this node should be subscribed to; it
    survives reconnects (a new connection subscribes all of it). SUBSCRIBE/UNSUBSCRIBE
    from concurrent callers are queued and written together by one writer task.
    """

    def __init__(
        self,
        shard: Shard | ClusterShard,
        io_timeout: float,
        on_message: Callable[[bytes, bytes], None],
        on_lost: Callable[[list[bytes]], None],
        on_resubscribed: Callable[[list[bytes]], None],
    ) -> None:
        self._shard = shard
        self._io_timeout = io_timeout
        self._on_message = on_message
        self._on_lost = on_lost
        self._on_resubscribed = on_resubscribed
        self._wanted: set[bytes] = set()
        self._waiters: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._ops: list[tuple[bytes, ...]] = []
        self._kick = asyncio.Event()
        self._online = False
        self._resubscribed: list[bytes] = []
        self._last_read = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._connected_before = False

    # -- API --
    def start(self) -> None:
        self._task = asyncio.create_task(
            self._supervise(), name=f"redis-pubsub-{self._shard.index}"
        )

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=self._io_timeout + 1.0)

    async def subscribe(self, name: bytes) -> None:
        """Subscribe and wait for Redis to confirm (at most ``io_timeout``)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(name, deque()).append(fut)
        self._wanted.add(name)
        if self._online:
            self._send(b"SUBSCRIBE", name)
        try:
            async with asyncio.timeout(self._io_timeout):
                await fut
        except TimeoutError as exc:
            self._forget_waiter(name, fut)
            self.unsubscribe(name)
            raise internal(exc) from exc

    def unsubscribe(self, name: bytes) -> None:
        """Stop delivery of ``name`` now; the UNSUBSCRIBE is written in the background."""
        self._wanted.discard(name)
        if self._online:
            self._send(b"UNSUBSCRIBE", name)

    # -- internals --
    def _send(self, *command: bytes) -> None:
        self._ops.append(command)
        self._kick.set()

    def _forget_waiter(self, name: bytes, fut: asyncio.Future[None]) -> None:
        queue = self._waiters.get(name)
        if queue is not None and fut in queue:
            queue.remove(fut)
            if not queue:
                del self._waiters[name]

    async def _supervise(self) -> None:
        # ``_closed`` is checked after every await: a cancel may be lost by a library
        # call that swallows it, and the loop must still end.
        attempt = 0
        while not self._closed:
            conn = self._shard.new_pubsub_connection()
            try:
                async with asyncio.timeout(self._io_timeout):
                    await untyped(conn.connect)()
            except REDIS_FAILURES as exc:
                attempt += 1
                log.debug("redis pubsub %s: connect failed: %s", self._shard.address, exc)
                await asyncio.sleep(_backoff(attempt))
                continue
            attempt = 1
            await self._load_scripts()
            if not self._closed:
                await self._serve_until_broken(conn)
            await conn.disconnect(nowait=True)
            if not self._closed:
                await asyncio.sleep(_backoff(attempt))

    async def _load_scripts(self) -> None:
        try:
            async with asyncio.timeout(self._io_timeout):
                await self._shard.load_scripts()
        except REDIS_FAILURES as exc:  # EVALSHA falls back to EVAL
            log.debug("redis %s: SCRIPT LOAD failed: %s", self._shard.address, exc)

    async def _serve_until_broken(self, conn: AbstractConnection) -> None:
        self._ops = [
            (b"SUBSCRIBE", *chunk) for chunk in _chunks(sorted(self._wanted), _SUBSCRIBE_CHUNK)
        ]
        # the first connection subscribes for the first time: nothing to announce
        self._resubscribed = sorted(self._wanted) if self._connected_before else []
        self._connected_before = True
        self._ops.append((b"PING", _RESUB_MARK))
        self._kick.set()
        self._online = True
        self._last_read = time.monotonic()
        tasks = [
            asyncio.create_task(self._read(conn)),
            asyncio.create_task(self._write(conn)),
            asyncio.create_task(self._watch()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.warning("redis pubsub %s lost: %s", self._shard.address, task.exception())
        finally:
            self._online = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not self._closed and self._wanted:
            self._on_lost(sorted(self._wanted))

    async def _write(self, conn: AbstractConnection) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            ops, self._ops = _merge(self._ops), []
            if ops:
                await conn.send_packed_command(conn.pack_commands(ops), check_health=False)

    async def _read(self, conn: AbstractConnection) -> None:
        while True:
            reply = await conn.read_response(disconnect_on_error=True)
            self._last_read = time.monotonic()
            if isinstance(reply, list) and reply:
                self._dispatch(reply)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_PING_INTERVAL)
            if time.monotonic() - self._last_read > _PING_INTERVAL + self._io_timeout:
                raise RedisConnectionError("PUB/SUB connection stopped answering PING")
            self._send(b"PING")

    def _dispatch(self, reply: list[Any]) -> None:
        kind = reply[0]
        if kind == b"message":
            if reply[1] in self._wanted:
                self._on_message(reply[1], reply[2])
        elif kind == b"subscribe":
            self._confirmed(reply[1])
        elif kind == b"pong" and len(reply) > 1 and reply[1] == _RESUB_MARK:
            channels = [c for c in self._resubscribed if c in self._wanted]
            self._resubscribed = []
            if channels:
                self._on_resubscribed(channels)

    def _confirmed(self, name: bytes) -> None:
        queue = self._waiters.get(name)
        if queue:
            fut = queue.popleft()
            if not queue:
                del self._waiters[name]
            if not fut.done():
                fut.set_result(None)
        elif name not in self._wanted:
            self._send(b"UNSUBSCRIBE", name)


def _backoff(attempt: int) -> float:
    delay = min(_BACKOFF_MAX, _BACKOFF_MIN * float(2 ** min(attempt, 10)))
    return delay * (0.5 + random.random() / 2)


def _chunks(items: Sequence[bytes], size: int) -> Iterable[Sequence[bytes]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _merge(ops: list[tuple[bytes, ...]]) -> list[tuple[bytes, ...]]:
    """Join consecutive SUBSCRIBE (or UNSUBSCRIBE) commands into one, order kept."""
    out: list[tuple[bytes, ...]] = []
    for op in ops:
        prev = out[-1] if out else None
        mergeable = op[0] in (b"SUBSCRIBE", b"UNSUBSCRIBE")
        if prev is not None and mergeable and prev[0] == op[0] and len(prev) <= _SUBSCRIBE_CHUNK:
            out[-1] = prev + op[1:]
        else:
            out.append(op)
    return out
