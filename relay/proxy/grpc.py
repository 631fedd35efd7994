"""The gRPC proxy caller: Centrifugo's ``CentrifugoProxy`` service (``proxy.proto``).

Imported only when a gRPC proxy is configured (``registry._caller``), so a worker without
one never loads grpcio. One channel per proxy; each call carries the static metadata,
the forwarded upgrade headers (lower-cased, as metadata keys must be) and the per-RPC
credentials key, with the proxy's ``timeout`` as its deadline. Bytes fields travel as
bytes: no JSON check, as Centrifugo's gRPC proxies.

Source: centrifugo ``internal/proxy/grpc.go``.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import Message

from relay.config.proxy_tree import ProxyConfig
from relay.proxy import proxy_pb2 as pb
from relay.proxy.messages import ProxyFailure

__all__ = ["GRPCCaller", "SERVICE", "to_dict"]

SERVICE = "centrifugal.centrifugo.proxy.CentrifugoProxy"
#: request type -> (method, request class, response class)
METHODS: dict[str, tuple[str, Any, Any]] = {
    "connect": ("Connect", pb.ConnectRequest, pb.ConnectResponse),
    "refresh": ("Refresh", pb.RefreshRequest, pb.RefreshResponse),
    "subscribe": ("Subscribe", pb.SubscribeRequest, pb.SubscribeResponse),
    "publish": ("Publish", pb.PublishRequest, pb.PublishResponse),
    "rpc": ("RPC", pb.RPCRequest, pb.RPCResponse),
    "sub_refresh": ("SubRefresh", pb.SubRefreshRequest, pb.SubRefreshResponse),
}


def to_dict(message: Message) -> dict[str, Any]:
    """The set fields of ``message`` as the dict ``messages.decode_response`` makes."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.message_type is not None:
                out[field.name] = {k: to_dict(v) for k, v in value.items()}
            else:
                out[field.name] = dict(value)
        elif isinstance(value, list) or hasattr(value, "extend"):  # a repeated field
            out[field.name] = [to_dict(v) if isinstance(v, Message) else v for v in value]
        elif isinstance(value, Message):
            out[field.name] = to_dict(value)
        else:
            out[field.name] = value
    return out


def _target(endpoint: str) -> str:
    return endpoint.removeprefix("grpc://")


class GRPCCaller:
    protocol = "grpc"

    def __init__(self, cfg: ProxyConfig, entity: str) -> None:
        from relay.proxy.tls import grpc_credentials

        self.target = _target(cfg.endpoint)
        self.timeout = cfg.timeout
        g = cfg.grpc
        self.metadata = [(k.lower(), v) for k, v in g.static_metadata]
        if g.credentials_key:
            self.metadata.append((g.credentials_key.lower(), g.credentials_value))
        self.compression = grpc.Compression.Gzip if g.compression else None
        self.credentials = grpc_credentials(g.tls, entity) if g.tls.enabled else None
        self.server_name = g.tls.server_name
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[str, Any] = {}

    def channel(self) -> grpc.aio.Channel:
        """The proxy's one channel (made on first use)."""
        if self._channel is None:
            options = (
                [("grpc.ssl_target_name_override", self.server_name)] if (self.server_name) else []
            )
            if self.credentials is not None:
                self._channel = grpc.aio.secure_channel(
                    self.target, self.credentials, options=options
                )
            else:
                self._channel = grpc.aio.insecure_channel(self.target)
        return self._channel

    def call_metadata(self, headers: dict[str, str]) -> list[tuple[str, str]] | None:
        """Static metadata, credentials and the forwarded headers of one call."""
        metadata = [*self.metadata, *((k.lower(), v) for k, v in headers.items())]
        return metadata or None

    def _stub(self, kind: str) -> Any:
        call = self._calls.get(kind)
        if call is None:
            method, req_cls, resp_cls = METHODS[kind]
            call = self._calls[kind] = self.channel().unary_unary(
                f"/{SERVICE}/{method}",
                request_serializer=req_cls.SerializeToString,
                response_deserializer=resp_cls.FromString,
            )
        return call

    async def __call__(
        self, kind: str, request: dict[str, Any], headers: dict[str, str]
    ) -> dict[str, Any]:
        _method, req_cls, _resp = METHODS[kind]
        message = req_cls(**{k: v for k, v in request.items() if v})
        try:
            answer = await self._stub(kind)(
                message,
                timeout=self.timeout,
                metadata=self.call_metadata(headers),
                compression=self.compression,
            )
        except grpc.aio.AioRpcError as exc:
            raise ProxyFailure(f"gRPC error {exc.code().name}: {exc.details()}") from None
        return to_dict(answer)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._calls.clear()
