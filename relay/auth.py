"""Connection and subscription JWT verification (layer 1: pure, no asyncio, no I/O).

Follows Centrifugo v6 ``internal/jwtverify/token_verifier_jwt.go`` (spec server-surface §6):

1. the compact JWS is parsed strictly (3 unpadded base64url segments, JSON object header with a
   string ``alg``, JSON object claims); every claim is type-checked (null means absent);
2. ``issuer_regex`` / ``audience_regex`` are applied (unanchored search, like Go's ``MatchString``);
3. the signature is checked: the algorithm *family* is chosen from the configured keys, never
   from the token; the header ``alg`` merely has to name an enabled member of it;
4. exact ``audience`` / ``issuer`` checks;
5. a connection token must not carry a non-empty ``channel``; a subscription token must;
6. time: ``exp <= now`` or ``nbf >= now`` raise :class:`TokenExpired`. ``nbf == now`` counts
   as "not yet valid", as in cristalhq/jwt's ``IsValidNotBefore`` (``nbf.Before(now)``); no
   leeway, fractional dates allowed, ``iat`` is not checked.

Every malformation is reported as :class:`TokenInvalid` *before* expiry is considered, so an
expired token that is also malformed is invalid. HMAC signatures are checked with the standard
library (``hmac.digest`` + constant-time ``hmac.compare_digest``); RSA/ECDSA signatures with PyJWT's
algorithm implementations picked from a fixed table (never PyJWT's header-driven selection nor its
claim checks). ``cryptography`` and PyJWT are imported only when an RSA or ECDSA key is configured,
so an HMAC-only worker never loads them (several MiB of memory per process). JWKS
(``jwks_public_endpoint``) is not supported: when configured, every token is invalid and
:attr:`TokenVerifier.jwks_unsupported` is true so the server can warn.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from relay.config import TokenConfig
from relay.protocol.channels import Override
from relay.protocol.claims import ConnectTokenClaims, SubOptions, SubscribeTokenClaims

if TYPE_CHECKING:  # imported lazily at run time: only RSA/ECDSA keys need them
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from jwt.algorithms import Algorithm

__all__ = [
    "MAX_TOKEN_LENGTH",
    "TokenError",
    "TokenExpired",
    "TokenInvalid",
    "SubscriptionOverride",
    "SubOptions",
    "ConnectTokenClaims",
    "SubscribeTokenClaims",
    "TokenVerifier",
    "encode_hmac_token",
]

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
_OVERRIDE_KEYS = (
    "presence",
    "join_leave",
    "force_push_join_leave",
    "force_recovery",
    "force_positioning",
)


# --------------------------------------------------------------------------- errors


class TokenError(Exception):
    """Base of token failures; ``reason`` is a short text for logs (never sent to clients)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenExpired(TokenError):
    """``exp`` passed or ``nbf`` not reached: connect error 109, sub refresh ``expired``."""


class TokenInvalid(TokenError):
    """Any other failure: disconnect 3500 on connect/refresh, error 103 on subscribe."""


# --------------------------------------------------------------------------- claims


SubscriptionOverride = Override  # the one override type (relay/protocol/channels.py)


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Compact:
    alg: str
    signing_input: bytes
    signature: bytes
    claims: dict[str, Any]


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
    claims = _json_object(_b64url_decode(parts[1]), "claims")
    signature = _b64url_decode(parts[2])
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return _Compact(alg, signing_input, signature, claims)


# --------------------------------------------------------------------------- claim types


def _text(value: str, name: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TokenInvalid(f"claim {name} is not valid UTF-8") from exc
    return value


def _opt_str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TokenInvalid(f"claim {name} is not a string")
    return _text(value, name)


def _numeric_date(obj: dict[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenInvalid(f"claim {name} is not a number")
    try:
        result = float(value)
    except OverflowError as exc:
        raise TokenInvalid(f"claim {name} out of range") from exc
    if not math.isfinite(result):
        raise TokenInvalid(f"claim {name} out of range")
    return result


def _opt_int(obj: dict[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TokenInvalid(f"claim {name} is not an integer")
    if not -(2**63) <= value < 2**63:
        raise TokenInvalid(f"claim {name} out of range")
    return value


def _raw_json(obj: dict[str, Any], name: str) -> bytes | None:
    value = obj.get(name)
    if value is None:
        return None
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError) as exc:
        raise TokenInvalid(f"claim {name} cannot be re-encoded") from exc


def _b64_or_json(obj: dict[str, Any], b64_name: str, json_name: str) -> bytes | None:
    encoded = _opt_str(obj, b64_name)
    if encoded:
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise TokenInvalid(f"claim {b64_name} is not base64") from exc
    return _raw_json(obj, json_name)


def _str_list(obj: dict[str, Any], name: str) -> tuple[str, ...]:
    value = obj.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenInvalid(f"claim {name} is not a list of strings")
    return tuple(_text(v, name) for v in value)


def _audience(obj: dict[str, Any]) -> tuple[str, ...]:
    value = obj.get("aud")
    if isinstance(value, str):
        return (_text(value, "aud"),)
    return _str_list(obj, "aud")


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TokenInvalid(f"claim {name} is not an object")
    return value


def _bool_value(obj: dict[str, Any], name: str) -> bool | None:
    value = obj.get(name)
    if value is None:
        return None
    inner = _object(value, f"override.{name}").get("value")
    if inner is None:
        return False
    if not isinstance(inner, bool):
        raise TokenInvalid(f"claim override.{name}.value is not a boolean")
    return inner


def _override(obj: dict[str, Any]) -> SubscriptionOverride | None:
    value = obj.get("override")
    if value is None:
        return None
    raw = _object(value, "override")
    return SubscriptionOverride(**{key: _bool_value(raw, key) for key in _OVERRIDE_KEYS})


def _subs(obj: dict[str, Any]) -> dict[str, SubOptions]:
    value = obj.get("subs")
    if value is None:
        return {}
    result: dict[str, SubOptions] = {}
    for channel, options in _object(value, "subs").items():
        entry = {} if options is None else _object(options, "subs entry")
        result[_text(channel, "subs")] = SubOptions(
            info=_b64_or_json(entry, "b64info", "info"),
            data=_b64_or_json(entry, "b64data", "data"),
            override=_override(entry),
        )
    return result


def _user(obj: dict[str, Any], user_id_claim: str) -> str:
    if not user_id_claim:
        return _opt_str(obj, "sub")
    value = obj.get(user_id_claim)
    if value is None:
        return ""
    if isinstance(value, str):
        return _text(value, user_id_claim)
    if isinstance(value, bool):
        raise TokenInvalid(f"claim {user_id_claim} is not a user id")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    raise TokenInvalid(f"claim {user_id_claim} is not a user id")


def _truncate(value: float | None) -> int | None:
    return None if value is None else int(value)


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


def _compile(pattern: str, name: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{name}: invalid regular expression") from exc


# --------------------------------------------------------------------------- verifier


class TokenVerifier:
    """Verifies connection and subscription JWTs against one ``TokenConfig``.

    Build one per config: ``client.token``, and a second one from ``client.subscription_token``
    when it is ``enabled``. The constructor raises ``ValueError`` for an unloadable key or an
    invalid regex (config validation should have caught both). With
    ``skip_signature_verify`` (``client.insecure_skip_token_signature_verify``) the token is
    still parsed strictly and all claim rules apply, but any ``alg`` is accepted unverified.
    """

    def __init__(self, config: TokenConfig, *, skip_signature_verify: bool = False) -> None:
        self._config = config
        self._skip_signature = skip_signature_verify
        self.jwks_unsupported: bool = bool(config.jwks_public_endpoint)
        """True when ``jwks_public_endpoint`` is configured: every token is then invalid."""
        use_keys = not self.jwks_unsupported
        self._hmac_key = config.hmac_secret_key.encode("utf-8") if use_keys else b""
        self._hmac_previous = config.hmac_previous_secret_key.encode("utf-8") if use_keys else b""
        self._rsa = _rsa_key(config.rsa_public_key) if use_keys else None
        self._ecdsa = _ecdsa_key(config.ecdsa_public_key) if use_keys else None
        self._ecdsa_bits = self._ecdsa.curve.key_size if self._ecdsa is not None else 0
        self._asymmetric: dict[str, Algorithm] = (
            _asymmetric_algorithms() if self._rsa is not None or self._ecdsa is not None else {}
        )
        self._aud_re = _compile(config.audience_regex, "audience_regex")
        self._iss_re = _compile(config.issuer_regex, "issuer_regex")

    def verify_connect_token(self, token: str, now: float | None = None) -> ConnectTokenClaims:
        """Verify a connection token; raise :class:`TokenExpired` or :class:`TokenInvalid`."""
        return _guarded(self._connect, token, now)

    def verify_subscribe_token(self, token: str, now: float | None = None) -> SubscribeTokenClaims:
        """Verify a subscription token; raise :class:`TokenExpired` or :class:`TokenInvalid`."""
        return _guarded(self._subscribe, token, now)

    # ------------------------------------------------------------------ steps

    def _connect(self, token: str, now: float | None) -> ConnectTokenClaims:
        claims, now = self._verified(token, now)
        user = _user(claims, self._config.user_id_claim)
        if _opt_str(claims, "channel"):
            raise TokenInvalid("connection token has a channel claim")
        result = ConnectTokenClaims(
            user=user,
            exp=_truncate(_numeric_date(claims, "exp")),
            expire_at=_opt_int(claims, "expire_at"),
            info=_b64_or_json(claims, "b64info", "info"),
            channels=_str_list(claims, "channels"),
            subs=_subs(claims),
            meta=_raw_json(claims, "meta"),
        )
        _check_time(claims, now)
        return result

    def _subscribe(self, token: str, now: float | None) -> SubscribeTokenClaims:
        claims, now = self._verified(token, now)
        result = SubscribeTokenClaims(
            user=_user(claims, self._config.user_id_claim),
            channel=_opt_str(claims, "channel"),
            client=_opt_str(claims, "client"),
            exp=_truncate(_numeric_date(claims, "exp")),
            expire_at=_opt_int(claims, "expire_at"),
            info=_b64_or_json(claims, "b64info", "info"),
            data=_b64_or_json(claims, "b64data", "data"),
            override=_override(claims),
        )
        _check_time(claims, now)
        if not result.channel:
            raise TokenInvalid("subscription token without channel")
        return result

    def _verified(self, token: str, now: float | None) -> tuple[dict[str, Any], float]:
        """Steps 1-4: parse, registered-claim types, regexes, signature, exact aud/iss."""
        at = time.time() if now is None else now
        compact = _parse_compact(token)
        claims = compact.claims
        _numeric_date(claims, "exp")
        _numeric_date(claims, "nbf")
        audience = _audience(claims)
        issuer = _opt_str(claims, "iss")
        self._check_regexes(audience, issuer)
        if not self._skip_signature:
            self._check_signature(compact, at)
        self._check_exact(audience, issuer)
        return claims, at

    def _check_regexes(self, audience: tuple[str, ...], issuer: str) -> None:
        if self._iss_re is not None and self._iss_re.search(issuer) is None:
            raise TokenInvalid("issuer does not match issuer_regex")
        if self._aud_re is not None:
            pattern = self._aud_re
            if not any(pattern.search(aud) is not None for aud in audience):
                raise TokenInvalid("audience does not match audience_regex")

    def _check_exact(self, audience: tuple[str, ...], issuer: str) -> None:
        expected_aud = self._config.audience
        if expected_aud and not any(_same(aud, expected_aud) for aud in audience):
            raise TokenInvalid("audience mismatch")
        expected_iss = self._config.issuer
        if expected_iss and not _same(issuer, expected_iss):
            raise TokenInvalid("issuer mismatch")

    def _check_signature(self, compact: _Compact, now: float) -> None:
        if self.jwks_unsupported:
            raise TokenInvalid("jwks_public_endpoint is not supported")
        entry = _ALGORITHMS.get(compact.alg)
        if entry is None:
            raise TokenInvalid("unsupported algorithm")
        family, digest, curve_bits = entry
        signing_input, signature = compact.signing_input, compact.signature
        if family == _HMAC:
            if not self._hmac_key:
                raise TokenInvalid("disabled algorithm")
            if _hmac_verify(digest, signing_input, self._hmac_key, signature):
                return
            if self._previous_key_usable(now) and _hmac_verify(
                digest, signing_input, self._hmac_previous, signature
            ):
                return
            raise TokenInvalid("bad signature")
        key: object | None = self._rsa if family == _RSA else self._ecdsa
        if key is None:
            raise TokenInvalid("disabled algorithm")
        if family == _ECDSA and self._ecdsa_bits != curve_bits:
            raise TokenInvalid("ecdsa key does not match algorithm")
        if self._asymmetric[compact.alg].verify(signing_input, key, signature):
            return
        raise TokenInvalid("bad signature")

    def _previous_key_usable(self, now: float) -> bool:
        if not self._hmac_previous:
            return False
        until = self._config.hmac_previous_secret_key_valid_until
        return until == 0 or now <= until


_Result = TypeVar("_Result")


def _guarded(
    step: Callable[[str, float | None], _Result], token: str, now: float | None
) -> _Result:
    """Run a verification step, turning any foreign exception into :class:`TokenInvalid`."""
    try:
        return step(token, now)
    except TokenError:
        raise
    except Exception as exc:  # any PyJWT/cryptography/base64/json failure is an invalid token
        raise TokenInvalid(f"malformed token ({type(exc).__name__})") from exc


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _check_time(claims: dict[str, Any], now: float) -> None:
    """Step 6: ``exp <= now`` or ``nbf >= now`` (Centrifugo/cristalhq) -> expired."""
    exp = _numeric_date(claims, "exp")
    if exp is not None and exp <= now:
        raise TokenExpired("token expired")
    nbf = _numeric_date(claims, "nbf")
    if nbf is not None and nbf >= now:
        raise TokenExpired("token not valid yet (nbf)")


# --------------------------------------------------------------------------- helpers


def encode_hmac_token(claims: dict[str, Any], secret: str, algorithm: str = "HS256") -> str:
    """Sign ``claims`` as a compact JWS with an HMAC ``algorithm`` (tests and CLI ``gentoken``)."""
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
