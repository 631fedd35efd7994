"""The same proxies through a real grpcio backend, through in-process hooks, and driven by
the centrifuge-python SDK (JSON and Protobuf), with 1 and 2 workers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from relay.proxy import proxy_pb2 as pb
from relay.proxy.grpc import SERVICE
from tests.conftest import token
from tests.integration.proxy_backend import Backend
from tests.integration.sdk_helpers import SDKPool, decoded, payload, subscription
from tests.integration.test_proxy import INTERNAL, proxy_config
from tests.integration.wsutil import RawClient


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    b = await Backend().start()
    try:
        yield b
    finally:
        await b.stop()


class GrpcBackend:
    """A grpcio server of ``CentrifugoProxy``: records (method, request, metadata);
    ``answers[method]`` is a response message or a ``grpc.StatusCode`` to abort with."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any, dict[str, str]]] = []
        self.answers: dict[str, Any] = {}
        self.server: grpc.aio.Server | None = None
        self.target = ""

    def _handler(self, method: str, req_cls: Any, resp_cls: Any) -> grpc.RpcMethodHandler:
        async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            self.seen.append((method, request, dict(context.invocation_metadata() or ())))
            answer = self.answers.get(method, resp_cls())
            if isinstance(answer, grpc.StatusCode):
                await context.abort(answer, "backend says no")
            return answer

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=req_cls.FromString,
            response_serializer=lambda m: m.SerializeToString(),
        )

    async def start(self, credentials: grpc.ServerCredentials | None = None) -> GrpcBackend:
        methods = {
            "Connect": (pb.ConnectRequest, pb.ConnectResponse),
            "RPC": (pb.RPCRequest, pb.RPCResponse),
            "Subscribe": (pb.SubscribeRequest, pb.SubscribeResponse),
            "Publish": (pb.PublishRequest, pb.PublishResponse),
        }
        handlers = {m: self._handler(m, *classes) for m, classes in methods.items()}
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )
        if credentials is None:
            port = self.server.add_insecure_port("127.0.0.1:0")
            self.target = f"127.0.0.1:{port}"
        else:  # the test certificate names localhost
            port = self.server.add_secure_port("localhost:0", credentials)
            self.target = f"localhost:{port}"
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(None)


@pytest.fixture
async def grpc_backend() -> AsyncIterator[GrpcBackend]:
    b = await GrpcBackend().start()
    try:
        yield b
    finally:
        await b.stop()


def grpc_config(tmp_path: Path, target: str) -> Any:
    proxy = {
        "endpoint": f"grpc://{target}",
        "timeout": "1s",
        "http_headers": ["X-Token"],
        "grpc": {"static_metadata": {"x-static": "s"}, "credentials_key": "authorization",
                 "credentials_value": "apikey k1"},
    }  # fmt: skip
    return proxy_config(
        tmp_path,
        "http://127.0.0.1:1",
        client__proxy__connect={"enabled": True, **proxy},
        rpc__proxy=proxy,
        channel__proxy__subscribe=proxy,
        channel__proxy__publish=proxy,
    )


async def test_grpc_proxies(tmp_path: Path, grpc_backend: GrpcBackend, server_factory: Any) -> None:
    grpc_backend.answers["Connect"] = pb.ConnectResponse(
        result=pb.ConnectResult(user="gina", info=b'{"g": 1}', data=b'{"hi": true}')
    )
    grpc_backend.answers["RPC"] = pb.RPCResponse(result=pb.RPCResult(data=b'{"r": 1}'))
    grpc_backend.answers["Subscribe"] = pb.SubscribeResponse(
        result=pb.SubscribeResult(data=b'{"s": 1}')
    )
    grpc_backend.answers["Publish"] = pb.PublishResponse(
        result=pb.PublishResult(data=b'{"rewritten": 1}')
    )
    async with server_factory(grpc_config(tmp_path, grpc_backend.target)) as srv:
        c = await RawClient.open(srv.ws_url, additional_headers={"X-Token": "tt"})
        reply = await c.connect(data={"d": 1}, name="n")
        assert reply["connect"]["data"] == {"hi": True}
        method, request, metadata = grpc_backend.seen[-1]
        assert method == "Connect" and request.data == b'{"d":1}' and request.name == "n"
        assert request.protocol == "json" and request.encoding == "json"
        assert metadata["x-token"] == "tt" and metadata["x-static"] == "s"
        assert metadata["authorization"] == "apikey k1"
        assert (await c.call("rpc", {"method": "m", "data": {"a": 1}}))["rpc"] == {"data": {"r": 1}}
        assert grpc_backend.seen[-1][1].user == "gina"
        sub = await c.call("subscribe", {"channel": "px:g"})
        assert sub["subscribe"]["data"] == {"s": 1}
        await c.call("publish", {"channel": "px:g", "data": {"p": 1}})
        assert (await c.push("pub", "px:g"))["pub"]["data"] == {"rewritten": 1}
        grpc_backend.answers["RPC"] = pb.RPCResponse(error=pb.Error(code=4005, message="no"))
        assert (await c.call("rpc", {"method": "m"}))["error"] == {"code": 4005, "message": "no"}
        grpc_backend.answers["RPC"] = grpc.StatusCode.UNAVAILABLE
        assert (await c.call("rpc", {"method": "m"}))["error"] == INTERNAL
        grpc_backend.answers["RPC"] = pb.RPCResponse(
            disconnect=pb.Disconnect(code=4600, reason="x")
        )
        await c.send({"id": 90, "rpc": {"method": "m"}})
        assert await c.closed() == (4600, "x")


async def test_grpc_proxy_over_tls(tmp_path: Path, server_factory: Any) -> None:
    """``grpc.tls`` with ``server_ca_pem`` (and a client certificate the backend requires):
    calls go through; without the CA the backend is not trusted: error 100."""
    from tests.tlsutil import make_certs

    certs = make_certs(tmp_path)
    server_creds = grpc.ssl_server_credentials(
        [(certs.key.read_bytes(), certs.cert.read_bytes())],
        root_certificates=certs.ca.read_bytes(),
        require_client_auth=True,
    )
    backend = await GrpcBackend().start(server_creds)
    backend.answers["RPC"] = pb.RPCResponse(result=pb.RPCResult(data=b'{"tls": 1}'))
    try:
        good = {"enabled": True, "server_ca_pem": str(certs.ca),
                "cert_pem": str(certs.client_cert), "key_pem": str(certs.client_key)}  # fmt: skip
        for tls, expected in ((good, {"data": {"tls": 1}}), ({"enabled": True}, None)):
            proxy = {"endpoint": f"grpc://{backend.target}", "timeout": "1s", "grpc": {"tls": tls}}
            cfg = proxy_config(tmp_path, "http://127.0.0.1:1", rpc__proxy=proxy, client__proxy={})
            async with server_factory(cfg) as srv:
                c = await RawClient.open(srv.ws_url)
                await c.connect(token=token("t"))
                reply = await c.call("rpc", {"method": "m"})
                assert (reply.get("rpc") if expected else reply["error"]) == (expected or INTERNAL)
                await c.close()
    finally:
        await backend.stop()


async def test_grpc_backend_down(tmp_path: Path, server_factory: Any) -> None:
    from tests.integration.proxy_backend import closed_port

    async with server_factory(grpc_config(tmp_path, f"127.0.0.1:{closed_port()}")) as srv:
        c = await RawClient.open(srv.ws_url)
        assert (await c.connect())["error"] == INTERNAL
        await c.close()


# ---- in-process hooks ------------------------------------------------------------------
def hook_config(tmp_path: Path) -> Any:
    return proxy_config(
        tmp_path,
        "http://127.0.0.1:1",
        client__proxy__connect={
            "enabled": True,
            "endpoint": "python://examples.proxy_hooks:connect",
        },
        rpc__proxy={"endpoint": "python://examples.proxy_hooks:rpc"},
        channel__proxy__subscribe={"endpoint": "python://examples.proxy_hooks:subscribe"},
    )


def _with_news(cfg: Any) -> Any:
    from dataclasses import replace

    from relay.config import Namespace

    news = Namespace(name="news", subscribe_proxy_enabled=True)
    return replace(cfg, channel=replace(cfg.channel, namespaces=(*cfg.channel.namespaces, news)))


async def test_hooks(tmp_path: Path, server_factory: Any) -> None:
    async with server_factory(_with_news(hook_config(tmp_path))) as srv:
        c = await RawClient.open(srv.ws_url)
        await c.send({"id": 1, "connect": {"data": {"token": "wrong"}}})
        assert await c.closed() == (4501, "unauthorized")
        c = await RawClient.open(srv.ws_url)
        reply = await c.connect(data={"token": "secret-token-of-alice"})
        assert "connect" in reply
        assert (await c.call("rpc", {"method": "echo", "data": [1, 2]}))["rpc"] == {"data": [1, 2]}
        assert (await c.call("rpc", {"method": "x"}))["error"]["code"] == 4004
        assert "subscribe" in await c.call("subscribe", {"channel": "news:x"})
        assert (await c.call("subscribe", {"channel": "px:secret"}))["error"]["code"] == 4003
        await c.close()


# ---- the SDK ---------------------------------------------------------------------------
@pytest.mark.parametrize("protobuf", [False, True], ids=["json", "protobuf"])
async def test_sdk_through_http_proxies(
    tmp_path: Path,
    backend: Backend,
    server_factory: Any,
    protobuf: bool,  # noqa: F811
) -> None:
    backend.script("connect", {"result": {"user": "sam", "info": {"i": 1}}})
    backend.script("rpc", lambda body: {"result": {"data": {"got": _data(body)}}})
    backend.script("subscribe", {"result": {"data": {"welcome": 1}}})
    backend.script("publish", {"result": {"data": {"by": "backend"}}})
    async with server_factory(proxy_config(tmp_path, backend.url)) as srv:
        async with SDKPool(srv.ws_url, protobuf) as pool:
            client, _ = await pool.connected(data=payload(protobuf, {"login": "sam"}))
            result = await client.rpc("calc", payload(protobuf, {"n": 2}))
            assert decoded(result.data) == {"got": {"n": 2}}
            sub, rec = subscription(client, "px:room")
            await sub.subscribe()
            ctx = await rec.wait("subscribed")
            assert decoded(ctx.data) == {"welcome": 1}
            await sub.publish(payload(protobuf, {"by": "client"}))
            pub = await rec.wait("publication")
            assert decoded(pub.pub.data) == {"by": "backend"}
            assert pub.pub.info.user == "sam"
        connects = backend.requests("connect")
        assert connects[0].body["protocol"] == ("protobuf" if protobuf else "json")
        assert connects[0].body["data"] == {"login": "sam"}


def _data(body: dict[str, Any]) -> Any:
    return body.get("data", json.loads("null"))
