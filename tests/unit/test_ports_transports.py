"""Which listener serves the emulation and uni-directional endpoints (mux.go)."""

from __future__ import annotations

from dataclasses import replace

from relay.config import Config, HTTPServerConfig
from relay.config.tree import StreamEndpointConfig, UniStreamConfig, UniWebsocketConfig
from relay.transports import ports


def test_emulation_endpoint_comes_with_either_transport() -> None:
    assert ports.EMULATION not in ports.plan(Config())[0].handlers
    for key in ("sse", "http_stream"):
        cfg = replace(Config(), **{key: StreamEndpointConfig(enabled=True)})
        handlers = ports.plan(cfg)[0].handlers
        assert {key, ports.EMULATION} <= handlers


def test_new_endpoints_are_external_in_centrifugos_order() -> None:
    cfg = replace(
        Config(),
        http_server=HTTPServerConfig(internal_port="9001"),
        sse=StreamEndpointConfig(enabled=True),
        http_stream=StreamEndpointConfig(enabled=True),
        uni_websocket=UniWebsocketConfig(enabled=True),
        uni_sse=UniStreamConfig(enabled=True),
        uni_http_stream=UniStreamConfig(enabled=True),
    )
    external, internal = ports.plan(cfg)
    # the line Centrifugo 6.9.1 logs for the same config ("serving ... endpoints on :8000")
    assert external.label == (
        "websocket, http_stream, sse, emulation, uni_websocket, uni_sse, uni_http_stream"
    )
    assert not internal.handlers & {ports.SSE, ports.EMULATION, ports.UNI_SSE}
