"""The server API over gRPC (``grpc_api``): one ``grpc.aio`` server per worker.

Source: centrifugo ``internal/app/grpc.go`` (``runGRPCAPIServer``): listen on
``address:port``, the API key check, ``max_receive_message_size``, TLS (PEM values read
by ``tls.load_pem``, as for ``http_server.tls``), reflection. The service itself is
``grpc_service.py``.

grpc is imported by ``start`` only: a process that never enables ``grpc_api`` never loads
it (the front process forks its workers after importing ``relay.server``, and grpc's core
threads must not cross a fork). Every worker binds the same port with ``SO_REUSEPORT``
(``grpc.so_reuseport``); the kernel spreads connections over them, and each worker's
executor reaches the others (bus or Redis) as for the HTTP API.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from relay.config.tree import GrpcAPIConfig, TLSConfig
from relay.errors import ConfigError
from relay.transports.tls import load_pem, server_context

if TYPE_CHECKING:
    import grpc
    import grpc.aio

    from relay.api import Executor
    from relay.node import Node

__all__ = ["GrpcAPI", "listen_address"]

log = logging.getLogger("relay.grpc_api")

ENTITY = "grpc_api.tls"


def listen_address(config: GrpcAPIConfig) -> str:
    """``address:port`` as Go's ``net.JoinHostPort`` writes it ("" = every interface)."""
    host = config.address or "[::]"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{config.port}"


def _server_credentials(tls: TLSConfig) -> grpc.ServerCredentials:
    """``grpc_api.tls``: certificate and key, ``client_ca_pem`` for mutual TLS, checked as
    ``http_server.tls`` is (``tls.server_context``: a key pair that does not match, a CA
    without certificates fail here). The client-side options (``server_ca_pem``,
    ``insecure_skip_verify``, ``server_name``) mean nothing to a server, in Centrifugo too."""
    import grpc

    server_context(tls, ENTITY)
    cert = load_pem(tls.cert_pem, f"{ENTITY}.cert_pem")
    key = load_pem(tls.key_pem, f"{ENTITY}.key_pem")
    ca = load_pem(tls.client_ca_pem, f"{ENTITY}.client_ca_pem") if tls.client_ca_pem else None
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=ca is not None
    )


class GrpcAPI:
    """The gRPC server API of one worker (``node`` and ``executor`` of its RelayServer).

    ``config`` defaults to ``node.config.grpc_api``. ``start`` binds and serves, and sets
    ``port`` (the bound one: ``port`` 0 picks a free port, for tests); ``stop`` finishes
    the calls in flight (at most ``grace`` seconds) and closes the listener.
    """

    def __init__(self, node: Node, executor: Executor, config: GrpcAPIConfig | None = None):
        self.node = node
        self.executor = executor
        self.config = config if config is not None else node.config.grpc_api
        if self.config.error_mode not in ("", "transport"):
            raise ConfigError(  # Centrifugo's words (app/grpc.go, tools.OptionalStringChoice)
                f"can't extract grpc error mode: invalid value: {self.config.error_mode}, "
                "possible choices are: transport"
            )
        self.port = 0
        self.announce = True  # log "serving ..." (a node's first worker only)
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        """Listen on ``grpc_api.address:port``; returns the bound port.

        Raises ``tls.TLSConfigError`` (a ``ValueError``) for an unusable TLS block, ``OSError``
        when the address cannot be bound.
        """
        import grpc
        import grpc.aio

        from relay.transports.grpc_service import SERVICE, CentrifugoApiService, UnknownMethods

        cfg = self.config
        credentials = _server_credentials(cfg.tls) if cfg.tls.enabled else None
        options: list[tuple[str, int]] = [("grpc.so_reuseport", 1)]
        if cfg.max_receive_message_size > 0:
            options.append(("grpc.max_receive_message_length", cfg.max_receive_message_size))
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers(
            (CentrifugoApiService(self.node, self.executor, cfg).handler(),)
        )
        if cfg.reflection:
            from grpc_reflection.v1alpha import reflection

            reflection.enable_server_reflection((SERVICE, reflection.SERVICE_NAME), server)
        server.add_generic_rpc_handlers((UnknownMethods(),))
        address = listen_address(cfg)
        try:
            if credentials is not None:
                port = server.add_secure_port(address, credentials)
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc: "Failed to bind to address ..."
            raise OSError(f"cannot listen to address {address}") from exc
        if port == 0:  # older grpc reports a failed bind as port 0
            raise OSError(f"cannot listen to address {address}")
        await server.start()
        self._server = server
        self.port = port
        if self.announce:
            log.info("serving GRPC API service on %s", address.rsplit(":", 1)[0] + f":{port}")
        return port

    async def stop(self, grace: float | None = 5.0) -> None:
        """Refuse new calls, let the ones in flight finish within ``grace`` seconds."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
