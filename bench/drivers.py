"""Subscriber / connection driver processes (multiprocessing, spawn, uvloop).

Each driver holds a share of the WebSocket connections in its own process and event loop,
so the client side can use every core the server leaves free. Drivers count delivered
publications into shared memory (one slot per driver, no locks) and note the monotonic
time at which they reached the goal the main process set; they never decode a push as JSON
in the hot path: ``bytes.count`` finds the publications of a (possibly coalesced) frame and
the publish timestamp of the frame's last publication gives a latency sample.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.common import make_token, proc_cpu, raise_nofile
from bench.wsclient import WSClient, open_ws

PUB_MARK = b'"pub":{'
TS_MARK = b'"t":'


@dataclass
class DriverSpec:
    """What one driver connects: one entry of ``channels`` per connection (None: connect only)."""

    url: str
    secret: str
    channels: list[str | None]
    user_prefix: str
    local_addrs: list[str] = field(default_factory=list)
    concurrency: int = 64


class _Counter:
    """The hot path of every subscriber in one driver."""

    def __init__(self, idx: int, counters: Any, done_ts: Any, target: Any, nsubs: int) -> None:
        self.idx, self.counters, self.done_ts, self.target = idx, counters, done_ts, target
        self.nsubs = nsubs
        self.count = 0
        self.lat = array("q")
        self.pongs: list[WSClient] = []

    def handler(self, ws: WSClient) -> Any:
        def on_message(opcode: int, payload: bytes) -> None:
            k = payload.count(PUB_MARK)
            if not k:
                if b"{}" in payload:  # app-level ping: answer with an empty command
                    ws.send_text(b"{}")
                return
            now = time.monotonic_ns()
            self.count += k
            idx = self.idx
            self.counters[idx] = self.count
            i = payload.rfind(TS_MARK)
            if i >= 0:
                j = i + 4
                while 48 <= payload[j] <= 57:
                    j += 1
                self.lat.append(now - int(payload[i + 4 : j]))
            if self.count >= self.target.value * self.nsubs and not self.done_ts[idx]:
                self.done_ts[idx] = now

        return on_message


async def _connect_one(
    spec: DriverSpec, n: int, channel: str | None, idx: int, counter: _Counter
) -> tuple[WSClient, int]:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    want = 2 if channel else 1

    def setup(opcode: int, payload: bytes) -> None:
        for line in payload.split(b"\n"):
            if not line.strip() or line == b"{}":
                continue
            msg = json.loads(line)
            if ready.done():
                continue
            if "error" in msg:
                ready.set_exception(RuntimeError(f"{msg['error']}"))
            elif msg.get("id") == want:
                ready.set_result(None)

    addrs = spec.local_addrs
    local = (addrs[n % len(addrs)], 0) if addrs else None
    t0 = time.monotonic_ns()
    ws = await open_ws(spec.url, setup, local_addr=local)
    token = make_token(spec.secret, f"{spec.user_prefix}-{idx}-{n}")
    frame = json.dumps({"id": 1, "connect": {"token": token}}, separators=(",", ":"))
    if channel:
        frame += "\n" + json.dumps({"id": 2, "subscribe": {"channel": channel}})
    ws.send_text(frame.encode())
    closed = ws.closed
    done, _ = await asyncio.wait([ready, closed], timeout=60, return_when="FIRST_COMPLETED")
    if ready not in done:
        ws.abort()
        raise RuntimeError(f"connect failed (close {closed.result() if closed.done() else '-'})")
    ready.result()
    ws.on_message = counter.handler(ws)
    return ws, time.monotonic_ns() - t0


async def _driver(idx: int, spec: DriverSpec, pipe: Connection, shared: tuple[Any, ...]) -> None:
    counters, done_ts, target = shared
    loop = asyncio.get_running_loop()
    nsubs = sum(1 for c in spec.channels if c)
    counter = _Counter(idx, counters, done_ts, target, nsubs)
    clients: list[WSClient] = []
    while True:
        # A thread reads the pipe: add_reader would make its fd non-blocking, and a big
        # ``send`` back to the main process would then fail with EAGAIN.
        cmd = (await loop.run_in_executor(None, pipe.recv))[0]
        if cmd == "connect":
            sem = asyncio.Semaphore(spec.concurrency)

            async def one(
                n: int, ch: str | None, sem: asyncio.Semaphore = sem
            ) -> tuple[WSClient, int]:
                async with sem:
                    return await _connect_one(spec, n, ch, idx, counter)

            t0 = time.monotonic_ns()
            results = await asyncio.gather(
                *(one(n, ch) for n, ch in enumerate(spec.channels)), return_exceptions=True
            )
            t1 = time.monotonic_ns()
            errors = [repr(r) for r in results if isinstance(r, BaseException)]
            ok = [r for r in results if not isinstance(r, BaseException)]
            clients = [ws for ws, _ in ok]
            lat = [ns for _, ns in ok]
            pipe.send(
                {"ok": len(ok), "errors": len(errors), "first_error": errors[:1]}
                | {"t0": t0, "t1": t1, "connect_ns": lat}
            )
        elif cmd == "stats":
            closed = sum(1 for ws in clients if ws.closed.done())
            codes = sorted({ws.closed.result() for ws in clients if ws.closed.done()})
            pipe.send(
                {
                    "count": counter.count,
                    "lat": counter.lat.tobytes(),
                    "closed": closed,
                    "close_codes": codes,
                }
            )
            counter.lat = array("q")
        elif cmd == "close":
            for ws in clients:
                ws.close()
            await asyncio.sleep(0.2)
            pipe.send({"closed": True})
            return


def driver_main(idx: int, spec: DriverSpec, pipe: Connection, shared: tuple[Any, ...]) -> None:
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_driver(idx, spec, pipe, shared))


class DriverPool:
    """K driver processes; the main process steers them through pipes and shared counters."""

    def __init__(self, specs: list[DriverSpec]) -> None:
        ctx = mp.get_context("spawn")
        n = len(specs)
        self.specs = specs
        self.counters = ctx.RawArray("q", n)
        self.done_ts = ctx.RawArray("q", n)
        self.target = ctx.RawValue("q", 0)
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for i, spec in enumerate(specs):
            a, b = ctx.Pipe()
            p = ctx.Process(
                target=driver_main,
                args=(i, spec, b, (self.counters, self.done_ts, self.target)),
                daemon=True,
            )
            p.start()
            self.pipes.append(a)
            self.procs.append(p)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu(self) -> float:
        return sum(proc_cpu(pid) for pid in self.pids)

    async def call(self, cmd: str, timeout: float = 180) -> list[dict[str, Any]]:
        for pipe in self.pipes:
            pipe.send((cmd,))
        loop = asyncio.get_running_loop()
        out = []
        for pipe in self.pipes:
            if not await loop.run_in_executor(None, pipe.poll, timeout):
                raise TimeoutError(f"driver did not answer {cmd!r} in {timeout}s")
            out.append(pipe.recv())
        return out

    def delivered(self) -> int:
        return sum(self.counters)

    def set_target(self, per_sub: int) -> None:
        """Each subscriber should (cumulatively) have ``per_sub`` publications."""
        for i in range(len(self.specs)):
            self.done_ts[i] = 0
        self.target.value = per_sub

    async def wait_done(self, timeout: float) -> int | None:
        """Monotonic ns at which the last driver reached its goal, None on timeout."""
        busy = [i for i, s in enumerate(self.specs) if any(s.channels)]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.done_ts[i] for i in busy):
                return max(self.done_ts[i] for i in busy)
            await asyncio.sleep(0.0005)
        return None

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.call("close"), 10)
        except (TimeoutError, EOFError, OSError):
            pass
        for p in self.procs:
            p.join(2)
            if p.is_alive():
                p.kill()


def split_round_robin(items: list[Any], k: int) -> list[list[Any]]:
    return [items[i::k] for i in range(k)]


def local_addrs(url: str, spread: bool = True) -> list[str]:
    """127.0.0.2..9 as client source addresses when the server is on loopback."""
    if spread and ("127.0.0.1" in url or "localhost" in url):
        return [f"127.0.0.{i}" for i in range(2, 10)]
    return []


def latencies_us(replies: list[dict[str, Any]]) -> list[float]:
    out: list[float] = []
    for r in replies:
        a = array("q")
        a.frombytes(r["lat"])
        out.extend(x / 1000 for x in a)
    return out
