"""A real ``redis-server`` for tests: free port, temp dir, stop/start on demand.

``redis_available()`` tells whether the binary is installed (Debian package
``redis-server``); tests that need it skip cleanly otherwise. The server keeps no data
on disk, so a restart starts empty (like a Redis that lost its data); pass
``persist=True`` to keep the dataset across ``stop()``/``start()`` (SAVE on shutdown).
"""

from __future__ import annotations

import ctypes
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import redis

from tests.procutil import free_port

__all__ = ["RedisServer", "redis_available"]

_BINARY = "redis-server"
_PR_SET_PDEATHSIG = 1


def redis_available() -> bool:
    return shutil.which(_BINARY) is not None


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies (Linux; no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1; the port stays the same across restarts."""

    def __init__(
        self, *, port: int | None = None, persist: bool = False, extra: tuple[str, ...] = ()
    ) -> None:
        self.port = port or free_port()
        self.persist = persist
        self.extra = extra  # more redis-server arguments (``--replicaof HOST PORT``)
        self._dir = tempfile.TemporaryDirectory(prefix="relay-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        args = [
            _BINARY,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self._dir.name,
            "--appendonly", "no",
            "--save", "3600 1" if self.persist else "",
            "--daemonize", "no",
            "--logfile", str(Path(self._dir.name) / "redis.log"),
            *self.extra,
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,  # no orphaned server when pytest is killed
        )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, socket_timeout=0.5)
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    if self._proc is not None and self._proc.poll() is not None:
                        raise RuntimeError(f"redis-server exited: {self.log_tail()}") from None
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGKILL with ``kill=True``, like a crash)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        if kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def client(self) -> redis.Redis:
        """A synchronous client for assertions (INFO, MONITOR-free counting, keys)."""
        return redis.Redis(port=self.port, socket_timeout=5)

    def log_tail(self, lines: int = 20) -> str:
        path = Path(self._dir.name) / "redis.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
