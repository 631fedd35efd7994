"""ZeroMQ links between the workers of one node (PUSH/PULL over ``ipc://``).

Every worker binds one PULL inbox and connects one PUSH socket to each other worker's
inbox; each link therefore keeps order. On top of it:

* ``cast(to, op, *args)`` — a one-way message; ``request(to, op, *args)`` — awaits the
  answer of the handler registered with ``serve(op, ...)``;
* ``queue(to, op, item)`` — one item of a message that collects every item queued for
  ``to`` in this loop turn: the handler gets ``(sender, items)`` once. Queued items
  leave before any later ``cast`` or ``request`` on the same link, so order per link
  is kept (a fan-out of 500 publications is one message, not 500);
* no silent loss: sends never block the loop (``NOBLOCK``); at the high-water mark the
  message waits in a per-link backlog that is retried, and both events are counted.
  Every message carries a per-link sequence number and the generation of the sender
  and of the worker it was meant for: a restarted worker drops messages addressed to
  its previous life, and a gap on a link is reported to ``on_gap``.

Messages are pickled: the links are private ``ipc://`` sockets in a directory only the
node's own processes can reach.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import pickle
from collections import deque
from collections.abc import Callable
from typing import Any

import zmq

__all__ = ["Bus", "BusError", "inbox_address"]

log = logging.getLogger("relay.bus")

REQUEST, RESPONSE = "__req__", "__res__"


class BusError(Exception):
    """A request could not be answered (timeout, peer restarted, remote failure)."""


def inbox_address(ipc_dir: str, worker: int) -> str:
    return f"ipc://{ipc_dir}/worker-{worker}.sock"


class Bus:
    """This worker's end of the node's ZeroMQ mesh."""

    def __init__(
        self,
        worker_id: int,
        workers: int,
        ipc_dir: str,
        generation: int = 0,
        hwm: int = 100_000,
    ) -> None:
        self.id = worker_id
        self.workers = workers
        self.ipc_dir = ipc_dir
        self.generation = generation
        self.hwm = hwm
        self.peer_generation = [0] * workers
        self.counters = {"sent": 0, "received": 0, "backlogged": 0, "stale": 0, "gaps": 0}
        self.on_gap: Callable[[int], None] = lambda sender: None
        self._casts: dict[str, Callable[..., Any]] = {}
        self._servers: dict[str, Callable[..., Any]] = {}
        self._pending: dict[int, tuple[asyncio.Future[Any], int]] = {}
        self._ids = itertools.count(1)
        self._seq_out = [0] * workers
        self._seq_in: dict[tuple[int, int], int] = {}
        self._backlog: list[deque[bytes]] = [deque() for _ in range(workers)]
        self._outbox: list[tuple[str, list[Any]] | None] = [None] * workers
        self._outbox_flush: asyncio.Handle | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._ctx: zmq.Context[Any] | None = None
        self._pull: zmq.Socket[Any] | None = None
        self._push: list[zmq.Socket[Any] | None] = [None] * workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd = -1

    # ---- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ctx = zmq.Context()
        pull = self._pull = self._ctx.socket(zmq.PULL)
        pull.setsockopt(zmq.RCVHWM, self.hwm)
        pull.setsockopt(zmq.LINGER, 0)
        pull.bind(inbox_address(self.ipc_dir, self.id))
        for w in range(self.workers):
            if w == self.id:
                continue
            push = self._ctx.socket(zmq.PUSH)
            push.setsockopt(zmq.SNDHWM, self.hwm)
            push.setsockopt(zmq.LINGER, 0)
            push.connect(inbox_address(self.ipc_dir, w))
            self._push[w] = push
        self._fd = int(pull.getsockopt(zmq.FD))
        self._loop.add_reader(self._fd, self._drain)
        self._loop.call_soon(self._drain)

    def close(self) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._fd = -1
        if self._retry is not None:
            self._retry.cancel()
        if self._outbox_flush is not None:
            self._outbox_flush.cancel()
        for future, _ in self._pending.values():
            if not future.done():
                future.set_exception(BusError("bus closed"))
        self._pending.clear()
        if self._ctx is not None:
            self._ctx.destroy(linger=0)
            self._ctx = None

    # ---- registration -----------------------------------------------------------------
    def on(self, op: str, handler: Callable[..., Any]) -> None:
        """Handle one-way messages ``op``: ``handler(sender, *args)``."""
        self._casts[op] = handler

    def serve(self, op: str, handler: Callable[..., Any]) -> None:
        """Answer requests ``op``: ``handler(sender, *args)`` returns (or awaits) the result."""
        self._servers[op] = handler

    def peer_restarted(self, worker: int, generation: int) -> None:
        """The supervisor says ``worker`` runs again as ``generation``."""
        self.peer_generation[worker] = generation
        self._backlog[worker].clear()
        self._outbox[worker] = None
        for req_id, (future, to) in list(self._pending.items()):
            if to == worker:
                del self._pending[req_id]
                if not future.done():
                    future.set_exception(BusError(f"worker {worker} restarted"))

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
        req_id = next(self._ids)
        future: asyncio.Future[Any] = self._loop.create_future()
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
        backlog = self._backlog[to]
        if backlog:
            backlog.append(frame)
            return
        push = self._push[to]
        assert push is not None
        try:
            push.send(frame, zmq.NOBLOCK)
            self.counters["sent"] += 1
        except zmq.Again:
            self.counters["backlogged"] += 1
            backlog.append(frame)
            self._schedule_retry()

    def _schedule_retry(self) -> None:
        if self._retry is None and self._loop is not None:
            self._retry = self._loop.call_later(0.001, self._flush_backlog)

    def _flush_backlog(self) -> None:
        self._retry = None
        for to, backlog in enumerate(self._backlog):
            push = self._push[to]
            while backlog and push is not None:
                try:
                    push.send(backlog[0], zmq.NOBLOCK)
                except zmq.Again:
                    self._schedule_retry()
                    break
                backlog.popleft()
                self.counters["sent"] += 1

    # ---- receiving --------------------------------------------------------------------
    def _drain(self) -> None:
        pull = self._pull
        if pull is None:
            return
        while int(pull.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            try:
                frame = pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
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
