"""Proxies to a real backend (``proxy_backend.py``), over HTTP, with 1 and 2 workers.

What the client gets for each answer was measured against Centrifugo 6.9.1 with the same
scripted backend (the note of issue 11 lists the runs): a backend ``error`` is that error,
a ``disconnect`` closes with it, and a timeout, a refused connection, an HTTP error or a
body that is not the protocol's JSON is error 100 (``temporary``); for connect, a reply
without ``result`` means no credentials (3501 unless anonymous connects are allowed).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay.config import load_config, validate
from relay.config.tree import Config
from tests.conftest import token
from tests.integration.proxy_backend import (
    BAD_JSON,
    HUGE,
    RESET,
    SLOW,
    STATUS_500,
    Backend,
    closed_port,
)
from tests.integration.wsutil import RawClient

INTERNAL = {"code": 100, "message": "internal server error", "temporary": True}


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    b = await Backend().start()
    try:
        yield b
    finally:
        await b.stop()


def proxy_config(tmp_path: Path, url: str, **extra: Any) -> Config:
    """Every proxy type pointed at ``url``; namespaces ``px`` (subscribe + publish +
    sub_refresh proxies, history), ``bin`` (a named proxy with binary_encoding), ``open``
    (no proxy); RPC without namespace and in ``bb`` (binary), none in ``off``."""
    body: dict[str, Any] = {
        "http_server": {"port": 0, "address": "127.0.0.1"},
        "http_api": {"key": "k"},
        "client": {
            "token": {"hmac_secret_key": "test-secret"},
            "proxy": {
                "connect": {
                    "enabled": True,
                    "endpoint": f"{url}/connect",
                    "timeout": "500ms",
                    "http_headers": ["X-Token", "Cookie"],
                    "http": {"static_headers": {"X-Static": "s1", "X-Token": "static"}},
                },
            },
        },
        "channel": {
            "proxy": {
                "subscribe": {
                    "endpoint": f"{url}/subscribe",
                    "timeout": "500ms",
                    "include_connection_meta": True,
                },
                "publish": {"endpoint": f"{url}/publish", "timeout": "500ms"},
                "sub_refresh": {"endpoint": f"{url}/sub_refresh", "timeout": "500ms"},
            },
            "namespaces": [
                {
                    "name": "px",
                    "subscribe_proxy_enabled": True,
                    "publish_proxy_enabled": True,
                    "history_size": 10,
                    "history_ttl": "60s",
                    "force_recovery": True,
                },
                {
                    "name": "bin",
                    "subscribe_proxy_enabled": True,
                    "subscribe_proxy_name": "binp",
                    "publish_proxy_enabled": True,
                    "publish_proxy_name": "binp",
                },
                {"name": "open", "allow_subscribe_for_client": True},
                {"name": "sr", "subscribe_proxy_enabled": True, "sub_refresh_proxy_enabled": True},
            ],
        },
        "proxies": [
            {"name": "binp", "endpoint": f"{url}/bin", "timeout": "500ms", "binary_encoding": True},
            {"name": "dead", "endpoint": f"http://127.0.0.1:{closed_port()}/x", "timeout": "1s"},
        ],
        "rpc": {
            "proxy": {
                "endpoint": f"{url}/rpc",
                "timeout": "500ms",
                "include_connection_meta": True,
            },
            "without_namespace": {"proxy_enabled": True},
            "namespaces": [
                {"name": "off"},
                {"name": "bb", "proxy_enabled": True, "proxy_name": "binp"},
                {"name": "dd", "proxy_enabled": True, "proxy_name": "dead"},
            ],
        },
    }
    for path, value in extra.items():
        node = body
        *parents, last = path.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    file = tmp_path / "config.json"
    file.write_text(json.dumps(body))
    result = load_config(str(file), {})
    assert not result.refused, result.refused
    validate(result.config)
    return result.config


ALICE = {"result": {"user": "alice", "info": {"k": "v"}, "data": {"hello": 1}, "meta": {"m": 1}}}


async def connected(srv: Any, backend: Backend, protobuf: bool = False) -> RawClient:
    backend.script("connect", ALICE)
    client = await RawClient.open(srv.ws_url, protobuf=protobuf)
    reply = await client.connect()
    assert "connect" in reply, reply
    return client


# ---- connect ---------------------------------------------------------------------------
async def test_connect_accept(tmp_path: Path, backend: Backend, server_factory: Any) -> None:
    cfg = proxy_config(tmp_path, backend.url)
    backend.script(
        "connect",
        '{"result": {"user": "alice", "expire_at": 0, "info": {"k": "v"}, '
        '"data": {"hello": 1}, "channels": ["open:a"], '
        '"subs": {"open:b": {"info": {"ci": 2}, "data": {"sd": 3}}}}}',
    )
    async with server_factory(cfg) as srv:
        c = await RawClient.open(
            srv.ws_url, additional_headers={"X-Token": "tok", "Cookie": "c=1", "X-Other": "no"}
        )
        reply = await c.connect(data={"d": 1}, name="probe", version="9", subs={"px:z": {}})
        result = reply["connect"]
        # data as the backend wrote it; no expires (expire_at 0)
        assert result["data"] == {"hello": 1} and "expires" not in result
        assert set(result["subs"]) == {"open:a", "open:b"}  # px:z is not granted
        assert result["subs"]["open:b"]["data"] == {"sd": 3}
        (seen,) = backend.requests("connect")
        assert seen.body == {
            "client": result["client"],
            "transport": "websocket",
            "protocol": "json",
            "encoding": "json",
            "data": {"d": 1},
            "name": "probe",
            "version": "9",
            "channels": ["px:z"],
        }
        headers = {k.lower(): v for k, v in seen.headers.items()}
        assert headers["x-token"] == "tok" and headers["cookie"] == "c=1"  # over the static one
        assert headers["x-static"] == "s1" and "x-other" not in headers
        assert headers["content-type"] == "application/json"
        await c.close()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"error": {"code": 4000, "message": "custom", "temporary": True}}, "error4000"),
        ({"disconnect": {"code": 4500, "reason": "go away"}}, "close4500"),
        ({}, "close3501"),
        ("null", "close3501"),
        (STATUS_500, "internal"),
        (BAD_JSON, "internal"),
        ('{"result": {"user": 5}}', "internal"),
        ("[1, 2]", "internal"),
        ('{"result": {"b64info": "!!!"}}', "internal"),
        (SLOW, "internal"),
        (HUGE, "internal"),
        (RESET, "internal"),
    ],
)
async def test_connect_bad_answers(
    tmp_path: Path, backend: Backend, server_factory: Any, answer: Any, expected: str
) -> None:
    cfg = proxy_config(tmp_path, backend.url)
    async with server_factory(cfg) as srv:
        backend.script("connect", answer)
        c = await RawClient.open(srv.ws_url)
        started = time.monotonic()
        await c.send({"id": 1, "connect": {}})
        if expected.startswith("close"):
            assert await c.closed() == (int(expected[5:]), await _reason(expected))
        else:
            reply = await c.reply(1)
            if expected == "error4000":
                assert reply["error"] == {"code": 4000, "message": "custom", "temporary": True}
            else:
                assert reply["error"] == INTERNAL
            if answer == SLOW:
                assert 0.45 < time.monotonic() - started < 2.0  # the proxy's 500ms timeout
            # the connect failed: the connection is unusable (3501 on the next command)
            await c.send({"id": 2, "rpc": {"method": "m"}})
            assert (await c.closed())[0] == 3501
        # the worker is alive and serves the next connection
        backend.script("connect", ALICE)
        again = await RawClient.open(srv.ws_url)
        assert "connect" in await again.connect()
        await again.close()


async def _reason(expected: str) -> str:
    return {"close4500": "go away", "close3501": "bad request"}[expected]


async def test_connect_refused_backend(tmp_path: Path, server_factory: Any) -> None:
    cfg = proxy_config(tmp_path, f"http://127.0.0.1:{closed_port()}")
    async with server_factory(cfg) as srv:
        c = await RawClient.open(srv.ws_url)
        assert (await c.connect())["error"] == INTERNAL
        await c.close()
        # a token still connects without asking the proxy
        c = await RawClient.open(srv.ws_url)
        assert "connect" in await c.connect(token=token("bob"))
        await c.close()


async def test_no_result_is_anonymous_when_allowed(
    tmp_path: Path, backend: Backend, server_factory: Any
) -> None:
    cfg = proxy_config(tmp_path, backend.url, client__allow_anonymous_connect_without_token=True)
    backend.script("connect", {})
    async with server_factory(cfg) as srv:
        c = await RawClient.open(srv.ws_url)
        assert "connect" in await c.connect(subs={"open:a": {}})
        await c.close()


# ---- rpc -------------------------------------------------------------------------------
async def test_rpc(tmp_path: Path, backend: Backend, server_factory: Any) -> None:
    cfg = proxy_config(tmp_path, backend.url)
    async with server_factory(cfg) as srv:
        c = await connected(srv, backend)
        backend.script("rpc", lambda body: {"result": {"data": {"echo": body["data"]}}})
        assert (await c.call("rpc", {"method": "m1", "data": {"x": 1}}))["rpc"] == {
            "data": {"echo": {"x": 1}}
        }
        seen = backend.requests("rpc")[-1].body
        assert seen["user"] == "alice" and seen["method"] == "m1"
        assert seen["meta"] == {"m": 1}  # include_connection_meta: the connect result's meta
        assert (await c.call("rpc", {"method": "off:x"}))["error"]["code"] == 108
        assert (await c.call("rpc", {"method": "nons:x"}))["error"]["code"] == 104
        assert (await c.call("rpc", {"method": "dd:x"}))["error"] == INTERNAL  # refused
        backend.script("bin", {"result": {"b64data": base64.b64encode(b'{"a":1}').decode()}})
        assert (await c.call("rpc", {"method": "bb:x", "data": {"bb": 1}}))["rpc"] == {
            "data": {"a": 1}
        }
        binary = backend.requests("bin")[-1].body
        assert binary["encoding"] == "binary" and base64.b64decode(binary["b64data"]) == (
            b'{"bb":1}'
        )
        for answer, expected in [
            ({"error": {"code": 4001, "message": "no"}}, {"code": 4001, "message": "no"}),
            (STATUS_500, INTERNAL),
            (BAD_JSON, INTERNAL),
            (SLOW, INTERNAL),
            ({"result": {"data": {"a": 1}}, "error": {"code": 4002, "message": "both"}},
             {"code": 4002, "message": "both"}),
        ]:  # fmt: skip
            backend.script("rpc", answer)
            assert (await c.call("rpc", {"method": "m"}))["error"] == expected
        backend.script("rpc", "null")
        assert (await c.call("rpc", {"method": "m"}))["rpc"] == {}
        backend.script("rpc", {"disconnect": {"code": 4501, "reason": "bye"}})
        await c.send({"id": 99, "rpc": {"method": "m"}})
        assert await c.closed() == (4501, "bye")


async def test_rpc_protobuf_client(tmp_path: Path, backend: Backend, server_factory: Any) -> None:
    cfg = proxy_config(tmp_path, backend.url)
    async with server_factory(cfg) as srv:
        c = await connected(srv, backend, protobuf=True)
        backend.script("rpc", {"result": {"data": {"z": 1}}})
        reply = await c.call("rpc", {"method": "m", "data": b'{"q": 2}'})
        assert json.loads(reply["rpc"]["data"]) == {"z": 1}
        assert backend.requests("rpc")[-1].body["protocol"] == "protobuf"
        # bytes that are not JSON: Go's encoder refuses them (error 100); b64 carries them
        assert (await c.call("rpc", {"method": "m", "data": b"\x00\xff"}))["error"] == INTERNAL
        backend.script("bin", {"result": {"b64data": base64.b64encode(b"\x01\x02").decode()}})
        reply = await c.call("rpc", {"method": "bb:m", "data": b"\x00\xff"})
        assert reply["rpc"]["data"] == b"\x01\x02"
        assert backend.requests("bin")[-1].body["b64data"] == "AP8="
        await c.close()


async def test_rpc_without_proxy_is_108(server_factory: Any) -> None:
    async with server_factory() as srv:
        c = await RawClient.open(srv.ws_url)
        await c.connect(token=token("u"))
        assert (await c.call("rpc", {"method": "x"}))["error"]["code"] == 108
        await c.close()


# ---- subscribe, publish ----------------------------------------------------------------
async def test_subscribe_and_publish(tmp_path: Path, backend: Backend, server_factory: Any) -> None:
    cfg = proxy_config(tmp_path, backend.url)
    async with server_factory(cfg) as srv:
        c = await connected(srv, backend)
        other = await connected(srv, backend)
        backend.script("subscribe", '{"result": {"info": {"ci": 1}, "data": {"sd": 1}}}')
        reply = (await c.call("subscribe", {"channel": "px:chan", "data": {"s": 1}}))["subscribe"]
        assert reply["data"] == {"sd": 1} and reply["recoverable"] is True
        seen = backend.requests("subscribe")[-1].body
        assert seen["channel"] == "px:chan" and seen["data"] == {"s": 1}
        assert seen["meta"] == {"m": 1} and seen["user"] == "alice"
        backend.script("subscribe", {"result": {}})
        await other.call("subscribe", {"channel": "px:chan"})
        # publish: the backend rewrites the data, the subscribers get the rewrite
        backend.script("publish", '{"result": {"data": {"rewritten": true}}}')
        assert (await other.call("publish", {"channel": "px:chan", "data": {"p": 1}}))[
            "publish"
        ] == {}
        push = await c.push("pub", "px:chan")
        assert push["pub"]["data"] == {"rewritten": True}
        assert push["pub"]["info"]["conn_info"] == {"k": "v"}
        assert backend.requests("publish")[-1].body["data"] == {"p": 1}
        # skip_history: published, not kept
        backend.script("publish", {"result": {"skip_history": True}})
        await other.call("publish", {"channel": "px:chan", "data": {"p": 2}})
        assert (await c.push("pub", "px:chan"))["pub"]["data"] == {"p": 2}
        async with _api(srv) as api:
            hist = await api("history", {"channel": "px:chan", "limit": 10})
        assert [p["data"] for p in hist["result"]["publications"]] == [{"rewritten": True}]
        # the backend's idempotency key: the second publish with it is suppressed
        backend.script("publish", {"result": {"idempotency_key": "k1"}})
        for n in (3, 4):
            await other.call("publish", {"channel": "px:chan", "data": {"p": n}})
        async with _api(srv) as api:
            hist = await api("history", {"channel": "px:chan", "limit": 10})
        assert [p["data"] for p in hist["result"]["publications"]][1:] == [{"p": 3}]
        assert (await c.push("pub", "px:chan"))["pub"]["data"] == {"p": 3}
        # errors
        for answer, expected in [
            ({"error": {"code": 4003, "message": "nope"}}, {"code": 4003, "message": "nope"}),
            (STATUS_500, INTERNAL),
            (SLOW, INTERNAL),
        ]:
            backend.script("publish", answer)
            reply = await other.call("publish", {"channel": "px:chan", "data": {}})
            assert reply["error"] == expected
            backend.script("subscribe", answer)
            assert (await other.call("subscribe", {"channel": "px:new"}))["error"] == expected
        backend.script("subscribe", {"disconnect": {"code": 4502, "reason": "sub no"}})
        await other.send({"id": 77, "subscribe": {"channel": "px:new"}})
        assert await other.closed() == (4502, "sub no")
        # a namespace without a proxy is not asked
        before = len(backend.seen)
        assert "subscribe" in await c.call("subscribe", {"channel": "open:x"})
        assert len(backend.seen) == before
        await c.close()


async def test_subscribe_override_and_binary(
    tmp_path: Path, backend: Backend, server_factory: Any
) -> None:
    cfg = proxy_config(tmp_path, backend.url)
    async with server_factory(cfg) as srv:
        c = await connected(srv, backend)
        backend.script("subscribe", {"result": {"override": {"force_recovery": {"value": False}}}})
        reply = (await c.call("subscribe", {"channel": "px:o"}))["subscribe"]
        assert "recoverable" not in reply
        backend.script("bin", {"result": {"b64data": base64.b64encode(b'{"d":1}').decode()}})
        reply = (await c.call("subscribe", {"channel": "bin:x", "data": {"sub": 1}}))["subscribe"]
        assert reply["data"] == {"d": 1}
        assert base64.b64decode(backend.requests("bin")[-1].body["b64data"]) == b'{"sub":1}'
        await c.close()


# ---- server-side refreshes -------------------------------------------------------------
async def test_refresh_proxy(tmp_path: Path, backend: Backend, server_factory: Any) -> None:
    cfg = proxy_config(
        tmp_path,
        backend.url,
        client__proxy__refresh={"enabled": True, "endpoint": f"{backend.url}/refresh"},
    )
    async with server_factory(cfg) as srv:
        at = int(time.time()) + 2  # a whole second at least ahead, whatever the load
        backend.script("connect", {"result": {"user": "bob", "expire_at": at}})
        backend.script("refresh", {"result": {"expire_at": int(time.time()) + 60}})
        c = await RawClient.open(srv.ws_url)
        result = (await c.connect())["connect"]
        assert "expires" not in result and "ttl" not in result  # the server refreshes
        await c.send({"id": 5, "refresh": {"token": "x"}})  # server-side refresh expected
        assert (await c.closed())[0] == 3501
        c = await RawClient.open(srv.ws_url)
        await c.connect()
        await asyncio.sleep(max(0.0, at - time.time()) + 0.6)
        assert backend.requests("refresh")[-1].body["user"] == "bob"
        assert c.ws.close_code is None  # extended
        await c.close()
        for answer in ({"result": {"expired": True}}, {}, {"result": {}}):
            at = int(time.time()) + 2
            backend.script("connect", {"result": {"user": "bob", "expire_at": at}})
            backend.script("refresh", answer)
            c = await RawClient.open(srv.ws_url)
            await c.connect()
            assert (await c.closed(timeout=at - time.time() + 3))[0] == 3005


async def test_sub_refresh_proxy(tmp_path: Path, backend: Backend, server_factory: Any) -> None:
    cfg = proxy_config(tmp_path, backend.url, client__expired_sub_close_delay="100ms")
    async with server_factory(cfg) as srv:
        c = await connected(srv, backend)
        at = int(time.time()) + 2
        backend.script("subscribe", {"result": {"expire_at": at}})
        backend.script("sub_refresh", {"result": {"expire_at": int(time.time()) + 60}})
        reply = (await c.call("subscribe", {"channel": "sr:a"}))["subscribe"]
        assert "expires" not in reply
        await asyncio.sleep(max(0.0, at - time.time()) + 0.6)
        assert backend.requests("sub_refresh")[-1].body["channel"] == "sr:a"
        at = int(time.time()) + 2
        backend.script("subscribe", {"result": {"expire_at": at}})
        backend.script("sub_refresh", {"result": {"expired": True}})
        await c.call("subscribe", {"channel": "sr:b"})
        push = await c.push("unsubscribe", "sr:b", timeout=at - time.time() + 3)
        assert push["unsubscribe"]["code"] == 2501
        # a client sub_refresh of a server-refreshed subscription: 3501
        await c.send({"id": 50, "sub_refresh": {"channel": "sr:a", "token": "t"}})
        assert (await c.closed())[0] == 3501


# ---- metrics ---------------------------------------------------------------------------
async def test_proxy_metrics(tmp_path: Path, backend: Backend, server_factory: Any) -> None:
    cfg = proxy_config(tmp_path, backend.url, prometheus={"enabled": True})
    async with server_factory(cfg) as srv:
        c = await connected(srv, backend)
        backend.script("rpc", STATUS_500)
        await c.call("rpc", {"method": "m"})
        await c.close()
        texts = []
        for node in srv.nodes:
            node.metrics.flush()
            texts.append(node.metrics.exposition().decode())
        text = "".join(texts)
        assert 'centrifugo_proxy_errors{name="default",protocol="http",type="rpc"} 1' in text
        assert (
            'centrifugo_proxy_duration_seconds_histogram_count{name="default",protocol="http",'
            'type="connect"} 1'
        ) in text
        assert "centrifugo_proxy_inflight_requests" in text


class _api:
    def __init__(self, srv: Any) -> None:
        self.srv = srv

    async def __aenter__(self) -> Any:
        import aiohttp

        self.session = aiohttp.ClientSession()

        async def call(method: str, params: Any) -> Any:
            async with self.session.post(
                f"{self.srv.api_url}/{method}", json=params, headers={"X-API-Key": "k"}
            ) as r:
                return await r.json()

        return call

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()


async def test_client_gone_during_a_call(
    tmp_path: Path, backend: Backend, server_factory: Any
) -> None:
    """A client that leaves while its proxy call is in flight: nothing is written to it,
    the worker carries on (no traceback: the autouse fixture checks)."""
    cfg = proxy_config(tmp_path, backend.url)
    async with server_factory(cfg) as srv:
        backend.script("connect", SLOW)
        c = await RawClient.open(srv.ws_url)
        await c.send({"id": 1, "connect": {}})
        await asyncio.sleep(0.1)
        await c.close()
        live = await connected(srv, backend)
        backend.script("rpc", SLOW)
        await live.send({"id": 2, "rpc": {"method": "m"}})
        await asyncio.sleep(0.1)
        await live.close()
        await asyncio.sleep(0.6)  # both calls time out after their clients are gone
        assert not srv.clients
        backend.script("rpc", {"result": {}})
        again = await connected(srv, backend)
        assert (await again.call("rpc", {"method": "m"}))["rpc"] == {}
        await again.close()


# ---- HTTP options: status transforms, TLS ------------------------------------------------
async def test_status_to_code_transforms(
    tmp_path: Path, backend: Backend, server_factory: Any
) -> None:
    """``http.status_to_code_transforms`` (centrifugo ``proxy/http.go``
    ``transformHTTPStatusError``): the first rule for the status wins; ``to_error``
    answers the command, ``to_disconnect`` closes; an unmatched status stays 100."""
    transforms = [
        {"status_code": 403, "to_error": {"code": 1403, "message": "forbidden"}},
        {"status_code": 403, "to_error": {"code": 1999, "message": "never: the first wins"}},
        {"status_code": 401, "to_disconnect": {"code": 4401, "reason": "unauthorized"}},
    ]
    cfg = proxy_config(
        tmp_path, backend.url, rpc__proxy__http={"status_to_code_transforms": transforms}
    )
    async with server_factory(cfg) as srv:
        c = await connected(srv, backend)
        backend.script("rpc", "status:403")
        reply = await c.call("rpc", {"method": "m"})
        assert reply["error"] == {"code": 1403, "message": "forbidden"}
        backend.script("rpc", "status:418")
        assert (await c.call("rpc", {"method": "m"}))["error"] == INTERNAL
        backend.script("rpc", "status:401")
        await c.send({"id": 77, "rpc": {"method": "m"}})
        assert await c.closed() == (4401, "unauthorized")


async def test_https_backend_with_its_ca(tmp_path: Path, server_factory: Any) -> None:
    """``http.tls`` with ``server_ca_pem``: the backend's certificate is verified against
    it; without it (system roots) the same backend is not trusted: error 100."""
    from tests.tlsutil import make_certs

    certs = make_certs(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(certs.cert), str(certs.key))
    https = await Backend().start(tls=server_ctx)
    try:
        https.script("rpc", {"result": {"data": {"over": "tls"}}})
        for tls, expected in (
            ({"enabled": True, "server_ca_pem": str(certs.ca)}, {"data": {"over": "tls"}}),
            ({"enabled": False}, None),
        ):
            cfg = proxy_config(tmp_path, https.url, rpc__proxy__http={"tls": tls}, client__proxy={})
            async with server_factory(cfg) as srv:
                c = await RawClient.open(srv.ws_url)
                await c.connect(token=token("t"))
                reply = await c.call("rpc", {"method": "m"})
                if expected is None:
                    assert reply["error"] == INTERNAL
                else:
                    assert reply["rpc"] == expected, reply
                await c.close()
    finally:
        await https.stop()
