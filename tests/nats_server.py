"""A real ``nats-server`` for tests (Debian package ``nats-server``): free port, temp dir
(JetStream's store), stop/start on demand on the same port.

``nats_available()`` tells whether the binary is installed; tests skip cleanly otherwise.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.procutil import free_port
from tests.server_process import ServerProcess, die_with_parent

__all__ = ["NatsServer", "nats_available"]

_BINARY = "nats-server"


def nats_available() -> bool:
    return shutil.which(_BINARY) is not None or Path("/usr/sbin/nats-server").exists()


def _binary() -> str:
    return shutil.which(_BINARY) or "/usr/sbin/nats-server"


class NatsServer(ServerProcess):
    """One ``nats-server`` on 127.0.0.1 (with JetStream); the port survives restarts."""

    log_name = "nats.log"

    def __init__(self, *, port: int | None = None, jetstream: bool = True) -> None:
        super().__init__("relay-nats-")
        self.port = port or free_port()
        self.jetstream = jetstream

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        args = [_binary(), "-a", "127.0.0.1", "-p", str(self.port),
                "-l", str(Path(self.workdir) / self.log_name)]  # fmt: skip
        if self.jetstream:
            args += ["-js", "-sd", str(Path(self.workdir) / "js")]
        self._proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
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
