"""``ssl.SSLContext`` from a ``TLSConfig`` block, as Centrifugo builds its ``tls.Config``.

Source: centrifugo ``internal/configtypes/tls.go`` and ``pem.go``: TLS 1.2 at least; each
PEM value is raw PEM, base64 of PEM, or a path to a file holding PEM (tried in that
order); ``client_ca_pem`` makes client certificates required and verified.
"""

from __future__ import annotations

import os
import ssl
import tempfile

from relay.config.pem import TLSConfigError, load_pem
from relay.config.proxy_tree import TLSConfig

__all__ = ["TLSConfigError", "client_context", "load_pem", "server_context"]


def server_context(cfg: TLSConfig, entity: str) -> ssl.SSLContext:
    """A server-side context for ``cfg`` (which must be enabled); ``entity`` names it in
    errors (``http_server.tls``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not (cfg.cert_pem and cfg.key_pem):
        raise TLSConfigError(f"{entity}: cert_pem and key_pem are required for a server")
    _load_key_pair(ctx, cfg, entity)
    if cfg.client_ca_pem:
        ca = load_pem(cfg.client_ca_pem, f"{entity}.client_ca_pem")
        try:
            ctx.load_verify_locations(cadata=ca.decode("ascii", "replace"))
        except ssl.SSLError as exc:
            raise TLSConfigError(f"{entity}: no valid client CA certificates: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_context(cfg: TLSConfig, entity: str) -> ssl.SSLContext:
    """A client-side context for ``cfg`` (proxies to the backend): its CA or the system's,
    ``insecure_skip_verify``, ``server_name`` and a client certificate when given."""
    ctx = ssl.create_default_context()
    if cfg.server_ca_pem:
        ca = load_pem(cfg.server_ca_pem, f"{entity}.server_ca_pem")
        ctx = ssl.create_default_context(cadata=ca.decode("ascii", "replace"))
    if cfg.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cfg.cert_pem and cfg.key_pem:
        _load_key_pair(ctx, cfg, entity)
    return ctx


def _load_key_pair(ctx: ssl.SSLContext, cfg: TLSConfig, entity: str) -> None:
    """``cert_pem`` + ``key_pem`` into ``ctx``. ssl loads a key pair from files only:
    private temporary files, removed at once."""
    cert = load_pem(cfg.cert_pem, f"{entity}.cert_pem")
    key = load_pem(cfg.key_pem, f"{entity}.key_pem")
    with tempfile.TemporaryDirectory(prefix="relay-tls-") as tmp:
        cert_path, key_path = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        try:
            ctx.load_cert_chain(cert_path, key_path)
        except ssl.SSLError as exc:
            raise TLSConfigError(f"{entity}: error create x509 key pair: {exc}") from None
