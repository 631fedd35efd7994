"""Signing claims into an HMAC compact JWS (for tests and dev scripts; the server only verifies)."""

from __future__ import annotations

import base64
import hmac
import json
from typing import Any

from relay.auth.jws import _ALGORITHMS, _HMAC


def encode_hmac_token(claims: dict[str, Any], secret: str, algorithm: str = "HS256") -> str:
    """Sign ``claims`` as a compact JWS with an HMAC ``algorithm`` (for tests and dev scripts)."""
    entry = _ALGORITHMS.get(algorithm)
    if entry is None or entry[0] != _HMAC:
        raise ValueError(f"not an HMAC algorithm: {algorithm}")

    def segment(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    header = segment(json.dumps({"alg": algorithm, "typ": "JWT"}, separators=(",", ":")).encode())
    payload = segment(json.dumps(claims, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.digest(secret.encode("utf-8"), signing_input, entry[1])
    return f"{header}.{payload}.{segment(signature)}"
