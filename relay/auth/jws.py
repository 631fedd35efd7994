"""Compact JWS handling: strict segment parsing, the algorithm table and signature helpers.

HMAC is checked with the standard library. RSA/ECDSA use PyJWT's algorithm objects and
``cryptography`` key loaders, both imported inside the functions that need them so that an
HMAC-only process never loads them.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relay.auth.errors import TokenInvalid

if TYPE_CHECKING:  # imported lazily at run time: only RSA/ECDSA keys need them
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from jwt.algorithms import Algorithm

MAX_TOKEN_LENGTH = 64 * 1024
"""Tokens longer than this many characters are rejected without being decoded."""

_HMAC = "hmac"
_RSA = "rsa"
_ECDSA = "ecdsa"

# alg -> (family, hashlib digest name, expected EC key size in bits or 0)
_ALGORITHMS: dict[str, tuple[str, str, int]] = {
    "HS256": (_HMAC, "sha256", 0),
    "HS384": (_HMAC, "sha384", 0),
    "HS512": (_HMAC, "sha512", 0),
    "RS256": (_RSA, "sha256", 0),
    "RS384": (_RSA, "sha384", 0),
    "RS512": (_RSA, "sha512", 0),
    "ES256": (_ECDSA, "sha256", 256),
    "ES384": (_ECDSA, "sha384", 384),
    "ES512": (_ECDSA, "sha512", 521),
}

_B64URL_RE = re.compile(r"[A-Za-z0-9_-]*")


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Compact:
    alg: str
    signing_input: bytes
    signature: bytes
    claims: dict[str, Any]
    kid: str = ""
    """The header's ``kid`` ("" when absent): picks the JWKS key."""


def _reject_constant(name: str) -> Any:
    raise TokenInvalid(f"non-standard JSON constant {name}")


def _b64url_decode(segment: str) -> bytes:
    if _B64URL_RE.fullmatch(segment) is None or len(segment) % 4 == 1:
        raise TokenInvalid("bad base64url segment")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise TokenInvalid(f"{what} is not JSON") from exc
    if not isinstance(value, dict):
        raise TokenInvalid(f"{what} is not a JSON object")
    return value


def _parse_compact(token: str) -> _Compact:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise TokenInvalid("token too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalid("token must have 3 segments")
    header = _json_object(_b64url_decode(parts[0]), "header")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenInvalid("header alg missing")
    for name in ("kid", "typ", "cty"):  # string fields of cristalhq/jwt's Header
        value = header.get(name)
        if value is not None and not isinstance(value, str):
            raise TokenInvalid(f"header {name} is not a string")
    kid = header.get("kid") or ""
    claims = _json_object(_b64url_decode(parts[1]), "claims")
    signature = _b64url_decode(parts[2])
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return _Compact(alg, signing_input, signature, claims, kid)


# --------------------------------------------------------------------------- keys


def _asymmetric_algorithms() -> dict[str, Algorithm]:
    """PyJWT's RSA/ECDSA implementations by ``alg`` (imports ``cryptography``: call lazily)."""
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    return {
        "RS256": RSAAlgorithm(RSAAlgorithm.SHA256),
        "RS384": RSAAlgorithm(RSAAlgorithm.SHA384),
        "RS512": RSAAlgorithm(RSAAlgorithm.SHA512),
        "ES256": ECAlgorithm(ECAlgorithm.SHA256),
        "ES384": ECAlgorithm(ECAlgorithm.SHA384),
        "ES512": ECAlgorithm(ECAlgorithm.SHA512),
    }


def _hmac_verify(digest: str, signing_input: bytes, key: bytes, signature: bytes) -> bool:
    """Constant-time HMAC check (same computation as PyJWT's ``HMACAlgorithm.verify``)."""
    return hmac.compare_digest(signature, hmac.digest(key, signing_input, digest))


def _load_public_key(pem: str, name: str) -> object:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = pem.strip().encode("utf-8")
    try:
        if b"CERTIFICATE" in data.split(b"\n", 1)[0]:
            return x509.load_pem_x509_certificate(data).public_key()
        return load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"{name}: cannot load PEM public key or certificate") from exc


def _rsa_key(pem: str) -> RSAPublicKey | None:
    if not pem:
        return None
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    key = _load_public_key(pem, "rsa_public_key")
    if not isinstance(key, RSAPublicKey):
        raise ValueError("rsa_public_key: not an RSA public key")
    return key


def _ecdsa_key(pem: str) -> EllipticCurvePublicKey | None:
    if not pem:
        return None
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    key = _load_public_key(pem, "ecdsa_public_key")
    if not isinstance(key, EllipticCurvePublicKey):
        raise ValueError("ecdsa_public_key: not an ECDSA public key")
    return key
