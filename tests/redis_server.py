"""A real ``redis-server`` for tests: free port, temp dir, stop/start on demand.

``redis_available()`` tells whether the binary is installed (Debian package
``redis-server``); tests that need it skip cleanly otherwise. The server keeps no data
on disk, so a restart starts empty (like a Redis that lost its data); pass
``persist=True`` to keep the dataset across ``stop()``/``start()`` (SAVE on shutdown).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.procutil import free_port
from tests.server_process import ServerProcess, die_with_parent

__all__ = ["RedisServer", "redis_available"]

_BINARY = "redis-server"


def redis_available() -> bool:
    return shutil.which(_BINARY) is not None


class RedisServer(ServerProcess):
    """One ``redis-server`` process on 127.0.0.1; the port stays the same across restarts."""

    log_name = "redis.log"

    def __init__(
        self, *, port: int | None = None, persist: bool = False, extra: tuple[str, ...] = ()
    ) -> None:
        super().__init__("relay-redis-")
        self._own_port = port is None  # chosen here: another may be tried if it is taken
        self.port = port or free_port()
        self.persist = persist
        self.extra = extra  # more redis-server arguments (``--replicaof HOST PORT``)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Start; a first start on a port chosen here that another process took in the
        meantime is tried again on a new free port (twice at most)."""
        for attempt in range(3):
            try:
                self._start(timeout)
                self._own_port = False  # from now on the port stays (restarts)
                return
            except RuntimeError:
                if not self._own_port or attempt == 2:
                    raise
                self.port = free_port()

    def _start(self, timeout: float) -> None:
        if self.running:
            return
        args = [
            _BINARY,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.workdir,
            "--appendonly", "no",
            "--save", "3600 1" if self.persist else "",
            "--daemonize", "no",
            "--logfile", str(Path(self.workdir) / self.log_name),
            *self.extra,
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,  # no orphaned server when pytest is killed
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

    def client(self) -> redis.Redis:
        """A synchronous client for assertions (INFO, MONITOR-free counting, keys)."""
        return redis.Redis(port=self.port, socket_timeout=5)
