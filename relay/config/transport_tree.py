"""Config of the client transports: ``websocket``, ``http_stream``, ``sse``, ``emulation``,
the uni-directional ones, and the connect-code transforms they use.

Part of the typed tree (``config/tree.py`` re-exports every class).
Source: centrifugo ``internal/configtypes/types.go``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from relay.config.proxy_tree import TLSConfig


@dataclass(frozen=True)
class TransformedDisconnect:
    code: int = 0
    """Disconnect code to close with."""
    reason: str = ""
    """Disconnect reason (ASCII)."""


@dataclass(frozen=True)
class UniDisconnectTransform:
    code: int = 0
    """Connect error code to match."""
    to: TransformedDisconnect = field(default_factory=TransformedDisconnect)
    """The disconnect a uni-directional connection gets for it."""


@dataclass(frozen=True)
class ConnectCodeToUnidirectionalDisconnect:
    """``client.connect_code_to_unidirectional_disconnect``: connect error codes ->
    disconnect codes of uni-directional transports (the rest: Centrifugo's defaults)."""

    enabled: bool = False
    """Use ``transforms``."""
    transforms: tuple[UniDisconnectTransform, ...] = ()
    """``[{code, to: {code, reason}}]``."""


@dataclass(frozen=True)
class TransformedHTTPResponse:
    status_code: int = 0
    """HTTP status of the answer."""
    body: str = ""
    """Body of the answer ("" = the error's message or the disconnect's reason)."""


@dataclass(frozen=True)
class HTTPResponseTransform:
    code: int = 0
    """Connect error (or disconnect) code to match."""
    to: TransformedHTTPResponse = field(default_factory=TransformedHTTPResponse)
    """The HTTP answer for it."""


@dataclass(frozen=True)
class ConnectCodeToHTTPResponse:
    """``uni_sse`` / ``uni_http_stream`` ``connect_code_to_http_response``: a failed
    connect answers with an HTTP status and body instead of an opened stream."""

    enabled: bool = False
    """Answer failed connects over HTTP (matched: the transform; else 500)."""
    transforms: tuple[HTTPResponseTransform, ...] = ()
    """``[{code, to: {status_code, body}}]``."""


@dataclass(frozen=True)
class WebsocketConfig:
    disabled: bool = False
    """Turn the WebSocket transport off."""
    handler_prefix: str = "/connection/websocket"
    """Path of the WebSocket endpoint (default ``/connection/websocket``)."""
    message_size_limit: int = 65536
    """Max incoming message size in bytes (default 65536; larger: close 1009)."""
    write_timeout: float = 1.0
    """Max time of a blocked write before disconnect (default 1s)."""
    compression: bool = False
    """Allow permessage-deflate (no context takeover either way)."""
    compression_level: int = 1
    """Deflate level, -2 (Huffman only) to 9 (default 1)."""
    compression_min_size: int = 0
    """Compress only messages longer than this many bytes (0: all)."""
    decompressed_message_size_limit: int = 0
    """Max size of a received message once inflated (0: 10 x ``message_size_limit``;
    larger: close 1009)."""
    read_buffer_size: int = 0
    """Read buffer size in bytes. Not implemented by relay (warns when set)."""
    write_buffer_size: int = 0
    """Write buffer size in bytes. Not implemented by relay (warns when set)."""
    use_write_buffer_pool: bool = False
    """Share write buffers between connections. Not implemented by relay (warns when set)."""


@dataclass(frozen=True)
class StreamEndpointConfig:
    """``sse``, ``http_stream``: the bidirectional emulation transports
    (``relay/transports/emulation.py``); commands arrive on ``emulation.handler_prefix``."""

    enabled: bool = False
    """Serve the endpoint (and, with either, the emulation endpoint)."""
    handler_prefix: str = ""
    """Path of the endpoint ("" = ``/connection/sse`` or ``/connection/http_stream``)."""
    max_request_body_size: int = 65536
    """Largest connect request body in bytes (default 65536; larger: HTTP 413)."""


@dataclass(frozen=True)
class EmulationConfig:
    """``emulation``: where SSE and HTTP-stream clients post their commands."""

    handler_prefix: str = "/emulation"
    """Path of the emulation endpoint (default ``/emulation``)."""
    max_request_body_size: int = 65536
    """Largest emulation request body in bytes (default 65536; larger: HTTP 413)."""


@dataclass(frozen=True)
class UniStreamConfig:
    """``uni_sse``, ``uni_http_stream``: push-only transports (``relay/transports/uni.py``)."""

    enabled: bool = False
    """Serve the endpoint."""
    handler_prefix: str = ""
    """Path ("" = ``/connection/uni_sse`` or ``/connection/uni_http_stream``)."""
    max_request_body_size: int = 65536
    """Largest connect request body in bytes (default 65536; larger: HTTP 413)."""
    connect_code_to_http_response: ConnectCodeToHTTPResponse = field(
        default_factory=ConnectCodeToHTTPResponse
    )
    """Failed connects answered over HTTP instead of a stream."""


@dataclass(frozen=True)
class UniWebsocketConfig:
    """``uni_websocket``: push-only WebSocket (``relay/transports/uni.py``)."""

    enabled: bool = False
    """Serve the endpoint."""
    handler_prefix: str = "/connection/uni_websocket"
    """Path of the endpoint (default ``/connection/uni_websocket``)."""
    message_size_limit: int = 65536
    """Largest incoming message (the connect request) in bytes (default 65536)."""
    write_timeout: float = 1.0
    """Max time of a blocked write before disconnect (default 1s)."""
    join_push_messages: bool = False
    """Join the pushes of one write into one frame, newline-separated."""
    disable_closing_handshake: bool = False
    """Close the socket without a close frame."""
    disable_disconnect_push: bool = False
    """Do not send the ``disconnect`` push before the close frame."""
    compression: bool = False
    """Allow permessage-deflate. Not implemented by relay (warns when set)."""
    compression_level: int = 1
    """Deflate level (default 1). Not implemented by relay (warns when set)."""
    compression_min_size: int = 0
    """Min message size to compress. Not implemented by relay (warns when set)."""
    read_buffer_size: int = 0
    """Read buffer size in bytes. Not implemented by relay (warns when set)."""
    write_buffer_size: int = 0
    """Write buffer size in bytes. Not implemented by relay (warns when set)."""
    use_write_buffer_pool: bool = False
    """Share write buffers. Not implemented by relay (warns when set)."""


@dataclass(frozen=True)
class UniGrpcConfig:
    """``uni_grpc``: push-only gRPC stream, service ``centrifugal.centrifugo.unistream``
    (``relay/transports/uni_grpc.py``)."""

    enabled: bool = False
    """Serve the uni-directional gRPC transport."""
    address: str = ""
    """Address to listen on ("" = all interfaces)."""
    port: int = 11000
    """Port to listen on (default 11000); every worker binds it (SO_REUSEPORT)."""
    max_receive_message_size: int = 0
    """Largest request message in bytes (0 = gRPC's default, 4 MiB)."""
    tls: TLSConfig = field(default_factory=TLSConfig)
    """TLS of the gRPC server (``client_ca_pem`` asks for client certificates)."""
