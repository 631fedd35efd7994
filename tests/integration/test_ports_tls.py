"""``http_server.internal_port`` / ``internal_address`` and TLS, against real clients.

Which endpoint answers where was checked against Centrifugo 6.9.1 with the same config
(``internal_port`` set, admin + prometheus + health on): the external port serves only the
WebSocket endpoint (everything else ``404 page not found``), the internal one the API,
admin, ``/metrics`` and ``/health`` (the WebSocket path is a 404 there).
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.config import Config, EndpointConfig, HTTPServerConfig
from relay.config.tree import AdminConfig, HTTPAPIConfig, TLSConfig
from relay.server import RelayServer
from relay.transports.tls import TLSConfigError
from tests.conftest import API_KEY, make_config, token
from tests.integration.wsutil import RawClient
from tests.procutil import free_port
from tests.tlsutil import Certs, make_certs


def _config(**http: Any) -> Config:
    base = make_config(
        health=EndpointConfig(enabled=True, handler_prefix="/health"),
        prometheus=EndpointConfig(enabled=True, handler_prefix="/metrics"),
        admin=AdminConfig(enabled=True, password="p", secret="s"),
    )
    fields = {"port": free_port(), "address": "127.0.0.1", **http}
    return replace(base, http_server=HTTPServerConfig(**fields))


@asynccontextmanager
async def serving(config: Config) -> AsyncIterator[RelayServer]:
    server = RelayServer(config)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _status(http: aiohttp.ClientSession, url: str, **kw: Any) -> tuple[int, bytes]:
    async with http.post(url, data=b"{}", headers={"X-API-Key": API_KEY}, **kw) as r:
        return r.status, await r.read()


async def test_internal_port_splits_the_endpoints_as_centrifugo() -> None:
    internal = free_port()
    async with serving(_config(internal_port=str(internal))) as srv:
        assert [sorted(lst.handlers) for lst in srv.listeners] == [
            ["websocket"],
            ["admin", "api", "health", "prometheus"],
        ]
        ext, intl = f"http://127.0.0.1:{srv.port}", f"http://127.0.0.1:{srv.internal_port}"
        assert srv.internal_port == internal
        async with aiohttp.ClientSession() as http:
            for path in ("/health", "/metrics", "/api/info", "/", "/admin/auth"):
                assert await _status(http, ext + path) == (404, b"404 page not found\n"), path
            assert (await _status(http, ext + "/connection/websocket"))[0] == 400
            assert await _status(http, intl + "/health") == (200, b"{}")
            status, body = await _status(http, intl + "/metrics")
            assert status == 200 and b"centrifugo_node_num_clients" in body
            status, body = await _status(http, intl + "/api/info")
            assert status == 200 and b'"nodes"' in body
            assert (await _status(http, intl + "/admin/auth"))[0] == 400
            assert (await _status(http, intl + "/connection/websocket"))[0] == 404
            assert (await _status(http, intl + "/nonexistent"))[0] == 404
        # The WebSocket endpoint works on the external port, the API reaches its clients.
        client = await RawClient.open(f"ws://127.0.0.1:{srv.port}/connection/websocket")
        try:
            await client.connect(token=token("u1"))
            await client.call("subscribe", {"channel": "news"})
            async with aiohttp.ClientSession() as http:
                body = b'{"channel": "news", "data": {"n": 1}}'
                hdrs = {"X-API-Key": API_KEY}
                async with http.post(intl + "/api/publish", data=body, headers=hdrs) as r:
                    assert r.status == 200
            assert (await client.push("pub"))["pub"]["data"] == {"n": 1}
        finally:
            await client.close()


async def test_external_api_and_admin_stay_on_the_external_port() -> None:
    cfg = _config(internal_port=str(free_port()))
    cfg = replace(
        cfg,
        http_api=HTTPAPIConfig(key=API_KEY, external=True),
        admin=replace(cfg.admin, external=True),
    )
    async with serving(cfg) as srv, aiohttp.ClientSession() as http:
        ext, intl = f"http://127.0.0.1:{srv.port}", f"http://127.0.0.1:{srv.internal_port}"
        assert (await _status(http, ext + "/api/info"))[0] == 200
        assert (await _status(http, ext + "/admin/auth"))[0] == 400
        assert (await _status(http, intl + "/api/info"))[0] == 404
        assert (await _status(http, intl + "/health"))[0] == 200
        assert (await _status(http, ext + "/health"))[0] == 404


async def test_internal_port_equal_to_port_is_one_server() -> None:
    port = free_port()
    async with serving(_config(port=port, internal_port=str(port))) as srv:
        assert len(srv.listeners) == 1 and srv.port == srv.internal_port == port
        async with aiohttp.ClientSession() as http:
            assert (await _status(http, f"http://127.0.0.1:{port}/health"))[0] == 200


def _tls(certs: Certs, **kw: Any) -> TLSConfig:
    return TLSConfig(enabled=True, cert_pem=str(certs.cert), key_pem=str(certs.key), **kw)


async def test_tls_serves_wss_and_https_and_refuses_plain(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    async with serving(_config(tls=_tls(certs))) as srv:
        ctx = certs.client_context()
        base = f"https://127.0.0.1:{srv.port}"
        async with aiohttp.ClientSession() as http:
            status, body = await _status(http, base + "/api/info", ssl=ctx)
            assert status == 200 and b'"nodes"' in body
            with pytest.raises(aiohttp.ClientError):
                await _status(http, f"http://127.0.0.1:{srv.port}/api/info")
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await _status(http, base + "/api/info", ssl=ssl.create_default_context())
        url = f"wss://127.0.0.1:{srv.port}/connection/websocket"
        for protobuf in (False, True):
            client = await RawClient.open(url, protobuf=protobuf, ssl=ctx)
            try:
                reply = await client.connect(token=token("u1"))
                assert reply["connect"]["client"]
                await client.call("subscribe", {"channel": "news"})
                data: Any = b'{"x":1}' if protobuf else {"x": 1}
                await client.call("publish", {"channel": "news", "data": data})
                assert (await client.push("pub"))["pub"]["data"] == data
            finally:
                await client.close()


async def test_pem_as_raw_text_or_base64(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    raw = TLSConfig(enabled=True, cert_pem=certs.cert.read_text(), key_pem=certs.key.read_text())
    b64 = TLSConfig(
        enabled=True,
        cert_pem=base64.b64encode(certs.cert.read_bytes()).decode(),
        key_pem=base64.b64encode(certs.key.read_bytes()).decode(),
    )
    for block in (raw, b64):
        async with serving(_config(tls=block)) as srv, aiohttp.ClientSession() as http:
            url = f"https://127.0.0.1:{srv.port}/api/info"
            assert (await _status(http, url, ssl=certs.client_context()))[0] == 200


async def test_tls_external_leaves_the_internal_port_plain(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    cfg = _config(tls=_tls(certs), tls_external=True, internal_port=str(free_port()))
    async with serving(cfg) as srv, aiohttp.ClientSession() as http:
        assert (await _status(http, f"http://127.0.0.1:{srv.internal_port}/health"))[0] == 200
        client = await RawClient.open(
            f"wss://127.0.0.1:{srv.port}/connection/websocket", ssl=certs.client_context()
        )
        try:
            assert (await client.connect(token=token("u1")))["connect"]["client"]
        finally:
            await client.close()


async def test_internal_tls_with_client_certificates(tmp_path: Path) -> None:
    """``internal_tls`` replaces ``tls`` on the internal port; ``client_ca_pem`` makes
    a client certificate required there (mutual TLS)."""
    certs = make_certs(tmp_path)
    mtls = _tls(certs, client_ca_pem=str(certs.ca))
    cfg = _config(internal_port=str(free_port()), internal_tls=mtls)
    async with serving(cfg) as srv, aiohttp.ClientSession() as http:
        url = f"https://127.0.0.1:{srv.internal_port}/health"
        assert (await _status(http, url, ssl=certs.client_context(with_cert=True)))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await _status(http, url, ssl=certs.client_context())
        # The external port has no TLS block of its own: plain.
        client = await RawClient.open(f"ws://127.0.0.1:{srv.port}/connection/websocket")
        await client.close()


def test_bad_pem_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("not a certificate")
    for cert in (str(tmp_path / "junk.pem"), str(tmp_path / "missing.pem"), "garbage"):
        cfg = _config(tls=TLSConfig(enabled=True, cert_pem=cert, key_pem=cert))
        with pytest.raises(TLSConfigError, match="http_server.tls.cert_pem"):
            RelayServer(cfg)
    certs = make_certs(tmp_path)
    mismatched = TLSConfig(enabled=True, cert_pem=str(certs.cert), key_pem=str(certs.client_key))
    with pytest.raises(TLSConfigError, match="key pair"):
        RelayServer(_config(tls=mismatched))
