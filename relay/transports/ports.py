"""Which endpoints each listening address serves, as Centrifugo decides it.

Centrifugo (``internal/app/mux.go``, ``runHTTPServers``) keeps two sets of handlers:

* external (``http_server.address:port``): the WebSocket endpoint (unless
  ``websocket.disabled``), SSE / HTTP-stream with the emulation endpoint and the
  uni-directional transports when enabled, plus the admin and the API when ``admin.external`` /
  ``http_api.external`` say so;
* internal (``internal_address`` or ``address``, ``internal_port`` or ``port``): the API,
  the admin, ``/metrics``, swagger and ``/health``.

When both resolve to the same ``host:port`` they are one server with both sets (the
default: everything on port 8000). TLS (``http_server.tls``) covers both, except the
internal one under ``tls_external``; ``internal_tls`` (enabled) replaces it there.
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.config import Config
from relay.config.proxy_tree import TLSConfig

__all__ = ["Listener", "plan"]

WEBSOCKET = "websocket"
API = "api"
ADMIN = "admin"
PROMETHEUS = "prometheus"
SWAGGER = "swagger"
HEALTH = "health"
HTTP_STREAM = "http_stream"
SSE = "sse"
EMULATION = "emulation"
UNI_WEBSOCKET = "uni_websocket"
UNI_SSE = "uni_sse"
UNI_HTTP_STREAM = "uni_http_stream"
#: Centrifugo's order when it logs "serving ... endpoints on ..." (mux.go ``flagsOrdered``).
ORDER = (
    WEBSOCKET,
    HTTP_STREAM,
    SSE,
    EMULATION,
    API,
    ADMIN,
    PROMETHEUS,
    HEALTH,
    UNI_WEBSOCKET,
    UNI_SSE,
    UNI_HTTP_STREAM,
    SWAGGER,
)


@dataclass(frozen=True)
class Listener:
    """One listening address and the endpoints it serves."""

    address: str
    port: int
    handlers: frozenset[str]
    tls: TLSConfig | None  # None: plain HTTP
    external: bool

    @property
    def label(self) -> str:
        return ", ".join(h for h in ORDER if h in self.handlers)


def _external(config: Config) -> set[str]:
    out: set[str] = set()
    if not config.websocket.disabled:
        out.add(WEBSOCKET)
    if config.sse.enabled:
        out.add(SSE)
    if config.http_stream.enabled:
        out.add(HTTP_STREAM)
    if config.sse.enabled or config.http_stream.enabled:
        out.add(EMULATION)  # mux.go: enabled automatically with either transport
    for name, uni in (
        (UNI_WEBSOCKET, config.uni_websocket),
        (UNI_SSE, config.uni_sse),
        (UNI_HTTP_STREAM, config.uni_http_stream),
    ):
        if uni.enabled:
            out.add(name)
    if config.admin.enabled and config.admin.external:
        out.add(ADMIN)
    if not config.http_api.disabled and config.http_api.external:
        out.add(API)
    return out


def _internal(config: Config) -> set[str]:
    out: set[str] = set()
    if not config.http_api.disabled and not config.http_api.external:
        out.add(API)
    if config.admin.enabled and not config.admin.external:
        out.add(ADMIN)
    for name, endpoint in (
        (PROMETHEUS, config.prometheus),
        (SWAGGER, config.swagger),
        (HEALTH, config.health),
    ):
        if endpoint.enabled:
            out.add(name)
    return out


def internal_port(config: Config) -> int:
    """``http_server.internal_port`` as a number ("" = ``port``); ValueError if not one."""
    raw = config.http_server.internal_port.strip()
    return int(raw) if raw else config.http_server.port


def plan(config: Config) -> list[Listener]:
    """The listeners to open, the external one first; none without handlers."""
    http = config.http_server
    ext_key = (http.address, http.port)
    int_key = (http.internal_address or http.address, internal_port(config))
    tls = http.tls if http.tls.enabled else None
    internal_tls = None if http.tls_external else tls
    if http.internal_tls.enabled:
        internal_tls = http.internal_tls
    if int_key == ext_key:
        handlers = _external(config) | _internal(config)
        return [Listener(*ext_key, frozenset(handlers), tls, True)] if handlers else []
    out = []
    for key, handlers, layer_tls, external in (
        (ext_key, _external(config), tls, True),
        (int_key, _internal(config), internal_tls, False),
    ):
        if handlers:
            out.append(Listener(*key, frozenset(handlers), layer_tls, external))
    return out
