"""A worker process: one ``RelayServer`` serving the sockets the front hands over.

Forked by the front (``run_worker``), named ``relay-worker-I`` (``/proc/PID/comm``), with
one end of a ``SOCK_SEQPACKET`` socket pair to the front. Messages on it:

* front -> worker: ``b"A"`` with accepted connections attached (SCM_RIGHTS), ``b"A<n>"``
  when they came to the ``n``-th listening address (``transports/ports.plan``: 1 is the
  internal port);
  ``b"R<worker>:<generation>"`` when another worker was restarted, with this worker's
  end of the new link to it attached; ``b"S<worker>"`` when another worker stopped
  answering (bus requests to it then fail at once) and ``b"U<worker>"`` when it answers
  again;
* worker -> front: ``b"L<connections>"`` every 250 ms: the front balances on it, and a
  worker that has not sent one for a while is stalled (see ``process/front.py``).

The worker exits when the front goes away (PR_SET_PDEATHSIG, plus a check of the
parent pid), so there are never orphans.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os
import signal
import socket

from relay.cluster.spec import WorkerSpec
from relay.config import Config
from relay.server import RelayServer

__all__ = ["WorkerSpec", "run_worker"]

log = logging.getLogger("relay.worker")

PR_SET_NAME = 15
PR_SET_PDEATHSIG = 1
MAX_FDS = 64


def _die_with_parent(name: bytes) -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        libc.prctl(PR_SET_NAME, ctypes.c_char_p(name[:15]))
    except OSError:
        pass


class WorkerProcess:
    """Glue between the front's control socket and the worker's server."""

    def __init__(self, spec: WorkerSpec, ctrl: socket.socket, config: Config) -> None:
        self.spec = spec
        self.ctrl = ctrl
        self.server = RelayServer(config, cluster=spec)
        self.parent = os.getppid()
        self.stop = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        await self.server.start(listen=False)
        # Everything built so far lives as long as the process: keep it out of the cyclic
        # collector, and collect young objects less often (fewer latency spikes).
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        self.ctrl.setblocking(False)
        loop.add_reader(self.ctrl.fileno(), self._on_ctrl)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        reporter = loop.create_task(self._report_load())
        await self.stop.wait()
        loop.remove_reader(self.ctrl.fileno())
        reporter.cancel()
        await self.server.stop()

    def _on_ctrl(self) -> None:
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(self.ctrl, 4096, MAX_FDS)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                msg, fds = b"", []
            if not msg and not fds:
                log.error("front process is gone; shutting down")
                self.stop.set()
                return
            socks = [socket.socket(fileno=fd) for fd in fds]
            if msg.startswith(b"R"):
                worker, generation = (int(x) for x in msg[1:].split(b":"))
                link = socks.pop() if socks else None
                self.server.worker_restarted(worker, generation, link)
            elif msg[:1] in (b"S", b"U") and self.server.bus is not None:
                peer = int(msg[1:])
                if msg.startswith(b"S"):
                    self.server.bus.peer_stalled(peer)
                else:
                    self.server.bus.peer_resumed(peer)
            listener = int(msg[1:] or 0) if msg.startswith(b"A") else 0
            for sock in socks:
                asyncio.get_running_loop().create_task(self.server.adopt(sock, listener))

    async def _report_load(self) -> None:
        while True:
            if os.getppid() != self.parent:
                self.stop.set()
                return
            try:
                self.ctrl.send(b"L%d" % len(self.server.node.hub.connections))
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.stop.set()
                return
            await asyncio.sleep(0.25)


def run_worker(spec: WorkerSpec, ctrl_fd: int, config: Config) -> int:
    """The body of a forked worker; returns its exit code."""
    if os.getppid() == 1:
        return 1  # the front died before the fork got here
    _die_with_parent(b"relay-worker-%d" % spec.id)
    from relay.log import setup_logging

    setup_logging(config.log.level, config.log.file)
    worker = WorkerProcess(spec, socket.socket(fileno=ctrl_fd), config)
    try:
        import uvloop

        uvloop.run(worker.run())
    except ImportError:
        asyncio.run(worker.run())
    return 0
