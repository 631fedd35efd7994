"""Micro-benchmark: what one hop between two worker processes costs on this machine.

Two asyncio processes bounce a 100-byte message ``--rounds`` times, once over ZeroMQ
PUSH/PULL ``ipc://`` sockets (as ``relay/cluster/bus.py`` does) and once over a Unix
socketpair, and the pickling of 500 batch items is timed as dataclasses and as the
``relay/engines/wire.py`` tuples. Run: ``python -m bench.micro_bus [--rounds N]``.
Numbers feed the cost model in docs/architecture.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import resource
import socket
import tempfile
import time
from typing import Any

import zmq

from relay.engines.base import PublishOptions
from relay.engines.wire import items_to_wire
from relay.protocol.messages import Publication

MESSAGE = b"x" * 100


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def _zmq_side(ipc: str, me: str, peer: str, rounds: int, first: bool) -> tuple[float, float]:
    ctx: zmq.Context[Any] = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind(f"ipc://{ipc}/{me}")
    push = ctx.socket(zmq.PUSH)
    push.connect(f"ipc://{ipc}/{peer}")
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    seen = 0

    def drain() -> None:
        nonlocal seen
        while int(pull.getsockopt(zmq.EVENTS)) & zmq.POLLIN and not done.done():
            message = pull.recv(zmq.NOBLOCK)
            seen += 1
            if first and seen >= rounds:
                done.set_result(None)
                return
            push.send(message, zmq.NOBLOCK)
            if seen >= rounds:
                done.set_result(None)

    loop.add_reader(int(pull.getsockopt(zmq.FD)), drain)
    await asyncio.sleep(0.3)
    t0, c0 = time.perf_counter(), _cpu()
    if first:
        push.send(MESSAGE)
    await done
    out = (time.perf_counter() - t0, _cpu() - c0)
    await asyncio.sleep(0.2)
    ctx.destroy(linger=0)
    return out


async def _socket_side(sock: socket.socket, rounds: int, first: bool) -> tuple[float, float]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    class Bounce(asyncio.Protocol):
        seen = 0

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.seen += 1
            if first and self.seen >= rounds:
                done.set_result(None)
                return
            self.transport.write(data)
            if self.seen >= rounds and not done.done():
                done.set_result(None)

    transport, _ = await loop.connect_accepted_socket(Bounce, sock)
    await asyncio.sleep(0.3)
    t0, c0 = time.perf_counter(), _cpu()
    if first:
        transport.write(MESSAGE)
    await done
    out = (time.perf_counter() - t0, _cpu() - c0)
    await asyncio.sleep(0.2)
    transport.close()
    return out


def _pair(kind: str, rounds: int) -> tuple[float, float]:
    """Round-trip wall time and initiator CPU, in µs per round trip."""
    ipc = tempfile.mkdtemp()
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echoing side
        side = _zmq_side(ipc, "b", "a", rounds, False) if kind == "zmq" else None
        asyncio.run(side if side is not None else _socket_side(b, rounds, False))
        os._exit(0)
    main = (
        _zmq_side(ipc, "a", "b", rounds, True) if kind == "zmq" else _socket_side(a, rounds, True)
    )
    wall, cpu = asyncio.run(main)
    os.waitpid(pid, 0)
    return wall / rounds * 1e6, cpu / rounds * 1e6


def _pickle_ms(obj: object, times: int = 100) -> float:
    t0 = time.perf_counter()
    for _ in range(times):
        pickle.loads(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    return (time.perf_counter() - t0) / times * 1e3


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.micro_bus", description=__doc__)
    p.add_argument("--rounds", type=int, default=5000)
    args = p.parse_args()
    print("| what | wall µs per round trip | initiator CPU µs per round trip |")
    print("|---|---|---|")
    for kind, name in (("zmq", "ZeroMQ PUSH/PULL ipc://"), ("socket", "Unix socketpair")):
        wall, cpu = _pair(kind, args.rounds)
        print(f"| {name} | {wall:.1f} | {cpu:.1f} |")
    opts = PublishOptions(history_size=100, history_ttl=300.0)
    data = b'{"t":1234567890123,"p":"xxxxxxxxxxxxxxxxxxxx"}'
    items = [(f"hist:c{i % 100}", Publication(data), opts) for i in range(500)]
    print()
    print("| 500 batch items, pickle dump + load | ms |")
    print("|---|---|")
    print(f"| as dataclasses | {_pickle_ms(items):.3f} |")
    print(f"| as engines/wire.py tuples | {_pickle_ms(items_to_wire(items)):.3f} |")


if __name__ == "__main__":
    main()
