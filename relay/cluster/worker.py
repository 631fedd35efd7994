"""A worker process: one ``RelayServer`` serving the sockets the front hands over.

Started by the front as ``python -m relay.cluster.worker --id I ...`` with one end of a
``SOCK_SEQPACKET`` socket pair (``--fd``). Messages on it:

* front -> worker: ``b"A"`` with accepted connections attached (SCM_RIGHTS);
  ``b"R<worker>:<generation>"`` when another worker was restarted, with this worker's
  end of the new link to it attached;
* worker -> front: ``b"L<connections>"`` every 250 ms (the front balances on it).

The worker exits when the front goes away (PR_SET_PDEATHSIG, plus a check of the
parent pid), so there are never orphans.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import pickle
import signal
import socket
import sys
from dataclasses import dataclass

__all__ = ["WorkerSpec", "main"]

log = logging.getLogger("relay.worker")

PR_SET_PDEATHSIG = 1
MAX_FDS = 64


@dataclass(frozen=True)
class WorkerSpec:
    """Where this worker sits in its node."""

    id: int
    workers: int
    #: (peer worker, file descriptor of this worker's end of the link to it)
    links: tuple[tuple[int, int], ...]
    generation: int
    peer_generations: tuple[int, ...]
    node_uid: str


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class WorkerProcess:
    """Glue between the front's control socket and the worker's server."""

    def __init__(self, spec: WorkerSpec, ctrl: socket.socket, config: object) -> None:
        from relay.server import RelayServer

        self.spec = spec
        self.ctrl = ctrl
        self.server = RelayServer(config, cluster=spec)  # type: ignore[arg-type]
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
            for sock in socks:
                asyncio.get_running_loop().create_task(self.server.adopt(sock))

    async def _report_load(self) -> None:
        while True:
            if os.getppid() != self.parent:
                self.stop.set()
                return
            try:
                self.ctrl.send(b"L%d" % len(self.server.node.connections))
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.stop.set()
                return
            await asyncio.sleep(0.25)


def main(argv: list[str] | None = None) -> None:
    _die_with_parent()
    parser = argparse.ArgumentParser(prog="relay-worker")
    parser.add_argument("--id", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--links", default="", help="peer:fd,... (this worker's link ends)")
    parser.add_argument("--generation", type=int, default=0)
    parser.add_argument("--peers", default="")
    parser.add_argument("--node-uid", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--config", required=True, help="pickled Config written by the front")
    args = parser.parse_args(argv)
    with open(args.config, "rb") as fh:
        config = pickle.load(fh)
    from relay.log import setup_logging

    setup_logging(config.log.level, config.log.file)
    peers = tuple(int(x) for x in args.peers.split(",")) if args.peers else (0,) * args.workers
    links = tuple(
        (int(peer), int(fd)) for peer, fd in (x.split(":") for x in args.links.split(",") if x)
    )
    spec = WorkerSpec(args.id, args.workers, links, args.generation, peers, args.node_uid)
    ctrl = socket.socket(fileno=args.fd)
    worker = WorkerProcess(spec, ctrl, config)
    try:
        import uvloop

        uvloop.run(worker.run())
    except ImportError:
        asyncio.run(worker.run())
    sys.exit(0)


if __name__ == "__main__":
    main()
