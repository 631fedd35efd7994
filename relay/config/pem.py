"""PEM values of config TLS blocks: raw PEM, base64 of PEM, or a path to a PEM file.

Source: centrifugo ``internal/configtypes/pem.go`` (``PEMData.Load``: tried in that order).
"""

from __future__ import annotations

import base64
import binascii
import os

__all__ = ["TLSConfigError", "load_pem"]


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
