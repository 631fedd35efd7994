"""The links between the workers of one node: one Unix stream socket per pair of workers.

The front creates a socket pair for every two workers and hands each worker its ends
(at spawn, and over the control socket when a peer is restarted). Each link is written
and read by the worker's event loop directly, with a 4-byte length before each message;
there is no broker and no I/O thread, so a message costs one write and one read
(measured against ZeroMQ PUSH/PULL in docs/architecture.md). On top of it:

* ``cast(to, op, *args)`` — a one-way message; ``request(to, op, *args)`` — awaits the
  answer of the handler registered with ``serve(op, ...)``;
* ``queue(to, op, item)`` — one item of a message that collects every item queued for
  ``to`` in this loop turn: the handler gets ``(sender, items)`` once. Queued items
  leave before any later ``cast`` or ``request`` on the same link, so order per link
  is kept (a fan-out of 500 publications is one message, not 500);
* no silent loss: a write never blocks the loop; what the kernel does not take waits in
  the link's transport buffer (counted as ``backlogged``), and messages for a peer
  whose new link has not arrived yet wait in a per-peer queue. Every message carries a
  per-link sequence number and the generation of the sender and of the worker it was
  meant for: a restarted worker drops messages addressed to its previous life, and a
  gap on a link is reported to ``on_gap``.

Messages are pickled: the links are socket pairs that only the node's own processes hold.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import pickle
import socket
from collections import deque
from collections.abc import Callable
from typing import Any, cast

__all__ = ["Bus", "BusError"]

log = logging.getLogger("relay.bus")

REQUEST, RESPONSE = "__req__", "__res__"
_HEADER = 4
_MAX_MESSAGE = 2**31


class BusError(Exception):
    """A request could not be answered (timeout, peer restarted, remote failure)."""


class _Link(asyncio.Protocol):
    """One peer's stream: length-prefixed messages in, ``Bus._on_frame`` per message."""

    def __init__(self, bus: Bus, peer: int) -> None:
        self.bus = bus
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        pos, end = 0, len(buffer)
        while end - pos >= _HEADER:
            size = int.from_bytes(buffer[pos : pos + _HEADER], "big")
            if end - pos - _HEADER < size:
                break
            start = pos + _HEADER
            pos = start + size
            self.bus.on_message(bytes(buffer[start:pos]))
        if pos:
            del buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.bus.link_lost(self.peer, self)


class Bus:
    """This worker's end of the node's ZeroMQ mesh."""

    def __init__(
        self,
        worker_id: int,
        workers: int,
        links: dict[int, socket.socket],
        generation: int = 0,
    ) -> None:
        self.id = worker_id
        self.workers = workers
        self.generation = generation
        self.peer_generation = [0] * workers
        self.counters = {"sent": 0, "received": 0, "backlogged": 0, "stale": 0, "gaps": 0}
        self.on_gap: Callable[[int], None] = lambda sender: None
        self._casts: dict[str, Callable[..., Any]] = {}
        self._servers: dict[str, Callable[..., Any]] = {}
        self._pending: dict[int, tuple[asyncio.Future[Any], int]] = {}
        self._ids = itertools.count(1)
        self._seq_out = [0] * workers
        self._seq_in: dict[tuple[int, int], int] = {}
        #: messages for a peer whose link is not attached yet (sent once it is)
        self._waiting: list[deque[bytes]] = [deque() for _ in range(workers)]
        self._outbox: list[tuple[str, list[Any]] | None] = [None] * workers
        self._outbox_flush: asyncio.Handle | None = None
        self._initial = dict(links)
        self._links: list[_Link | None] = [None] * workers
        self._loop: asyncio.AbstractEventLoop | None = None
        #: peers the front reported as not answering: requests to them fail at once
        self.stalled: set[int] = set()

    # ---- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        links, self._initial = self._initial, {}
        for peer, sock in links.items():
            await self.attach(peer, sock)

    async def attach(self, peer: int, sock: socket.socket) -> None:
        """Use ``sock`` as the link to ``peer`` (at start, or after the peer restarted)."""
        assert self._loop is not None and peer != self.id
        sock.setblocking(False)
        old = self._links[peer]
        if old is not None and old.transport is not None:
            old.transport.abort()
        _, link = await self._loop.connect_accepted_socket(lambda: _Link(self, peer), sock)
        self._links[peer] = link
        waiting = self._waiting[peer]
        while waiting:
            self._write(link, waiting.popleft())

    def link_lost(self, peer: int, link: _Link) -> None:
        if self._links[peer] is link:
            self._links[peer] = None
            self._waiting[peer].clear()  # addressed to a generation that is gone

    def close(self) -> None:
        if self._outbox_flush is not None:
            self._outbox_flush.cancel()
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(BusError("bus closed"))
        self._pending.clear()
        for i, link in enumerate(self._links):
            if link is not None and link.transport is not None:
                link.transport.abort()
            self._links[i] = None
        for sock in self._initial.values():
            sock.close()
        self._initial = {}

    # ---- registration -----------------------------------------------------------------
    def on(self, op: str, handler: Callable[..., Any]) -> None:
        """Handle one-way messages ``op``: ``handler(sender, *args)``."""
        self._casts[op] = handler

    def serve(self, op: str, handler: Callable[..., Any]) -> None:
        """Answer requests ``op``: ``handler(sender, *args)`` returns (or awaits) the result."""
        self._servers[op] = handler

    def peer_restarted(self, worker: int, generation: int) -> None:
        """The supervisor says ``worker`` runs again as ``generation`` (its new link
        follows through ``attach``)."""
        self.peer_generation[worker] = generation
        self._waiting[worker].clear()
        self._outbox[worker] = None
        old = self._links[worker]
        self._links[worker] = None  # until ``attach`` brings the new link, messages wait
        if old is not None and old.transport is not None:
            old.transport.abort()
        self.stalled.discard(worker)
        self._fail_pending(worker, f"worker {worker} restarted")

    def peer_stalled(self, worker: int) -> None:
        """The front says ``worker`` stopped answering: fail what waits on it, and every
        new request to it, until it answers again or is restarted."""
        self.stalled.add(worker)
        self._fail_pending(worker, f"worker {worker} is not answering")

    def peer_resumed(self, worker: int) -> None:
        self.stalled.discard(worker)

    def _fail_pending(self, worker: int, reason: str) -> None:
        for req_id, (future, to) in list(self._pending.items()):
            if to == worker:
                del self._pending[req_id]
                if not future.done():
                    future.set_exception(BusError(reason))

    # ---- sending ----------------------------------------------------------------------
    def queue(self, to: int, op: str, item: Any) -> None:
        """Add ``item`` to this turn's ``op`` message for ``to`` (see the module doc)."""
        pending = self._outbox[to]
        if pending is not None and pending[0] != op:
            self._flush_outbox_to(to)
            pending = None
        if pending is None:
            self._outbox[to] = (op, [item])
            if self._outbox_flush is None:
                assert self._loop is not None
                self._outbox_flush = self._loop.call_soon(self._flush_outbox)
        else:
            pending[1].append(item)

    def _flush_outbox(self) -> None:
        self._outbox_flush = None
        for to in range(self.workers):
            if self._outbox[to] is not None:
                self._flush_outbox_to(to)

    def _flush_outbox_to(self, to: int) -> None:
        pending = self._outbox[to]
        self._outbox[to] = None
        if pending is not None:
            self.cast(to, pending[0], pending[1])

    def cast(self, to: int, op: str, *args: Any) -> None:
        if self._outbox[to] is not None:
            self._flush_outbox_to(to)
        if to == self.id:
            self._dispatch(self.id, op, args)
            return
        self._seq_out[to] += 1
        frame = pickle.dumps(
            (self.id, self.generation, self.peer_generation[to], self._seq_out[to], op, args),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        self._send(to, frame)

    def cast_all(self, op: str, *args: Any) -> None:
        """To every other worker."""
        for w in range(self.workers):
            if w != self.id:
                self.cast(w, op, *args)

    async def request(self, to: int, op: str, *args: Any, timeout: float = 5.0) -> Any:
        if to == self.id:
            result = self._servers[op](self.id, *args)
            return await result if inspect.isawaitable(result) else result
        return await self.wait(self.request_nowait(to, op, *args), op, to, timeout)

    def request_nowait(self, to: int, op: str, *args: Any) -> asyncio.Future[Any]:
        """Send a request to another worker now; ``wait`` for its answer later (so the
        caller can work while the peer does)."""
        assert self._loop is not None and to != self.id
        future: asyncio.Future[Any] = self._loop.create_future()
        if to in self.stalled:
            future.set_exception(BusError(f"worker {to} is not answering"))
            return future
        req_id = next(self._ids)
        self._pending[req_id] = (future, to)
        future.add_done_callback(lambda _f: self._pending.pop(req_id, None))
        self.cast(to, REQUEST, req_id, op, args)
        return future

    @staticmethod
    async def wait(future: asyncio.Future[Any], op: str, to: int, timeout: float) -> Any:
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise BusError(f"request {op} to worker {to} timed out") from None

    def _send(self, to: int, frame: bytes) -> None:
        link = self._links[to]
        if link is None or link.transport is None:
            self.counters["backlogged"] += 1
            self._waiting[to].append(frame)
            return
        self._write(link, frame)

    def _write(self, link: _Link, frame: bytes) -> None:
        transport = link.transport
        assert transport is not None
        if len(frame) >= _MAX_MESSAGE:
            raise BusError("bus message too large")
        transport.writelines((len(frame).to_bytes(_HEADER, "big"), frame))
        self.counters["sent"] += 1
        if transport.get_write_buffer_size():
            self.counters["backlogged"] += 1

    # ---- receiving --------------------------------------------------------------------
    def on_message(self, frame: bytes) -> None:
        self.counters["received"] += 1
        try:
            self._on_frame(frame)
        except Exception:
            log.exception("bus message handling failed")

    def _on_frame(self, frame: bytes) -> None:
        sender, sender_gen, target_gen, seq, op, args = pickle.loads(frame)
        if target_gen != self.generation:
            self.counters["stale"] += 1
            return
        key = (sender, sender_gen)
        expected = self._seq_in.get(key, 0) + 1
        self._seq_in[key] = seq
        if seq != expected and expected != 1:
            self.counters["gaps"] += 1
            self.on_gap(sender)
        self._dispatch(sender, op, args)

    def _dispatch(self, sender: int, op: str, args: tuple[Any, ...]) -> None:
        if op == REQUEST:
            req_id, name, req_args = args
            assert self._loop is not None
            self._loop.create_task(self._answer(sender, req_id, name, req_args))
        elif op == RESPONSE:
            req_id, ok, value = args
            entry = self._pending.pop(req_id, None)
            if entry is not None and not entry[0].done():
                if ok:
                    entry[0].set_result(value)
                else:
                    entry[0].set_exception(value)
        else:
            handler = self._casts.get(op)
            if handler is None:
                log.warning("no handler for bus message %s", op)
                return
            handler(sender, *args)

    async def _answer(self, sender: int, req_id: int, name: str, args: tuple[Any, ...]) -> None:
        try:
            result = self._servers[name](sender, *args)
            if inspect.isawaitable(result):
                result = await result
            self.cast(sender, RESPONSE, req_id, True, result)
        except Exception as exc:
            self.cast(sender, RESPONSE, req_id, False, exc)
