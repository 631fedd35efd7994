"""``uni_grpc``: the uni-directional gRPC transport, one ``grpc.aio`` server per worker.

Service ``centrifugal.centrifugo.unistream.CentrifugoUniStream``, one method
``Consume(ConnectRequest) returns (stream Push)``: the request is the connect, each
message of the response stream one Protobuf ``Push`` (first the ``connect`` push), the
stream ends (status OK) after the ``disconnect`` push. Requests and responses are handled
as raw bytes (Centrifugo's ``RawCodec``): a push leaves as the hub encoded it, unwrapped
from its ``Reply``.

Sources: centrifugo ``internal/unigrpc`` (``grpc.go``, ``transport.go``, ``codec.go``,
``unistream/unistream.proto``) and ``internal/app/grpc.go`` (address, port, TLS,
``max_receive_message_size``). grpc is imported by ``start`` only and every worker binds
the port with ``SO_REUSEPORT``, as ``grpc_api.py`` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from relay.client import Client
from relay.errors import (
    DISCONNECT_CONNECTION_CLOSED,
    DISCONNECT_SLOW,
    DISCONNECT_WRITE_ERROR,
    Disconnect,
)
from relay.protocol import protobuf_codec
from relay.protocol.codecs import PROTOBUF
from relay.transports.tls import load_pem, server_context
from relay.transports.uni import uni_connect

if TYPE_CHECKING:
    import grpc
    import grpc.aio

    from relay.config.transport_tree import UniGrpcConfig
    from relay.config.tree import TLSConfig
    from relay.node import Node

__all__ = ["SERVICE", "UniGrpc", "parse_connect", "unwrap_push_protobuf"]

log = logging.getLogger("relay.uni_grpc")

SERVICE = "centrifugal.centrifugo.unistream.CentrifugoUniStream"
ENTITY = "uni_grpc.tls"
_PUSH_TAG = 0x22  # Reply.push: field 4, length-delimited
_END = object()


def unwrap_push_protobuf(message: bytes) -> bytes:
    """A Protobuf ``Reply`` carrying only a push -> the bare ``Push``; else as is."""
    if not message or message[0] != _PUSH_TAG:
        return message
    try:
        size, pos = protobuf_codec._read_length(message, 1, len(message))
    except Exception:
        return message
    return message[pos:] if pos + size == len(message) else message


def parse_connect(data: bytes) -> dict[str, Any]:
    """The unistream ``ConnectRequest`` as a client connect request: token, data, name,
    version, headers, and ``subs`` with only recover/epoch/offset (``grpc.go`` Consume)."""
    req = protobuf_codec.decode_message("ConnectRequest", data)
    req.pop("flag", None)
    subs = req.get("subs")
    if subs:
        req["subs"] = {
            ch: {k: v for k, v in (sub or {}).items() if k in ("recover", "epoch", "offset")}
            for ch, sub in subs.items()
        }
    return req


class GrpcUniTransport:
    """``ClientTransport`` over one ``Consume`` response stream."""

    name = "uni_grpc"

    def __init__(self, node: Node) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.queue_max_size = node.config.client.queue_max_size
        self._size = 0
        self._closing = False
        self.client = Client(node, self, PROTOBUF)
        self.client.unidirectional = True

    def write_message(self, message: bytes) -> None:
        if self._closing:
            return
        message = unwrap_push_protobuf(message)
        self._size += len(message)
        self.queue.put_nowait(message)
        if self._size > self.queue_max_size:
            self.client.disconnect(DISCONNECT_SLOW)

    def close(self, disconnect: Disconnect) -> None:
        if self._closing:
            return
        if disconnect.code in (DISCONNECT_SLOW.code, DISCONNECT_WRITE_ERROR.code):
            while not self.queue.empty():
                self.queue.get_nowait()
        elif disconnect.code != DISCONNECT_CONNECTION_CLOSED.code:
            push = {"disconnect": {"code": disconnect.code, "reason": disconnect.reason}}
            self.write_message(PROTOBUF.encode_reply({"push": push}))
        self._closing = True
        self.queue.put_nowait(_END)

    async def stream(self) -> AsyncIterator[bytes]:
        while True:
            item = await self.queue.get()
            if item is _END:
                return
            assert isinstance(item, bytes)
            self._size -= len(item)
            yield item


def _server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """``uni_grpc.tls``, checked as ``grpc_api.tls`` is."""
    import grpc

    server_context(tls, ENTITY)
    cert = load_pem(tls.cert_pem, f"{ENTITY}.cert_pem")
    key = load_pem(tls.key_pem, f"{ENTITY}.key_pem")
    ca = load_pem(tls.client_ca_pem, f"{ENTITY}.client_ca_pem") if tls.client_ca_pem else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


class UniGrpc:
    """The uni-directional gRPC server of one worker; ``port`` is the bound one."""

    def __init__(self, node: Node, config: UniGrpcConfig | None = None) -> None:
        self.node = node
        self.config = config if config is not None else node.config.uni_grpc
        self.port = 0
        self.announce = True
        self._server: grpc.aio.Server | None = None

    async def _consume(self, request: dict[str, Any], context: Any) -> AsyncIterator[bytes]:
        transport = GrpcUniTransport(self.node)
        client = transport.client
        connect = asyncio.get_running_loop().create_task(uni_connect(client, request))
        try:
            async for message in transport.stream():
                yield message
        finally:
            if not connect.done():
                connect.cancel()
            client.on_transport_closed()

    async def start(self) -> int:
        """Listen on ``uni_grpc.address:port``; returns the bound port."""
        import grpc
        import grpc.aio

        cfg = self.config
        credentials = _server_credentials(cfg.tls) if cfg.tls.enabled else None
        options: list[tuple[str, int]] = [("grpc.so_reuseport", 1)]
        if cfg.max_receive_message_size > 0:
            options.append(("grpc.max_receive_message_length", cfg.max_receive_message_size))
        server = grpc.aio.server(options=options)
        handler = grpc.unary_stream_rpc_method_handler(
            self._consume,
            request_deserializer=parse_connect,
            response_serializer=lambda data: data,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, {"Consume": handler}),)
        )
        host = cfg.address or "[::]"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        address = f"{host}:{cfg.port}"  # Go's net.JoinHostPort
        try:
            if credentials is not None:
                port = server.add_secure_port(address, credentials)
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen to address {address}") from exc
        if port == 0:
            raise OSError(f"cannot listen to address {address}")
        await server.start()
        self._server = server
        self.port = port
        if self.announce:
            log.info("serving unidirectional GRPC on %s", address.rsplit(":", 1)[0] + f":{port}")
        return port

    async def stop(self, grace: float | None = 1.0) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
