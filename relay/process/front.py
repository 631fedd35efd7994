"""The front process: one public port, N workers, sockets handed over, nothing read.

``serve(config)`` is what ``relay --config FILE`` runs:

1. bind the public port; prepare the Prometheus multiprocess directory
   (``PROMETHEUS_MULTIPROC_DIR`` is set before any worker starts);
2. import the worker's stack once, then fork ``workers`` worker processes
   (``relay.process.worker``), each with one end of a ``SOCK_SEQPACKET`` control pair
   and its ends of the worker links: one Unix stream socket pair for every two workers
   (``cluster/bus.py``). Forking after the imports lets all workers share the pages of
   the interpreter and its modules (measured in docs/architecture.md);
3. accept connections and pass each one (SCM_RIGHTS) to the least-loaded worker, then
   close the front's copy: the front never reads a byte;
4. restart a worker that dies (within a second), with new links to the live workers,
   and tell each of them its new generation, handing over their end of the new link;
   watch that every worker reports its load (every 250 ms): one silent for
   ``STALL_AFTER`` is *stalled* (no new connections; the others fail their bus requests
   to it at once, error 100, instead of waiting), one silent for ``KILL_AFTER`` is
   killed and so restarted: its clients reconnect to the others and recover;
5. on SIGTERM/SIGINT stop accepting, forward the signal, wait for the workers (they close
   their clients with 3001), kill stragglers after the shutdown timeout, clean up.

The front runs a selector loop, no asyncio: it imports the worker's stack only so that
its forks share it, and never runs any of it.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import selectors
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass

from relay.config import Config

__all__ = ["Supervisor", "mesh", "serve", "worker_count"]

log = logging.getLogger("relay.front")

ACCEPT_BATCH = 256
SHUTDOWN_CAP = 5.0
STALL_AFTER = 2.0  # seconds without a load report: stalled
KILL_AFTER = 6.0  # seconds without a load report: killed and restarted
START_GRACE = 30.0  # a new worker's first report may take this long (engine connect)


def worker_count(config: Config) -> int:
    return config.workers if config.workers > 0 else (os.cpu_count() or 1)


class Forked:
    """A forked worker process, with the part of ``subprocess.Popen`` the front uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"worker pid {self.pid} still running")
            time.sleep(0.02)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


@dataclass
class Worker:
    id: int
    generation: int = 0
    proc: Forked | None = None
    ctrl: socket.socket | None = None
    load: int = 0
    handed: int = 0
    started_at: float = 0.0
    seen: float = 0.0  # when its last message came
    reported: bool = False  # it has sent a message since it started
    stalled: bool = False


class Supervisor:
    """Owns the listening socket and the worker processes."""

    def __init__(self, config: Config, workers: int | None = None) -> None:
        self.config = config
        self.n = workers or worker_count(config)
        self.node_uid = str(uuid.uuid4())
        self.workers = [Worker(i) for i in range(self.n)]
        self.sel = selectors.DefaultSelector()
        self.listeners: list[socket.socket] = []  # as ``transports/ports.plan`` lists them
        self.stopping = False
        self.exit_code = 0
        self.metrics_dir = tempfile.mkdtemp(prefix="relay-metrics-")
        self._wake_r, self._wake_w = socket.socketpair()
        self._last_watch = time.monotonic()

    # ---- setup ----------------------------------------------------------------------------
    def bind(self) -> None:
        """Bind every address of ``transports/ports.plan``: the external and, with
        ``internal_port``, the internal one (the workers learn which by its index)."""
        from relay.transports.ports import plan

        for listener in plan(self.config):
            self.listeners.append(_listen(listener.address, listener.port))
            log.info("serving %s endpoints on port %d", listener.label, self._port(-1))

    def _port(self, index: int) -> int:
        port: int = self.listeners[index].getsockname()[1]
        return port

    @property
    def port(self) -> int:
        """The first listener's port."""
        return self._port(0)

    def _prepare(self) -> None:
        # prometheus_client reads this when it is imported: before the worker's stack.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = self.metrics_dir
        importlib.import_module("relay.server")
        gc.freeze()  # what the forks share stays out of the collector (no copy-on-write)

    def spawn(self, worker: Worker, links: dict[int, socket.socket]) -> None:
        """Fork ``worker`` with ``links`` (peer -> its end of the link to that peer)."""
        front_end, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        spec_links = tuple((peer, sock.fileno()) for peer, sock in links.items())
        peers = tuple(w.generation for w in self.workers)
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the front's code
            code = 1
            try:
                _become_worker({worker_end.fileno(), *(fd for _, fd in spec_links)})
                from relay.process.worker import WorkerSpec, run_worker

                spec = WorkerSpec(worker.id, self.n, spec_links, worker.generation, peers,
                                  self.node_uid)  # fmt: skip
                code = run_worker(spec, worker_end.fileno(), self.config)
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        worker.proc = Forked(pid)
        worker_end.close()
        for sock in links.values():
            sock.close()
        front_end.setblocking(False)
        worker.ctrl = front_end
        worker.load = worker.handed = 0
        worker.started_at = worker.seen = time.monotonic()
        worker.reported = worker.stalled = False
        self.sel.register(front_end, selectors.EVENT_READ, ("ctrl", worker))
        log.info("worker %d started (pid %d, generation %d)", worker.id, pid, worker.generation)

    # ---- main loop --------------------------------------------------------------------------
    def run(self) -> int:
        if not self.listeners:
            self.bind()
        self._prepare()
        links = mesh(self.n)
        for worker in self.workers:
            self.spawn(worker, links[worker.id])
        for index, listener in enumerate(self.listeners):
            self.sel.register(listener, selectors.EVENT_READ, ("accept", index))
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, ("signal", None))
        old_fd = signal.set_wakeup_fd(self._wake_w.fileno())
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(sig, lambda *_: None)
        ports = ", ".join(str(self._port(i)) for i in range(len(self.listeners)))
        log.info("front listening on port %s with %d workers", ports, self.n)
        try:
            while not self.stopping:
                for key, _ in self.sel.select(timeout=0.2):
                    self._on_event(key.data)
                self._reap()
                self._watch(time.monotonic())
            self._shutdown()
        finally:
            signal.set_wakeup_fd(old_fd)
            self._cleanup()
        return self.exit_code

    def _on_event(self, data: tuple[str, Worker | int | None]) -> None:
        kind, target = data
        if kind == "accept" and isinstance(target, int):
            self._accept(target)
        elif kind == "ctrl" and isinstance(target, Worker):
            self._read_ctrl(target)
        elif kind == "signal":
            self._on_signals()

    def _on_signals(self) -> None:
        try:
            signums = self._wake_r.recv(64)
        except BlockingIOError:
            return
        for signum in signums:
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("front received signal %d: shutting down", signum)
                self.stopping = True

    # ---- connections ------------------------------------------------------------------
    def _accept(self, index: int) -> None:
        listener = self.listeners[index]
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: keep serving, retry on the next turn
                log.warning("accept failed: %s", exc)
                return
            try:
                self._hand_over(conn, b"A%d" % index if index else b"A")
            finally:
                conn.close()

    def _hand_over(self, conn: socket.socket, notice: bytes = b"A") -> None:
        attached = [w for w in self.workers if w.ctrl is not None]
        live = [w for w in attached if not w.stalled] or attached
        if not live:
            return
        worker = min(live, key=lambda w: w.load + w.handed)
        assert worker.ctrl is not None
        try:
            socket.send_fds(worker.ctrl, [notice], [conn.fileno()])
            worker.handed += 1
        except OSError as exc:
            log.warning("could not pass a connection to worker %d: %s", worker.id, exc)

    def _read_ctrl(self, worker: Worker) -> None:
        assert worker.ctrl is not None
        while True:
            try:
                msg = worker.ctrl.recv(64)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                msg = b""
            if not msg:
                self._detach(worker)
                return
            worker.seen, worker.reported = time.monotonic(), True
            if worker.stalled:
                worker.stalled = False
                log.warning("worker %d answers again", worker.id)
                self._tell_others(worker, b"U%d" % worker.id)
            if msg.startswith(b"L"):
                worker.load, worker.handed = int(msg[1:]), 0

    def _tell_others(self, about: Worker, msg: bytes) -> None:
        for other in self.workers:
            if other is not about and other.ctrl is not None:
                try:
                    other.ctrl.send(msg)
                except OSError as exc:
                    log.warning("could not tell worker %d: %s", other.id, exc)

    def _detach(self, worker: Worker) -> None:
        if worker.ctrl is not None:
            self.sel.unregister(worker.ctrl)
            worker.ctrl.close()
            worker.ctrl = None

    # ---- supervision ------------------------------------------------------------------
    def _reap(self) -> None:
        for worker in self.workers:
            proc = worker.proc
            if proc is None or proc.poll() is None:
                continue
            log.error("worker %d (pid %d) exited with %s", worker.id, proc.pid, proc.returncode)
            self._detach(worker)
            _mark_dead(proc.pid)
            worker.proc = None
            if self.stopping:
                continue
            worker.generation += 1
            links: dict[int, socket.socket] = {}
            for other in self.workers:
                if other is worker or other.ctrl is None:
                    continue  # a dead peer gets its link to this worker when it restarts
                mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    notice = b"R%d:%d" % (worker.id, worker.generation)
                    socket.send_fds(other.ctrl, [notice], [theirs.fileno()])
                    links[other.id] = mine
                except OSError:
                    mine.close()
                finally:
                    theirs.close()
            self.spawn(worker, links)

    def _watch(self, now: float) -> None:
        """Stall or kill the workers that stopped reporting (see the module doc)."""
        gap, self._last_watch = now - self._last_watch, now
        if gap > 1.0:  # the front itself did not run: nobody's silence counts
            for worker in self.workers:
                worker.seen += gap
            return
        for worker in self.workers:
            if worker.proc is None or worker.ctrl is None or self.stopping:
                continue
            silent = now - worker.seen
            if not worker.reported:
                if silent >= START_GRACE:
                    log.error("worker %d did not start in %.0f s: killed", worker.id, silent)
                    worker.proc.kill()
            elif silent >= KILL_AFTER:
                log.error("worker %d silent for %.1f s: killed", worker.id, silent)
                worker.proc.kill()
            elif silent >= STALL_AFTER and not worker.stalled:
                worker.stalled = True
                log.error("worker %d silent for %.1f s: stalled", worker.id, silent)
                self._tell_others(worker, b"S%d" % worker.id)

    def _shutdown(self) -> None:
        for listener in self.listeners:
            self.sel.unregister(listener)
            listener.close()
        self.listeners = []
        for worker in self.workers:
            if worker.proc is not None and worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + min(self.config.shutdown.timeout, SHUTDOWN_CAP)
        for worker in self.workers:
            if worker.proc is None:
                continue
            try:
                worker.proc.wait(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                log.error("worker %d did not stop in time: killed", worker.id)
                worker.proc.kill()
                worker.proc.wait(SHUTDOWN_CAP)
                self.exit_code = 1
            _mark_dead(worker.proc.pid)

    def _cleanup(self) -> None:
        for worker in self.workers:
            self._detach(worker)
        shutil.rmtree(self.metrics_dir, ignore_errors=True)


def _become_worker(keep: set[int]) -> None:
    """In a fresh fork: drop the front's signal handling and every descriptor but ``keep``.

    The front's objects stay referenced by the suspended frames of this process, so no
    destructor of theirs ever runs on a descriptor number the worker reuses.
    """
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _listen(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address or ("::" if family == socket.AF_INET6 else ""), port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def mesh(n: int) -> list[dict[int, socket.socket]]:
    """One stream socket pair per two workers: ``mesh[i][j]`` is i's end of the i-j link."""
    mesh: list[dict[int, socket.socket]] = [{} for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            mesh[i][j], mesh[j][i] = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return mesh


def _mark_dead(pid: int) -> None:
    """prometheus_client's rule for a dead process: drop its live gauge files."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _claim_history_dir(config: Config) -> None:
    """With ``engine.memory.persistence.dir``: claim it for this many workers before any
    starts, repartitioning history written with another number (``store_layout.claim_layout``)
    in a child process, so the front keeps none of it in memory. A failure stops the
    start once, instead of a crash loop of workers."""
    directory = config.engine.memory.persistence.dir
    if config.engine.type != "memory" or not directory:
        return
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from relay.engines.store_layout import claim_layout

            claim_layout(directory, worker_count(config))
            code = 0
        except Exception as exc:
            log.critical("engine.memory.persistence: %s", exc)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(1)


def serve(config: Config) -> None:
    """Run the front and its workers until SIGTERM/SIGINT; exit with the front's code.

    ``pid_file``: the front's PID is written there (mode 0600) before it binds and removed
    on exit, as Centrifugo's ``tools.WritePidFile`` does."""
    pid_file = config.pid_file
    if pid_file:
        try:
            fd = os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
        except OSError as exc:
            log.critical("error writing PID: %s", exc)
            sys.exit(1)
    try:
        _claim_history_dir(config)
        code = Supervisor(config).run()
    finally:
        if pid_file:
            try:
                os.remove(pid_file)
            except OSError:
                pass
    sys.exit(code)
