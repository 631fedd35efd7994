"""A real three-master Redis Cluster for tests: three ``redis-server --cluster-enabled``
processes on free ports, joined by ``redis-cli --cluster create`` (Debian's
``redis-tools``, installed with ``redis-server``). A node keeps its ``nodes.conf`` in its
own directory, so a killed node started again rejoins the cluster with its slots."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from types import TracebackType

import redis

from tests.redis_server import RedisServer, redis_available

__all__ = ["RedisCluster", "cluster_available"]


def cluster_available() -> bool:
    return redis_available() and shutil.which("redis-cli") is not None


class RedisCluster:
    def __init__(self, masters: int = 3) -> None:
        extra = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", "1500")  # fmt: skip
        self.nodes = [RedisServer(port=_cluster_port(), extra=extra) for _ in range(masters)]

    @property
    def seeds(self) -> list[str]:
        return [f"127.0.0.1:{n.port}" for n in self.nodes]

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a seed (as Centrifugo reads it)."""
        first, *rest = self.seeds
        return f"redis+cluster://{first}" + "".join(
            ("?" if i == 0 else "&") + f"addr={s}" for i, s in enumerate(rest)
        )

    def start(self, timeout: float = 30.0) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *self.seeds, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
        )  # fmt: skip
        self.wait_ok(timeout)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node says ``cluster_state:ok``."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for node in self.nodes:
                if not node.running:
                    continue
                try:
                    info = node.client().execute_command("CLUSTER", "INFO")
                except redis.RedisError:
                    info = b""
                text = info.decode() if isinstance(info, bytes) else str(info)
                states.append("cluster_state:ok" in text)
            if states and all(states):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("Redis Cluster did not become ok")
            time.sleep(0.1)

    def owner_of(self, key: str) -> RedisServer:
        """The node that serves ``key``'s slot."""
        node = next(n for n in self.nodes if n.running)
        slot = int(node.client().execute_command("CLUSTER", "KEYSLOT", key))
        nodes = subprocess.run(
            ["redis-cli", "-p", str(node.port), "cluster", "nodes"],
            check=True, capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        for line in nodes.splitlines():
            fields = line.split()
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            for span in fields[8:]:
                start, _, end = span.partition("-")
                if start.isdigit() and int(start) <= slot <= int(end or start):
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(key)

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> RedisCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (so at most 55535)."""
    for _ in range(200):
        port = random.randrange(20000, 55000)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")
