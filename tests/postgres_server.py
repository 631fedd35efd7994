"""A real PostgreSQL for tests: a throwaway cluster (``initdb`` + ``postgres``) in a temp
dir on a free port, trust auth. Debian's ``postgresql`` package provides the binaries
(``/usr/lib/postgresql/<version>/bin``); as root, the server runs as the ``postgres``
user (PostgreSQL refuses to run as root). ``postgres_available()`` tells whether it can.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable

from tests.procutil import free_port
from tests.server_process import ServerProcess

__all__ = ["PostgresServer", "postgres_available"]


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _run_as() -> pwd.struct_passwd | None:
    if os.getuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def postgres_available() -> bool:
    return _bindir() is not None and (os.getuid() != 0 or _run_as() is not None)


def _preexec(user: pwd.struct_passwd | None) -> Callable[[], None]:
    def run() -> None:
        if user is not None:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        try:  # after the uid change, which clears it: die with the test process
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
        except (OSError, AttributeError):
            pass

    return run


class PostgresServer(ServerProcess):
    log_name = "postgres.log"
    stop_signal = signal.SIGINT  # fast shutdown

    def __init__(self) -> None:
        super().__init__("relay-pg-")
        self.port = free_port()
        self._user = _run_as()
        if self._user is not None:
            os.chown(self.workdir, self._user.pw_uid, self._user.pw_gid)
        self._initialised = False

    @property
    def dsn(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _bin(self, name: str) -> str:
        bindir = _bindir()
        assert bindir is not None
        return os.path.join(bindir, name)

    def start(self, timeout: float = 30.0) -> None:
        if self.running:
            return
        data = os.path.join(self.workdir, "data")
        if not self._initialised:
            subprocess.run(
                [self._bin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                preexec_fn=_preexec(self._user),
            )  # fmt: skip
            self._initialised = True
        log = open(os.path.join(self.workdir, "postgres.log"), "ab")  # noqa: SIM115
        self._proc = subprocess.Popen(
            [self._bin("postgres"), "-D", data, "-p", str(self.port), "-k", self.workdir,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=log, stderr=log, preexec_fn=_preexec(self._user),
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"postgres exited: {self.log_tail()}") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.sql("SELECT 1", retries=100)

    def sql(self, statement: str, retries: int = 1) -> str:
        """Run SQL with psql (the client of the same version); its output."""
        for attempt in range(retries):
            done = subprocess.run(
                [self._bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                 "-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", statement],
                capture_output=True, text=True,
            )  # fmt: skip
            if done.returncode == 0:
                return done.stdout.strip()
            if attempt == retries - 1:
                raise RuntimeError(done.stderr)
            time.sleep(0.1)
        return ""
