"""The Redis engine over TLS: a real ``redis-server --tls-port`` with a test CA.

``rediss://`` (or ``engine.redis.tls.enabled``) with ``server_ca_pem`` verifies the
server; with ``tls-auth-clients yes`` on the server, ``cert_pem``/``key_pem`` give relay's
client certificate (mutual TLS). Without the CA the handshake fails and publishes get
error 100 (the server is never trusted silently).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from relay.config import EngineConfig, RedisConfig
from relay.config.tree import TLSConfig
from tests.conftest import make_config, run_server
from tests.integration.conftest import API
from tests.procutil import free_port
from tests.redis_server import redis_available
from tests.tlsutil import Certs, make_certs

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server not installed")


class TLSRedis:
    def __init__(self, certs: Certs, auth_clients: bool) -> None:
        self.port = free_port()
        self.certs = certs
        self._dir = tempfile.TemporaryDirectory(prefix="relay-redis-tls-")
        self._proc = subprocess.Popen(
            ["redis-server", "--port", "0", "--tls-port", str(self.port),
             "--bind", "127.0.0.1", "--dir", self._dir.name, "--save", "",
             "--tls-cert-file", str(certs.cert), "--tls-key-file", str(certs.key),
             "--tls-ca-cert-file", str(certs.ca),
             "--tls-auth-clients", "yes" if auth_clients else "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(
            port=self.port, ssl=True, ssl_ca_certs=str(certs.ca), socket_timeout=0.5,
            ssl_certfile=str(certs.client_cert), ssl_keyfile=str(certs.client_key),
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                assert time.monotonic() < deadline, "TLS redis-server did not start"
                time.sleep(0.05)
        client.close()

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(5)
        self._dir.cleanup()


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path)


@pytest.fixture(params=[False, True], ids=["server-auth", "mutual-tls"])
def tls_redis(request: pytest.FixtureRequest, certs: Certs) -> Iterator[TLSRedis]:
    server = TLSRedis(certs, auth_clients=request.param)
    try:
        yield server
    finally:
        server.close()


def _config(address: str, tls: TLSConfig) -> Any:
    redis_cfg = RedisConfig(address=(address,), io_timeout=1.0, connect_timeout=1.0, tls=tls)
    return replace(make_config(), engine=EngineConfig(type="redis", redis=redis_cfg))


async def test_publish_and_history_over_tls(tls_redis: TLSRedis, certs: Certs) -> None:
    tls = TLSConfig(
        enabled=True,
        server_ca_pem=str(certs.ca),
        cert_pem=certs.client_cert.read_text(),  # raw PEM works as well as a path
        key_pem=str(certs.client_key),
    )
    async with run_server(_config(f"rediss://localhost:{tls_redis.port}", tls)) as srv:
        async with aiohttp.ClientSession() as http:
            api = API(http, srv.api_url)
            res = await api.call("publish", {"channel": "chat:tls", "data": {"n": 1}})
            assert res["result"]["offset"] == 1, res
            hist = await api.call("history", {"channel": "chat:tls", "limit": -1})
            assert [p["data"] for p in hist["result"]["publications"]] == [{"n": 1}]


async def test_untrusted_server_is_refused(tls_redis: TLSRedis) -> None:
    """No ``server_ca_pem``: the system roots do not know the test CA -> error 100."""
    async with run_server(_config(f"rediss://localhost:{tls_redis.port}", TLSConfig())) as srv:
        async with aiohttp.ClientSession() as http:
            res = await API(http, srv.api_url).call("publish", {"channel": "chat:x", "data": 1})
            assert res == {"error": {"code": 100, "message": "internal server error"}}
