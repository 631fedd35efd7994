"""JSON Web Key Sets: parsing, the key cache and the signature check (pure, no I/O).

The HTTP fetch lives above this layer (``relay/context.py``: :class:`JwksFetcher`), which
hands the body of a fetched document to :meth:`JwksKeys.store`. Behaviour follows
Centrifugo v6.9.1:

* ``internal/jwks/manager.go`` -- keys are looked up by (resolved URL, token ``kid``); a
  token without ``kid`` is invalid; a miss fetches the whole set and caches every key whose
  ``use`` is exactly ``"sig"`` (others, including keys without ``use``, are ignored); a set
  that does not decode, or has a key that does not convert, caches nothing;
* ``internal/jwks/cache_ttl.go`` -- an entry lives one hour after its *last use* (each hit
  renews it), so a key removed from the set keeps working while it is in use;
* rakutentech/jwk-go ``unmarshal.go`` -- kty ``RSA`` / ``EC`` (P-256/384/521, exact
  coordinate sizes, point on the curve) / ``OKP`` / ``oct``; base64url without padding;
  Go's JSON rules (field names match case-insensitively, ``null`` keeps a string field);
* ``internal/jwtverify/token_verifier_jwt.go`` (``jwksManager.verify``) -- RSA: RS256/384/512,
  EC: ES256/384/512 matching the curve, OKP: Ed25519 with ``EdDSA``; the key's ``alg`` (when
  set) must equal the token's; a private key in the set is unusable; RSA moduli under 1024
  bits are refused (Go 1.26 ``crypto/rsa``, checked against the centrifugo binary).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from relay.auth.errors import TokenInvalid
from relay.auth.jws import _asymmetric_algorithms, _Compact
from relay.config.jwks import EndpointTemplate, go_clean_path, go_url_path

__all__ = ["JwksError", "JsonWebKey", "KeyCache", "JwksKeys", "parse_key_set", "CACHE_TTL"]

CACHE_TTL = 3600.0
"""Seconds a cached key lives after its last use (``_defaultTTL`` of manager.go)."""

_RSA_ALGS = frozenset({"RS256", "RS384", "RS512"})
_EC_ALGS = {"ES256": 256, "ES384": 384, "ES512": 521}
_EC_CURVES = {"P-256": (256, 32), "P-384": (384, 48), "P-521": (521, 66)}
_MAX_RSA_EXPONENT = 2**31 - 1
_MIN_RSA_BITS = 1024
_INT64 = (-(2**63), 2**63 - 1)
_B64URL = re.compile(rb"[A-Za-z0-9_-]*")
_BYTE_FIELDS = ("x", "y", "n", "e", "d", "p", "q", "dp", "dq", "qi", "k")
_STRING_FIELDS = ("kid", "kty", "alg", "crv", "use")


class JwksError(Exception):
    """A fetched key set that cannot be used as a whole (nothing of it is cached)."""


@dataclass(frozen=True, slots=True)
class JsonWebKey:
    """One ``use: sig`` key of a set; ``public`` is None where it cannot verify anything
    (a private key, an unsupported curve, an unloadable or too small RSA key)."""

    kid: str
    kty: str
    alg: str
    crv: str
    public: Any
    curve_bits: int = 0


# --------------------------------------------------------------------------- decoding


class _Object(list[tuple[str, Any]]):
    """A JSON object as its (name, value) pairs, in document order."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _fields(obj: _Object, names: tuple[str, ...]) -> dict[str, list[Any]]:
    """Each Go struct field's values in document order (names match case-insensitively)."""
    wanted = {name: name for name in names}
    out: dict[str, list[Any]] = {}
    for key, value in obj:
        name = wanted.get(key) or wanted.get(key.casefold())
        if name is not None:
            out.setdefault(name, []).append(value)
    return out


def _key_bytes(value: Any, field: str) -> bytes:
    """jwk-go ``keyBytes``: a base64url (no padding) string; Go skips CR and LF."""
    if not isinstance(value, str):
        raise JwksError(f"field {field} is not a string")
    raw = value.encode("utf-8").replace(b"\r", b"").replace(b"\n", b"")
    if _B64URL.fullmatch(raw) is None or len(raw) % 4 == 1:
        raise JwksError(f"field {field}: illegal base64 data")
    return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))


def _decode_jwk(item: Any) -> tuple[dict[str, str], dict[str, bytes | None]]:
    """The JWK struct of jwk-go ``jwk.go``: string fields, key-bytes fields, ``exp``."""
    if item is None:
        item = _Object()
    if not isinstance(item, _Object):
        raise JwksError("key is not a JSON object")
    found = _fields(item, _STRING_FIELDS + _BYTE_FIELDS + ("exp",))
    strings = {name: "" for name in _STRING_FIELDS}
    for name in _STRING_FIELDS:
        for value in found.get(name, ()):
            if value is None:
                continue  # Go: null leaves a string field as it was
            if not isinstance(value, str):
                raise JwksError(f"field {name} is not a string")
            strings[name] = value
    blobs: dict[str, bytes | None] = {}
    for name in _BYTE_FIELDS:
        blob: bytes | None = None
        for value in found.get(name, ()):
            blob = None if value is None else _key_bytes(value, name)
        blobs[name] = blob
    for value in found.get("exp", ()):
        if value is None:
            continue
        if type(value) is not int or not _INT64[0] <= value <= _INT64[1]:
            raise JwksError("field exp is not an int64")
    return strings, blobs


def _rsa(strings: dict[str, str], blobs: dict[str, bytes | None]) -> Any:
    n, e = blobs["n"], blobs["e"]
    if n is None or e is None:
        raise JwksError("missing field n/e for RSA key")
    exponent = int.from_bytes(e, "big")
    if exponent <= 0:
        raise JwksError("exponent must be positive")
    if exponent > _MAX_RSA_EXPONENT:
        raise JwksError("exponent is too big")
    if blobs["d"] is not None and blobs["p"] is not None and blobs["q"] is not None:
        return None  # a private key: token_verifier_jwt.go refuses it ("public key is invalid")
    modulus = int.from_bytes(n, "big")
    if modulus.bit_length() < _MIN_RSA_BITS:
        return None
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    try:
        return RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError:
        return None  # Go accepts the JWK; no signature can verify with it


def _ec(strings: dict[str, str], blobs: dict[str, bytes | None]) -> tuple[Any, int]:
    x, y, d = blobs["x"], blobs["y"], blobs["d"]
    if x is None or y is None:
        raise JwksError("missing field x/y for EC key")
    crv = strings["crv"]
    if not crv:
        raise JwksError("missing elliptic curve (crv field) for EC key")
    if crv not in _EC_CURVES:
        raise JwksError(f"unknown elliptic curve {crv}")
    bits, size = _EC_CURVES[crv]
    if len(x) != size or len(y) != size:
        raise JwksError(f"field x/y have wrong size: both should be {size} bytes")
    from cryptography.hazmat.primitives.asymmetric import ec

    curve: ec.EllipticCurve = (
        ec.SECP256R1() if bits == 256 else ec.SECP384R1() if bits == 384 else ec.SECP521R1()
    )
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
    )
    try:
        public = numbers.public_key()
    except ValueError:
        raise JwksError("coordinate (x,y) is not on the elliptic curve") from None
    if d is None:
        return public, bits
    if len(d) != size:
        raise JwksError(f"field d should be {size} bytes")
    try:
        derived = ec.derive_private_key(int.from_bytes(d, "big"), curve).public_key()
        matches = derived.public_numbers() == numbers
    except ValueError:
        matches = False
    if not matches:
        raise JwksError("field d does not match fields x/y")
    return None, bits  # a private key: refused at verification


def _okp(strings: dict[str, str], blobs: dict[str, bytes | None]) -> Any:
    x, d = blobs["x"], blobs["d"]
    if x is None:
        raise JwksError("public key field x not specified for OKP")
    crv = strings["crv"]
    if crv in ("Ed25519", "X25519"):
        for name, value in (("private", d), ("public", x)):
            if value and len(value) != 32:
                raise JwksError(f"expected {name} key to 32 bytes long, got {len(value)} bytes")
    elif crv not in ("Ed448", "X448"):
        raise JwksError(f"unknown curve specified: {crv}")
    if crv != "Ed25519" or len(x) != 32:
        return None  # only Ed25519 verifies (NewVerifierEdDSA needs a 32-byte key)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        return Ed25519PublicKey.from_public_bytes(x)
    except ValueError:
        return None


def _convert(item: Any) -> tuple[JsonWebKey, str]:
    """One key of a set and its ``use``."""
    strings, blobs = _decode_jwk(item)
    kty = strings["kty"]
    public: Any = None
    bits = 0
    if kty == "RSA":
        public = _rsa(strings, blobs)
    elif kty == "EC":
        public, bits = _ec(strings, blobs)
    elif kty == "OKP":
        public = _okp(strings, blobs)
    elif kty == "oct":
        if blobs["k"] is None:
            raise JwksError("missing field k for symmetric key")
    else:
        raise JwksError(f"unknown key type: {kty}")
    key = JsonWebKey(strings["kid"], kty, strings["alg"], strings["crv"], public, bits)
    return key, strings["use"]


def parse_key_set(body: bytes) -> list[JsonWebKey]:
    """The ``use: sig`` keys of a JWKS document, in order; :class:`JwksError` when the
    document or any of its keys does not decode (``fetchKey`` of manager.go)."""
    try:
        doc = json.loads(
            body.decode("utf-8", "replace"),
            object_pairs_hook=_Object,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError) as exc:
        raise JwksError(f"unmarshal error: {exc}") from None
    if doc is not None and not isinstance(doc, _Object):
        raise JwksError("unmarshal error: the document is not a JSON object")
    items: Any = None
    for value in _fields(doc or _Object(), ("keys",)).get("keys", ()):
        items = value
    if items is not None and not isinstance(items, list):
        raise JwksError("unmarshal error: keys is not an array")
    if not items:
        raise JwksError("public key not found (the set has no keys)")
    try:
        converted = [_convert(item) for item in items]
    except JwksError as exc:
        raise JwksError(f"convert error: {exc}") from None
    except Exception as exc:  # any cryptography failure on hostile input
        raise JwksError(f"convert error: {type(exc).__name__}") from None
    return [key for key, use in converted if use == "sig"]  # Centrifugo wants only "sig"


# --------------------------------------------------------------------------- cache


class KeyCache:
    """``TTLCache`` of cache_ttl.go: (URL, kid) -> key; an entry expires ``ttl`` seconds
    after it was added or last read."""

    def __init__(self, ttl: float = CACHE_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._items: dict[tuple[str, str], tuple[JsonWebKey, float]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, url: str, kid: str) -> JsonWebKey | None:
        now = self._clock()
        entry = self._items.get((url, kid))
        if entry is None:
            return None
        key, expires = entry
        if expires < now:
            del self._items[(url, kid)]
            return None
        self._items[(url, kid)] = (key, now + self.ttl)
        return key

    def add(self, url: str, key: JsonWebKey) -> None:
        now = self._clock()
        self._items = {k: v for k, v in self._items.items() if v[1] >= now}  # the sweep
        self._items[(url, key.kid)] = (key, now + self.ttl)


# --------------------------------------------------------------------------- one verifier


class JwksKeys:
    """The key side of one token verifier with ``jwks_public_endpoint`` (``Manager`` of
    manager.go without its HTTP client)."""

    def __init__(self, endpoint: str, cache: KeyCache | None = None) -> None:
        self.template = EndpointTemplate.parse(endpoint)
        self.templated = bool(self.template.tags)
        self.cache = cache or KeyCache()

    def resolve(self, token_vars: Mapping[str, str]) -> str:
        """The URL for a token (``resolveURL``): placeholders filled, then refused when
        the path has ``//``, ``.`` or ``..`` segments or a trailing slash."""
        static = self.template.static
        url = static if static is not None else self.template.execute(token_vars)
        try:
            _, path = go_url_path(url)
        except ValueError as exc:
            raise TokenInvalid(f"error parsing JWKS URL: {exc}") from None
        if path and go_clean_path(path) != path:
            raise TokenInvalid("JWKS URL path contains traversal sequences")
        return url

    def missing(self, kid: str, token_vars: Mapping[str, str]) -> tuple[str, str] | None:
        """(URL, kid) to fetch for a token, or None: cached, or no fetch would be made."""
        if not kid:
            return None
        try:
            url = self.resolve(token_vars)
        except TokenInvalid:
            return None
        return None if self.cache.get(url, kid) is not None else (url, kid)

    def store(self, url: str, body: bytes) -> list[JsonWebKey]:
        """Cache the ``sig`` keys of a document fetched from ``url``; raises
        :class:`JwksError` (nothing cached) for a document that cannot be used."""
        keys = parse_key_set(body)
        for key in keys:
            self.cache.add(url, key)
        return keys

    def verify(self, compact: _Compact, token_vars: Mapping[str, str]) -> None:
        """The signature check with the cached key; :class:`TokenInvalid` on any failure."""
        if not compact.kid:
            raise TokenInvalid("jwks: kid is not provided")
        url = self.resolve(token_vars)
        key = self.cache.get(url, compact.kid)
        if key is None:
            raise TokenInvalid("jwks: public key not found")
        _verify_with(key, compact)


def _verify_with(key: JsonWebKey, compact: _Compact) -> None:
    alg = compact.alg
    if key.kty == "OKP":
        if key.public is None:
            raise TokenInvalid("public key is invalid")
        if alg != "EdDSA":
            raise TokenInvalid("algorithm mismatch")
        from cryptography.exceptions import InvalidSignature

        try:
            key.public.verify(compact.signature, compact.signing_input)
        except InvalidSignature:
            raise TokenInvalid("bad signature") from None
        return
    if key.kty == "RSA":
        family: Mapping[str, int] = dict.fromkeys(_RSA_ALGS, 0)
    elif key.kty == "EC":
        family = _EC_ALGS
    else:
        raise TokenInvalid("unsupported JWT algorithm")
    if key.public is None:
        raise TokenInvalid("public key is invalid")
    wanted = key.alg
    if not wanted:  # "alg" is optional in a JWK: the token's, if of the key's family
        if alg not in family:
            raise TokenInvalid("unsupported JWT algorithm: no match in algorithms")
        wanted = alg
    if wanted not in family:
        raise TokenInvalid(f"unsupported JWT algorithm: {wanted}")
    if key.kty == "EC" and family[wanted] != key.curve_bits:
        raise TokenInvalid(f"unsupported JWT algorithm: {wanted}")
    if alg != wanted:
        raise TokenInvalid("algorithm mismatch")
    if not _algorithms()[wanted].verify(compact.signing_input, key.public, compact.signature):
        raise TokenInvalid("bad signature")


@functools.cache
def _algorithms() -> dict[str, Any]:
    return _asymmetric_algorithms()
