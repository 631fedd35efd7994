"""``ssl.SSLContext`` from a ``TLSConfig`` block, as Centrifugo builds its ``tls.Config``.

Source: centrifugo ``internal/configtypes/tls.go`` and ``pem.go``: TLS 1.2 at least; each
PEM value is raw PEM, base64 of PEM, or a path to a file holding PEM (tried in that
order); ``client_ca_pem`` makes client certificates required and verified.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile

from relay.config.tree import TLSConfig

__all__ = ["TLSConfigError", "load_pem", "server_context"]


class TLSConfigError(ValueError):
    """A TLS block that cannot be turned into a context (relay refuses to start)."""


def _is_pem(data: bytes) -> bool:
    begin = data.find(b"-----BEGIN ")
    return begin >= 0 and data.find(b"-----END ", begin) > begin


def load_pem(value: str, what: str) -> bytes:
    """The PEM bytes ``value`` stands for (raw, base64 or a file path)."""
    raw = value.encode()
    if _is_pem(raw):
        return raw
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if _is_pem(decoded):
        return decoded
    if os.path.exists(value):
        try:
            with open(value, "rb") as f:
                content = f.read()
        except OSError as exc:
            raise TLSConfigError(f"{what}: error reading file: {exc}") from None
        if not _is_pem(content):
            raise TLSConfigError(f'{what}: file "{value}" contains invalid PEM data')
        return content
    raise TLSConfigError(
        f"{what}: invalid PEM data: not a valid file path, base64-encoded PEM content, "
        "or raw PEM content"
    )


def server_context(cfg: TLSConfig, entity: str) -> ssl.SSLContext:
    """A server-side context for ``cfg`` (which must be enabled); ``entity`` names it in
    errors (``http_server.tls``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not (cfg.cert_pem and cfg.key_pem):
        raise TLSConfigError(f"{entity}: cert_pem and key_pem are required for a server")
    cert = load_pem(cfg.cert_pem, f"{entity}.cert_pem")
    key = load_pem(cfg.key_pem, f"{entity}.key_pem")
    # ssl loads a key pair from files only: a private temporary file, removed at once.
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
    if cfg.client_ca_pem:
        ca = load_pem(cfg.client_ca_pem, f"{entity}.client_ca_pem")
        try:
            ctx.load_verify_locations(cadata=ca.decode("ascii", "replace"))
        except ssl.SSLError as exc:
            raise TLSConfigError(f"{entity}: no valid client CA certificates: {exc}") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
