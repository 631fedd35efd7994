"""A real ``nats-server`` for tests (Debian package ``nats-server``): free port, temp dir
(JetStream's store), stop/start on demand on the same port.

``nats_available()`` tells whether the binary is installed; tests skip cleanly otherwise.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.procutil import free_port
from tests.redis_server import _die_with_parent

__all__ = ["NatsServer", "nats_available"]

_BINARY = "nats-server"


def nats_available() -> bool:
    return shutil.which(_BINARY) is not None or Path("/usr/sbin/nats-server").exists()


def _binary() -> str:
    return shutil.which(_BINARY) or "/usr/sbin/nats-server"


class NatsServer:
    """One ``nats-server`` on 127.0.0.1 (with JetStream); the port survives restarts."""

    def __init__(self, *, port: int | None = None, jetstream: bool = True) -> None:
        self.port = port or free_port()
        self.jetstream = jetstream
        self._dir = tempfile.TemporaryDirectory(prefix="relay-nats-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        args = [_binary(), "-a", "127.0.0.1", "-p", str(self.port),
                "-l", str(Path(self._dir.name) / "nats.log")]  # fmt: skip
        if self.jetstream:
            args += ["-js", "-sd", str(Path(self._dir.name) / "js")]
        self._proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    if sock.recv(4).startswith(b"INFO"):
                        return
            except OSError:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"nats-server exited: {self.log_tail()}") from None
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)

    def stop(self, *, kill: bool = False) -> None:
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

    def log_tail(self, lines: int = 20) -> str:
        path = Path(self._dir.name) / "nats.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> NatsServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
