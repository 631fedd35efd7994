"""gRPC channel credentials from a proxy's ``grpc.tls`` block."""

from __future__ import annotations

import grpc

from relay.config.pem import load_pem
from relay.config.proxy_tree import TLSConfig

__all__ = ["grpc_credentials"]


def grpc_credentials(cfg: TLSConfig, entity: str) -> grpc.ChannelCredentials:
    """PEM values read as every TLS block's (``config/pem.py``); a bad one is a
    ``ValueError`` naming the key."""
    what = f"{entity}.grpc.tls"
    return grpc.ssl_channel_credentials(
        root_certificates=load_pem(cfg.server_ca_pem, f"{what}.server_ca_pem")
        if cfg.server_ca_pem
        else None,
        private_key=load_pem(cfg.key_pem, f"{what}.key_pem") if cfg.key_pem else None,
        certificate_chain=load_pem(cfg.cert_pem, f"{what}.cert_pem") if cfg.cert_pem else None,
    )
