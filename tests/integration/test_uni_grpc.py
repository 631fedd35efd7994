"""``uni_grpc``: ``CentrifugoUniStream.Consume`` against a real relay and a grpcio client.

Raw bytes on both sides, as Centrifugo's ``RawCodec``: the request an encoded unistream
``ConnectRequest``, each response one Protobuf ``Push``. One worker and two (both bind
the one port with SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import grpc
import grpc.aio
import pytest

from relay.config.tree import UniGrpcConfig
from relay.protocol import protobuf_codec
from relay.transports.uni_grpc import unwrap_push_protobuf
from tests.conftest import API_KEY, make_config, token
from tests.procutil import free_port

pytestmark = pytest.mark.asyncio

METHOD = "/centrifugal.centrifugo.unistream.CentrifugoUniStream/Consume"
TIMEOUT = 5.0


def _workers(srv: Any) -> list[Any]:
    return list(getattr(srv.server, "workers", None) or [srv.server])


async def _api(url: str, method: str, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{url}/{method}", json=body, headers={"X-API-Key": API_KEY}) as r:
            assert r.status == 200


async def test_consume_stream(server_factory: Any) -> None:
    port = free_port()
    config = make_config(uni_grpc=UniGrpcConfig(enabled=True, address="127.0.0.1", port=port))
    async with server_factory(config) as srv:
        assert all(w.uni_grpc is not None and w.uni_grpc.port == port for w in _workers(srv))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            consume = channel.unary_stream(
                METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b
            )
            req = protobuf_codec.encode_message(
                "ConnectRequest", {"token": token("g"), "name": "grpc-test"}
            )
            call = consume(req)
            stream = call.__aiter__()

            async def push() -> dict[str, Any]:
                data = await asyncio.wait_for(stream.__anext__(), TIMEOUT)
                return protobuf_codec.decode_message("Push", data)

            connect = (await push())["connect"]
            assert connect["session"] and not connect.get("pong")
            await _api(srv.api_url, "subscribe", {"channel": "g", "user": "g"})
            assert (await push())["channel"] == "g"
            await _api(srv.api_url, "publish", {"channel": "g", "data": {"k": 1}})
            pub = await push()
            assert pub["channel"] == "g" and json.loads(pub["pub"]["data"]) == {"k": 1}
            body = {"user": "g", "disconnect": {"code": 4100, "reason": "done"}}
            await _api(srv.api_url, "disconnect", body)
            assert (await push())["disconnect"] == {"code": 4100, "reason": "done"}
            with pytest.raises(StopAsyncIteration):
                await asyncio.wait_for(stream.__anext__(), TIMEOUT)
            assert await call.code() == grpc.StatusCode.OK


async def test_connect_error_is_a_disconnect_push(server_factory: Any) -> None:
    port = free_port()
    config = make_config(uni_grpc=UniGrpcConfig(enabled=True, address="127.0.0.1", port=port))
    async with server_factory(config) as srv:
        assert srv is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            consume = channel.unary_stream(
                METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b
            )
            expired = token("e", exp=int(time.time()) - 5)
            req = protobuf_codec.encode_message("ConnectRequest", {"token": expired})
            got = [protobuf_codec.decode_message("Push", m) async for m in consume(req)]
            assert got == [{"disconnect": {"code": 3005, "reason": "connection expired"}}]


async def test_unwrap_push_protobuf() -> None:
    push = {"channel": "c", "disconnect": {"code": 3000, "reason": "x"}}
    reply = protobuf_codec.encode_reply({"push": push})
    assert protobuf_codec.decode_message("Push", unwrap_push_protobuf(reply)) == push
    assert unwrap_push_protobuf(b"") == b""
    reply = protobuf_codec.encode_reply({"id": 1, "push": push})
    assert unwrap_push_protobuf(reply) == reply


async def test_tls(server_factory: Any, tmp_path: Any) -> None:
    from relay.config.tree import TLSConfig
    from tests.tlsutil import make_certs

    certs = make_certs(tmp_path)
    port = free_port()
    tls = TLSConfig(enabled=True, cert_pem=str(certs.cert), key_pem=str(certs.key))
    cfg = UniGrpcConfig(enabled=True, address="127.0.0.1", port=port, tls=tls)
    async with server_factory(make_config(uni_grpc=cfg)):
        creds = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
        options = (("grpc.ssl_target_name_override", "localhost"),)
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options) as channel:
            consume = channel.unary_stream(
                METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b
            )
            req = protobuf_codec.encode_message("ConnectRequest", {"token": token()})
            stream = consume(req).__aiter__()
            data = await asyncio.wait_for(stream.__anext__(), TIMEOUT)
            assert "connect" in protobuf_codec.decode_message("Push", data)
