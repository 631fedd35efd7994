"""The Redis engine behind Redis Sentinel: real redis-server master + replica and three
sentinels (``redis-server --sentinel``) on loopback, a real relay with 2 workers.

Both ways Centrifugo takes a Sentinel setup are used: a ``redis+sentinel://`` address
with ``sentinel_master_name`` and more sentinels in ``addr``, and
``engine.redis.sentinel_address`` + ``sentinel_master_name``. The failover test kills
the master: publishes fail fast during the switch (error 100), then go to the promoted
replica; the SDK client's subscription is resynced and receives what comes after.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.cluster.sdk_subscriber import SdkSubscriber
from tests.procutil import OPEN_CHANNELS, RelayEndpoints, free_port, spawn_relay, wait_port
from tests.redis_server import RedisServer, redis_available

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server not installed")

SECRET = "sentinel-secret"
KEY = "sentinel-key"
MASTER = "mymaster"


class Sentinels:
    """Three sentinels watching ``MASTER`` (quorum 2, down after 1 s)."""

    def __init__(self, master_port: int) -> None:
        self.ports = [free_port() for _ in range(3)]
        self._dir = tempfile.TemporaryDirectory(prefix="relay-sentinel-")
        self._procs: list[subprocess.Popen[bytes]] = []
        for port in self.ports:
            conf = Path(self._dir.name) / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {self._dir.name}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 3000\n"
                f"sentinel parallel-syncs {MASTER} 1\n"
            )
            self._procs.append(
                subprocess.Popen(
                    ["redis-server", str(conf), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.ports:
            _wait_ping(port)

    def master_port(self) -> int:
        client = redis.Redis(port=self.ports[0], socket_timeout=1)
        try:
            _, port = client.execute_command("SENTINEL", "get-master-addr-by-name", MASTER)
            return int(port)
        finally:
            client.close()

    def close(self) -> None:
        for proc in self._procs:
            proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._dir.cleanup()


def _wait_ping(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis(port=port, socket_connect_timeout=0.2, socket_timeout=0.5)
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)
    finally:
        client.close()


def _wait_replica_synced(replica: RedisServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    client = replica.client()
    try:
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "replica never synced"
            time.sleep(0.05)
    finally:
        client.close()


class Node(RelayEndpoints):
    api_key = KEY
    secret = SECRET

    def __init__(self, proc: subprocess.Popen[bytes], port: int) -> None:
        self.proc = proc
        self.port = port


@pytest.fixture
def setup() -> Iterator[tuple[RedisServer, RedisServer, Sentinels]]:
    with RedisServer() as master:
        with RedisServer(extra=("--replicaof", "127.0.0.1", str(master.port))) as replica:
            _wait_replica_synced(replica)
            sentinels = Sentinels(master.port)
            try:
                yield master, replica, sentinels
            finally:
                sentinels.close()


async def _start(tmp_path: Path, redis_cfg: dict[str, Any]) -> Node:
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "client": {"token": {"hmac_secret_key": SECRET}},
                "http_api": {"key": KEY},
                "engine": {"type": "redis", "redis": {"io_timeout": "1s", **redis_cfg}},
                "channel": {"without_namespace": OPEN_CHANNELS},
            }
        )
    )
    port = free_port()
    proc = spawn_relay(cfg, port, workers=2)
    await wait_port(port)
    await asyncio.sleep(0.5)
    return Node(proc, port)


def _stop(node: Node) -> None:
    node.proc.send_signal(signal.SIGTERM)
    try:
        node.proc.wait(10)
    except subprocess.TimeoutExpired:
        node.proc.kill()
        node.proc.wait()


@pytest.fixture
async def node(
    setup: tuple[RedisServer, RedisServer, Sentinels], tmp_path: Path
) -> AsyncIterator[Node]:
    _, _, sentinels = setup
    first, *rest = sentinels.ports
    addr = "&".join(f"addr=127.0.0.1:{p}" for p in rest)
    url = f"redis+sentinel://127.0.0.1:{first}?sentinel_master_name={MASTER}&{addr}"
    relay = await _start(tmp_path, {"address": [url]})
    try:
        yield relay
    finally:
        _stop(relay)


async def test_sentinel_address_reaches_the_master(
    setup: tuple[RedisServer, RedisServer, Sentinels], tmp_path: Path
) -> None:
    master, replica, sentinels = setup
    ports = ",".join(f"127.0.0.1:{p}" for p in sentinels.ports)
    relay = await _start(tmp_path, {"sentinel_address": [ports], "sentinel_master_name": MASTER})
    try:
        c = await relay.client("u1")
        await c.call("subscribe", {"channel": "room"})
        res = await relay.api("publish", {"channel": "room", "data": {"n": 1}})
        assert res["result"]["offset"] == 1
        assert (await c.push("pub", "room"))["pub"]["data"] == {"n": 1}
        with master.client() as direct:
            assert direct.exists("centrifugo.stream.room")  # written on the master
        await c.close()
    finally:
        _stop(relay)


@pytest.mark.slow
async def test_failover_resumes_publishing_and_resyncs_subscribers(
    node: Node, setup: tuple[RedisServer, RedisServer, Sentinels]
) -> None:
    master, replica, sentinels = setup
    sdk = SdkSubscriber(node.ws_url, SECRET, "stream")
    await sdk.start()
    assert (await node.api("publish", {"channel": "stream", "data": 0}))["result"]["offset"]
    master.stop(kill=True)
    # Until the sentinels promote the replica, publishes fail fast with error 100.
    failed = 0
    deadline = time.monotonic() + 30
    while True:
        started = time.monotonic()
        res = await node.api("publish", {"channel": "stream", "data": "after"})
        assert time.monotonic() - started < 3, "a publish hung during the failover"
        if "result" in res:
            break
        assert res["error"]["code"] == 100, res
        failed += 1
        assert time.monotonic() < deadline, "no master after 30 s"
        await asyncio.sleep(0.2)
    assert failed >= 1  # the dead master was not hidden: the first publish after it failed
    assert sentinels.master_port() == replica.port
    # The subscriber ends up receiving what is published on the new master.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        await node.api("publish", {"channel": "stream", "data": "late"})
        if "late" in sdk.pubs:
            break
        await asyncio.sleep(0.3)
    assert "late" in sdk.pubs, (sdk.pubs, [(e.was_recovering, e.recovered) for e in sdk.events])
    await sdk.close()
