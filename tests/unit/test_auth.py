"""relay.auth: JWT verification rules (spec server-surface §6, reliability §2 C/D5, R4)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from relay.auth import (
    MAX_TOKEN_LENGTH,
    ConnectTokenClaims,
    SubOptions,
    SubscriptionOverride,
    TokenError,
    TokenExpired,
    TokenInvalid,
    TokenVerifier,
    encode_hmac_token,
)
from relay.config import TokenConfig

NOW = 1_700_000_000.0
SECRET = "secret"
HMAC_CONFIG = TokenConfig(hmac_secret_key=SECRET)

RSA_PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = (
    RSA_PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
EC_PRIVATE = ec.generate_private_key(ec.SECP256R1())
EC_PUBLIC_PEM = (
    EC_PRIVATE.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
EC384_PRIVATE = ec.generate_private_key(ec.SECP384R1())
RSA_CONFIG = TokenConfig(rsa_public_key=RSA_PUBLIC_PEM)
EC_CONFIG = TokenConfig(ecdsa_public_key=EC_PUBLIC_PEM)


# --------------------------------------------------------------------------- helpers


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def seg(value: Any) -> str:
    return b64url(json.dumps(value).encode())


def hs(claims: dict[str, Any], secret: str = SECRET, alg: str = "HS256") -> str:
    return encode_hmac_token(claims, secret, alg)


def manual_hmac(header: dict[str, Any], claims: dict[str, Any], key: bytes, digest: Any) -> str:
    signing_input = f"{seg(header)}.{seg(claims)}"
    sig = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(sig)}"


def unsigned(alg: str, claims: dict[str, Any], sig: str = "") -> str:
    return f"{seg({'alg': alg, 'typ': 'JWT'})}.{seg(claims)}.{sig}"


def connect(token: str, config: TokenConfig = HMAC_CONFIG, **kw: Any) -> ConnectTokenClaims:
    return TokenVerifier(config, **kw).verify_connect_token(token, now=NOW)


def good() -> dict[str, Any]:
    return {"sub": "42", "exp": NOW + 3600}


def rs(claims: dict[str, Any], alg: str = "RS256") -> str:
    return jwt.encode(claims, RSA_PRIVATE, algorithm=alg)


def es(claims: dict[str, Any], alg: str = "ES256", key: Any = EC_PRIVATE) -> str:
    return jwt.encode(claims, key, algorithm=alg)


VALID = hs(good())
HEAD, BODY, SIG = VALID.split(".")


# --------------------------------------------------------------------------- valid tokens


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_valid_hmac(alg: str) -> None:
    claims = connect(hs({**good(), "info": {"a": 1}}, alg=alg))
    assert claims.user == "42"
    assert claims.exp == int(NOW + 3600)
    assert claims.info == b'{"a":1}'
    assert claims.expires_at() == int(NOW + 3600)


def test_pyjwt_hmac_token_accepted() -> None:
    long_secret = "k" * 64
    token = jwt.encode(good(), long_secret, algorithm="HS512")
    assert connect(token, TokenConfig(hmac_secret_key=long_secret)).user == "42"


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512"])
def test_valid_rsa(alg: str) -> None:
    assert connect(rs(good(), alg), RSA_CONFIG).user == "42"


def test_valid_ecdsa() -> None:
    assert connect(es(good()), EC_CONFIG).user == "42"


def test_valid_ecdsa_es384() -> None:
    pem = (
        EC384_PRIVATE.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    config = TokenConfig(ecdsa_public_key=pem)
    assert connect(es(good(), "ES384", EC384_PRIVATE), config).user == "42"
    # an ES256 token cannot be verified by a P-384 key
    with pytest.raises(TokenInvalid):
        connect(es(good()), config)


def test_rsa_certificate_pem() -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay")])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(RSA_PRIVATE.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .sign(RSA_PRIVATE, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    assert connect(rs(good()), TokenConfig(rsa_public_key=pem)).user == "42"


def test_all_families_configured() -> None:
    config = TokenConfig(
        hmac_secret_key=SECRET, rsa_public_key=RSA_PUBLIC_PEM, ecdsa_public_key=EC_PUBLIC_PEM
    )
    for token in (hs(good()), rs(good()), es(good())):
        assert connect(token, config).user == "42"


def test_bad_key_config_raises_value_error() -> None:
    with pytest.raises(ValueError):
        TokenVerifier(TokenConfig(rsa_public_key="not a pem"))
    with pytest.raises(ValueError):
        TokenVerifier(TokenConfig(rsa_public_key=EC_PUBLIC_PEM))
    with pytest.raises(ValueError):
        TokenVerifier(TokenConfig(ecdsa_public_key=RSA_PUBLIC_PEM))
    with pytest.raises(ValueError):
        TokenVerifier(TokenConfig(hmac_secret_key="x", issuer_regex="("))


# --------------------------------------------------------------------------- time


def test_expired_and_boundaries() -> None:
    with pytest.raises(TokenExpired):
        connect(hs({"sub": "1", "exp": NOW - 1}))
    with pytest.raises(TokenExpired):
        connect(hs({"sub": "1", "exp": NOW}))  # exp <= now
    assert connect(hs({"sub": "1", "exp": NOW + 0.5})).exp == int(NOW)  # fractional, truncated
    with pytest.raises(TokenExpired):
        connect(hs({"sub": "1", "exp": 0}))


def test_nbf() -> None:
    with pytest.raises(TokenExpired):
        connect(hs({"sub": "1", "nbf": NOW + 60}))
    with pytest.raises(TokenExpired):
        connect(hs({"sub": "1", "nbf": NOW}))  # Centrifugo: valid only when nbf < now
    assert connect(hs({"sub": "1", "nbf": NOW - 0.5})).user == "1"


def test_iat_not_checked_and_no_exp_is_fine() -> None:
    claims = connect(hs({"sub": "1", "iat": NOW + 10_000}))
    assert claims.exp is None and claims.expires_at() is None


def test_default_now_is_wall_clock() -> None:
    verifier = TokenVerifier(HMAC_CONFIG)
    with pytest.raises(TokenExpired):
        verifier.verify_connect_token(hs({"sub": "1", "exp": 1000}))
    assert verifier.verify_connect_token(hs({"sub": "1", "exp": 2**40})).user == "1"


def test_expired_but_malformed_is_invalid() -> None:
    with pytest.raises(TokenInvalid):
        connect(hs({"sub": "1", "exp": NOW - 1}, secret="wrong"))
    with pytest.raises(TokenInvalid):
        connect(hs({"sub": "1", "exp": NOW - 1, "channel": "x"}))


def test_expire_at_semantics() -> None:
    c = connect(hs({**good(), "expire_at": 0}))
    assert c.expire_at == 0 and c.expires_at() is None
    c = connect(hs({**good(), "expire_at": int(NOW + 10)}))
    assert c.expires_at() == int(NOW + 10)
    # expire_at in the past is accepted here: the caller maps it to error 110
    c = connect(hs({**good(), "expire_at": int(NOW - 10)}))
    assert c.expires_at() == int(NOW - 10)
    # exp is still checked when expire_at is 0
    with pytest.raises(TokenExpired):
        connect(hs({"sub": "1", "exp": NOW - 1, "expire_at": 0}))
    with pytest.raises(TokenInvalid):
        connect(hs({**good(), "expire_at": 1.5}))
    with pytest.raises(TokenInvalid):
        connect(hs({**good(), "expire_at": "10"}))


# --------------------------------------------------------------------------- signatures


def test_wrong_secret() -> None:
    with pytest.raises(TokenInvalid, match="bad signature"):
        connect(hs(good(), secret="other"))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none(alg: str) -> None:
    with pytest.raises(TokenInvalid, match="unsupported algorithm"):
        connect(unsigned(alg, good()))
    with pytest.raises(TokenInvalid, match="unsupported algorithm"):
        connect(unsigned(alg, good(), SIG))


def test_asymmetric_tokens_against_hmac_config() -> None:
    with pytest.raises(TokenInvalid, match="disabled algorithm"):
        connect(rs(good()))
    with pytest.raises(TokenInvalid, match="disabled algorithm"):
        connect(es(good()))


def test_hmac_with_rsa_pem_as_secret_against_rsa_config() -> None:
    token = manual_hmac({"alg": "HS256"}, good(), RSA_PUBLIC_PEM.encode(), hashlib.sha256)
    with pytest.raises(TokenInvalid, match="disabled algorithm"):
        connect(token, RSA_CONFIG)


def test_hmac_with_ec_pem_as_secret_against_ec_config() -> None:
    token = manual_hmac({"alg": "HS256"}, good(), EC_PUBLIC_PEM.encode(), hashlib.sha256)
    with pytest.raises(TokenInvalid, match="disabled algorithm"):
        connect(token, EC_CONFIG)


def test_no_key_configured() -> None:
    with pytest.raises(TokenInvalid, match="disabled algorithm"):
        connect(VALID, TokenConfig())


def test_previous_hmac_key() -> None:
    config = TokenConfig(
        hmac_secret_key="new",
        hmac_previous_secret_key="old",
        hmac_previous_secret_key_valid_until=int(NOW + 100),
    )
    old = hs({"sub": "42"}, secret="old")
    assert connect(hs(good(), secret="new"), config).user == "42"
    assert connect(old, config).user == "42"
    assert TokenVerifier(config).verify_connect_token(old, now=NOW + 100).user == "42"
    with pytest.raises(TokenInvalid):
        TokenVerifier(config).verify_connect_token(old, now=NOW + 101)
    with pytest.raises(TokenInvalid):
        connect(hs(good(), secret="other"), config)
    forever = TokenConfig(hmac_secret_key="new", hmac_previous_secret_key="old")
    assert TokenVerifier(forever).verify_connect_token(old, now=NOW * 2).user == "42"


def test_skip_signature_verify() -> None:
    assert connect(hs(good(), secret="other"), skip_signature_verify=True).user == "42"
    assert connect(unsigned("none", good()), TokenConfig(), skip_signature_verify=True).user == "42"
    with pytest.raises(TokenExpired):
        connect(hs({"exp": NOW - 1}, secret="x"), skip_signature_verify=True)
    with pytest.raises(TokenInvalid):
        connect("a.b", skip_signature_verify=True)
    with pytest.raises(TokenInvalid):
        connect(f"{HEAD}.!!!.{SIG}", skip_signature_verify=True)


def test_jwks_replaces_static_keys() -> None:
    """With jwks_public_endpoint the HMAC key is ignored (token_verifier_jwt.go): a token
    without a cached JWKS key is invalid; more in tests/unit/test_auth_jwks.py."""
    config = TokenConfig(hmac_secret_key=SECRET, jwks_public_endpoint="https://x/jwks")
    verifier = TokenVerifier(config)
    assert verifier.jwks is not None and verifier.fetches_jwks
    assert TokenVerifier(HMAC_CONFIG).jwks is None
    with pytest.raises(TokenInvalid):
        verifier.verify_connect_token(VALID, now=NOW)


def test_encode_hmac_token_rejects_other_algorithms() -> None:
    with pytest.raises(ValueError):
        encode_hmac_token({}, SECRET, "RS256")


# --------------------------------------------------------------------------- claims


def test_sub_missing_or_empty_is_anonymous() -> None:
    assert connect(hs({"exp": NOW + 10})).user == ""
    assert connect(hs({"sub": ""})).user == ""
    assert connect(hs({"sub": None})).user == ""


def test_channel_claim_in_connection_token() -> None:
    with pytest.raises(TokenInvalid, match="channel"):
        connect(hs({**good(), "channel": "news"}))
    assert connect(hs({**good(), "channel": ""})).user == "42"


@pytest.mark.parametrize(
    ("config", "claims", "ok"),
    [
        (TokenConfig(hmac_secret_key=SECRET, audience="a"), {"aud": "a"}, True),
        (TokenConfig(hmac_secret_key=SECRET, audience="a"), {"aud": ["x", "a"]}, True),
        (TokenConfig(hmac_secret_key=SECRET, audience="a"), {"aud": "b"}, False),
        (TokenConfig(hmac_secret_key=SECRET, audience="a"), {"aud": []}, False),
        (TokenConfig(hmac_secret_key=SECRET, audience="a"), {}, False),
        (TokenConfig(hmac_secret_key=SECRET, audience="a"), {"aud": 5}, False),
        (
            TokenConfig(hmac_secret_key=SECRET, audience_regex="^app-[0-9]+$"),
            {"aud": "app-1"},
            True,
        ),
        (
            TokenConfig(hmac_secret_key=SECRET, audience_regex="^app-"),
            {"aud": ["x", "app-2"]},
            True,
        ),
        (TokenConfig(hmac_secret_key=SECRET, audience_regex="^app-"), {"aud": "web"}, False),
        (TokenConfig(hmac_secret_key=SECRET, audience_regex="^app-"), {}, False),
        (TokenConfig(hmac_secret_key=SECRET, issuer="me"), {"iss": "me"}, True),
        (TokenConfig(hmac_secret_key=SECRET, issuer="me"), {"iss": "mE"}, False),
        (TokenConfig(hmac_secret_key=SECRET, issuer="me"), {}, False),
        (TokenConfig(hmac_secret_key=SECRET, issuer="me"), {"iss": ["me"]}, False),
        (
            TokenConfig(hmac_secret_key=SECRET, issuer_regex=r"^https://.*\.example$"),
            {"iss": "https://a.example"},
            True,
        ),
        (TokenConfig(hmac_secret_key=SECRET, issuer_regex="example"), {"iss": "x.example.y"}, True),
        (TokenConfig(hmac_secret_key=SECRET, issuer_regex="^example$"), {"iss": "other"}, False),
        (HMAC_CONFIG, {"aud": "anything", "iss": "anyone"}, True),
    ],
)
def test_audience_and_issuer(config: TokenConfig, claims: dict[str, Any], ok: bool) -> None:
    token = hs({**good(), **claims})
    if ok:
        assert connect(token, config).user == "42"
    else:
        with pytest.raises(TokenInvalid):
            connect(token, config)


def test_user_id_claim() -> None:
    config = TokenConfig(hmac_secret_key=SECRET, user_id_claim="user_id")
    assert connect(hs({"sub": "x", "user_id": "7"}), config).user == "7"
    assert connect(hs({"user_id": 7}), config).user == "7"
    assert connect(hs({"user_id": 7.0}), config).user == "7"
    assert connect(hs({"sub": "x"}), config).user == ""
    for bad in (True, [1], {"a": 1}, 1.5):
        with pytest.raises(TokenInvalid):
            connect(hs({"user_id": bad}), config)


def test_info_and_b64info() -> None:
    assert (
        connect(hs({"info": {"name": "é", "n": [1, 2]}})).info == '{"name":"é","n":[1,2]}'.encode()
    )
    assert connect(hs({"info": "text"})).info == b'"text"'
    raw = base64.b64encode(b"\x00\xffbin").decode()
    assert connect(hs({"info": {"a": 1}, "b64info": raw})).info == b"\x00\xffbin"
    assert connect(hs({"info": {"a": 1}, "b64info": ""})).info == b'{"a":1}'
    assert connect(hs({})).info is None
    with pytest.raises(TokenInvalid):
        connect(hs({"b64info": "***"}))
    with pytest.raises(TokenInvalid):
        connect(hs({"b64info": 5}))


def test_channels_subs_meta() -> None:
    claims = connect(
        hs(
            {
                "sub": "1",
                "channels": ["a", "b:c"],
                "meta": {"plan": "pro"},
                "subs": {
                    "x": {
                        "info": {"i": 1},
                        "b64data": base64.b64encode(b"d").decode(),
                        "override": {
                            "presence": {"value": True},
                            "join_leave": {"value": False},
                            "force_recovery": {},
                        },
                    },
                    "y": {},
                    "z": None,
                },
            }
        )
    )
    assert claims.channels == ("a", "b:c")
    assert claims.meta == b'{"plan":"pro"}'
    assert claims.subs["x"] == SubOptions(
        info=b'{"i":1}',
        data=b"d",
        override=SubscriptionOverride(presence=True, join_leave=False, force_recovery=False),
    )
    assert claims.subs["y"] == SubOptions() == claims.subs["z"]
    assert connect(hs({})).subs == {} and connect(hs({})).channels == ()


@pytest.mark.parametrize(
    "claims",
    [
        {"channels": "a"},
        {"channels": [1]},
        {"channels": {"a": 1}},
        {"subs": []},
        {"subs": "x"},
        {"subs": {"x": 1}},
        {"subs": {"x": {"override": 1}}},
        {"subs": {"x": {"override": {"presence": True}}}},
        {"subs": {"x": {"override": {"presence": {"value": "yes"}}}}},
        {"subs": {"x": {"b64data": "%%"}}},
    ],
)
def test_bad_channels_and_subs(claims: dict[str, Any]) -> None:
    with pytest.raises(TokenInvalid):
        connect(hs(claims))


def test_subscription_token() -> None:
    verifier = TokenVerifier(HMAC_CONFIG)
    token = hs(
        {
            "sub": "42",
            "channel": "$news",
            "client": "cid",
            "exp": NOW + 10,
            "expire_at": 0,
            "info": {"x": 1},
            "b64data": base64.b64encode(b"hello").decode(),
            "override": {"force_positioning": {"value": True}},
        }
    )
    claims = verifier.verify_subscribe_token(token, now=NOW)
    assert claims.user == "42" and claims.channel == "$news" and claims.client == "cid"
    assert claims.info == b'{"x":1}' and claims.data == b"hello"
    assert claims.override == SubscriptionOverride(force_positioning=True)
    assert claims.expires_at() is None
    plain = verifier.verify_subscribe_token(hs({"channel": "c", "exp": NOW + 5}), now=NOW)
    assert plain.client == "" and plain.user == "" and plain.expires_at() == int(NOW + 5)
    assert plain.data is None and plain.override is None


def test_subscription_token_failures() -> None:
    verifier = TokenVerifier(HMAC_CONFIG)
    with pytest.raises(TokenInvalid, match="without channel"):
        verifier.verify_subscribe_token(hs({"sub": "1"}), now=NOW)
    with pytest.raises(TokenInvalid):
        verifier.verify_subscribe_token(hs({"channel": 5}), now=NOW)
    with pytest.raises(TokenInvalid):
        verifier.verify_subscribe_token(hs({"channel": "c", "client": 5}), now=NOW)
    with pytest.raises(TokenExpired):
        verifier.verify_subscribe_token(hs({"channel": "c", "exp": NOW - 1}), now=NOW)
    with pytest.raises(TokenInvalid):
        verifier.verify_subscribe_token(hs({"channel": "c"}, secret="x"), now=NOW)
    with pytest.raises(TokenInvalid):
        verifier.verify_subscribe_token(unsigned("none", {"channel": "c"}), now=NOW)
    # a connection token (no channel) is not a subscription token, and vice versa
    with pytest.raises(TokenInvalid):
        verifier.verify_subscribe_token(VALID, now=NOW)
    with pytest.raises(TokenInvalid):
        verifier.verify_connect_token(hs({"channel": "c"}), now=NOW)


def test_token_errors_carry_reason() -> None:
    with pytest.raises(TokenError) as info:
        connect("x")
    assert info.value.reason and str(info.value) == info.value.reason


# --------------------------------------------------------------------------- forged corpus


def _replace_claims(claims_segment: str) -> str:
    return f"{HEAD}.{claims_segment}.{SIG}"


def _hmac_raw(header: str, payload: str) -> str:
    sig = hmac.new(SECRET.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(sig)}"


def _raw_claims(text: str) -> str:
    """A correctly signed token whose claims segment is ``text`` verbatim."""
    return _hmac_raw(seg({"alg": "HS256"}), b64url(text.encode()))


def _raw_header(text: str) -> str:
    return _hmac_raw(b64url(text.encode()), seg(good()))


FORGED: list[tuple[str, Callable[[], str], type[TokenError]]] = [
    # C5: alg none and friends
    *[
        (f"alg-{alg}", lambda alg=alg: unsigned(alg, good()), TokenInvalid)
        for alg in ("none", "None", "NONE", "nOnE", "", "hs256", "Hs256", "HS256 ")
    ],
    *[
        (f"alg-{alg}-with-sig", lambda alg=alg: unsigned(alg, good(), SIG), TokenInvalid)
        for alg in ("none", "PS256", "EdDSA", "ES256K", "HS1", "RSA-OAEP")
    ],
    ("alg-missing", lambda: _hmac_raw(seg({"typ": "JWT"}), seg(good())), TokenInvalid),
    ("alg-number", lambda: _hmac_raw(seg({"alg": 256}), seg(good())), TokenInvalid),
    ("alg-null", lambda: _hmac_raw(seg({"alg": None}), seg(good())), TokenInvalid),
    ("alg-list", lambda: _hmac_raw(seg({"alg": ["HS256"]}), seg(good())), TokenInvalid),
    ("header-array", lambda: _raw_header('["HS256"]'), TokenInvalid),
    ("header-not-json", lambda: _raw_header("{alg:HS256}"), TokenInvalid),
    ("header-empty", lambda: _hmac_raw("", seg(good())), TokenInvalid),
    # signature tampering
    ("empty-signature", lambda: f"{HEAD}.{BODY}.", TokenInvalid),
    ("truncated-signature", lambda: f"{HEAD}.{BODY}.{SIG[:-4]}", TokenInvalid),
    ("one-char-signature", lambda: f"{HEAD}.{BODY}.A", TokenInvalid),
    ("flipped-signature", lambda: f"{HEAD}.{BODY}.{SIG[::-1]}", TokenInvalid),
    ("padded-signature", lambda: f"{HEAD}.{BODY}.{SIG}=", TokenInvalid),
    (
        "std-b64-signature",
        lambda: f"{HEAD}.{BODY}.{SIG.replace('-', '+').replace('_', '/')}+",
        TokenInvalid,
    ),
    ("extended-signature", lambda: f"{HEAD}.{BODY}.{SIG}AAAA", TokenInvalid),
    ("wrong-secret", lambda: hs(good(), secret="secreT"), TokenInvalid),
    (
        "empty-secret",
        lambda: manual_hmac({"alg": "HS256"}, good(), b"", hashlib.sha256),
        TokenInvalid,
    ),
    (
        "hs384-signed-as-hs256",
        lambda: manual_hmac({"alg": "HS256"}, good(), SECRET.encode(), hashlib.sha384),
        TokenInvalid,
    ),
    (
        "claims-swapped",
        lambda: _replace_claims(seg({"sub": "admin", "exp": NOW + 3600})),
        TokenInvalid,
    ),
    ("header-swapped-to-hs512", lambda: f"{seg({'alg': 'HS512'})}.{BODY}.{SIG}", TokenInvalid),
    ("rs256-vs-hmac", lambda: rs(good()), TokenInvalid),
    ("es256-vs-hmac", lambda: es(good()), TokenInvalid),
    (
        "rs256-header-hmac-sig",
        lambda: manual_hmac({"alg": "RS256"}, good(), SECRET.encode(), hashlib.sha256),
        TokenInvalid,
    ),
    # structure
    ("empty", lambda: "", TokenInvalid),
    ("one-segment", lambda: HEAD, TokenInvalid),
    ("two-segments", lambda: f"{HEAD}.{BODY}", TokenInvalid),
    ("four-segments", lambda: f"{VALID}.{SIG}", TokenInvalid),
    ("dots-only", lambda: "..", TokenInvalid),
    ("bad-b64-header", lambda: f"!!.{BODY}.{SIG}", TokenInvalid),
    ("bad-b64-claims", lambda: f"{HEAD}.$$$.{SIG}", TokenInvalid),
    ("b64-len-mod4-1", lambda: f"{HEAD}.{BODY}A.{SIG}", TokenInvalid),
    ("padded-claims", lambda: f"{HEAD}.{BODY}==.{SIG}", TokenInvalid),
    ("whitespace", lambda: f" {VALID}", TokenInvalid),
    ("non-ascii", lambda: f"{HEAD}.{BODY}é.{SIG}", TokenInvalid),
    ("huge-100kb", lambda: hs({"sub": "1", "pad": "x" * 100_000}), TokenInvalid),
    ("just-over-limit", lambda: "a" * (MAX_TOKEN_LENGTH + 1), TokenInvalid),
    # claims content
    ("claims-not-json", lambda: _raw_claims("not json"), TokenInvalid),
    ("claims-array", lambda: _raw_claims("[1,2]"), TokenInvalid),
    ("claims-string", lambda: _raw_claims('"sub"'), TokenInvalid),
    ("claims-null", lambda: _raw_claims("null"), TokenInvalid),
    ("claims-truncated", lambda: _raw_claims('{"sub":"1"'), TokenInvalid),
    (
        "claims-latin1",
        lambda: _hmac_raw(seg({"alg": "HS256"}), b64url(b'{"sub":"\xe9"}')),
        TokenInvalid,
    ),
    ("claims-nan", lambda: _raw_claims('{"exp":NaN}'), TokenInvalid),
    ("claims-infinity", lambda: _raw_claims('{"exp":Infinity}'), TokenInvalid),
    ("claims-exp-overflow", lambda: _raw_claims('{"exp":1e400}'), TokenInvalid),
    ("claims-exp-bigint", lambda: _raw_claims('{"exp":' + "9" * 400 + "}"), TokenInvalid),
    (
        "claims-deep-nesting",
        lambda: _raw_claims('{"info":' + "[" * 5000 + "]" * 5000 + "}"),
        TokenInvalid,
    ),
    ("claims-lone-surrogate", lambda: _raw_claims('{"sub":"\\ud800"}'), TokenInvalid),
    ("exp-abc", lambda: hs({"sub": "1", "exp": "abc"}), TokenInvalid),
    ("exp-numeric-string", lambda: hs({"sub": "1", "exp": str(int(NOW + 10))}), TokenInvalid),
    ("exp-bool", lambda: hs({"sub": "1", "exp": True}), TokenInvalid),
    ("exp-list", lambda: hs({"sub": "1", "exp": [NOW + 10]}), TokenInvalid),
    ("nbf-string", lambda: hs({"sub": "1", "nbf": "0"}), TokenInvalid),
    ("sub-number", lambda: hs({"sub": 42}), TokenInvalid),
    ("sub-object", lambda: hs({"sub": {"id": "42"}}), TokenInvalid),
    ("iss-number", lambda: hs({"iss": 1}), TokenInvalid),
    ("aud-object", lambda: hs({"aud": {"a": 1}}), TokenInvalid),
    ("aud-mixed-list", lambda: hs({"aud": ["a", 1]}), TokenInvalid),
    ("channel-claim", lambda: hs({**good(), "channel": "news"}), TokenInvalid),
    ("channel-number", lambda: hs({**good(), "channel": 1}), TokenInvalid),
    ("info-b64-bad", lambda: hs({"b64info": "not base64!"}), TokenInvalid),
    ("meta-ok-but-expired", lambda: hs({"meta": {}, "exp": NOW - 1}), TokenExpired),
    # time
    ("expired", lambda: hs({"sub": "1", "exp": NOW - 1}), TokenExpired),
    ("expired-now", lambda: hs({"sub": "1", "exp": NOW}), TokenExpired),
    ("expired-fractional", lambda: hs({"sub": "1", "exp": NOW - 0.001}), TokenExpired),
    ("expired-hs512", lambda: hs({"sub": "1", "exp": NOW - 1}, alg="HS512"), TokenExpired),
    ("nbf-future", lambda: hs({"sub": "1", "nbf": NOW + 1}), TokenExpired),
    # beyond int64 seconds, Go's conversion gives the smallest int64: long expired (109)
    ("exp-1e30", lambda: hs({"sub": "1", "exp": 1e30}), TokenExpired),
    ("exp-2-pow-63", lambda: hs({"sub": "1", "exp": 2**63}), TokenExpired),
    ("nbf-future-fractional", lambda: hs({"sub": "1", "nbf": NOW + 0.001}), TokenExpired),
    ("expired-wrong-secret", lambda: hs({"exp": NOW - 1}, secret="x"), TokenInvalid),
    ("expired-alg-none", lambda: unsigned("none", {"exp": NOW - 1}), TokenInvalid),
]


def test_forged_corpus_is_large_and_unique() -> None:
    names = [name for name, _, _ in FORGED]
    assert len(names) >= 60
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(("name", "build", "expected"), FORGED, ids=[f[0] for f in FORGED])
def test_forged_connection_token(
    name: str, build: Callable[[], str], expected: type[TokenError]
) -> None:
    with pytest.raises(expected):
        connect(build())


@pytest.mark.parametrize(("name", "build", "expected"), FORGED, ids=[f[0] for f in FORGED])
def test_forged_tokens_never_leak_other_exceptions_on_subscribe(
    name: str, build: Callable[[], str], expected: type[TokenError]
) -> None:
    verifier = TokenVerifier(HMAC_CONFIG)
    token = build()
    try:
        claims = verifier.verify_subscribe_token(token, now=NOW)
    except TokenError:
        return
    assert name == "channel-claim" and claims.channel == "news"


def test_non_string_token_is_invalid() -> None:
    with pytest.raises(TokenInvalid):
        TokenVerifier(HMAC_CONFIG).verify_connect_token(None, now=NOW)  # type: ignore[arg-type]


_HMAC_ONLY_SCRIPT = """
import sys
from relay.auth import TokenVerifier, encode_hmac_token
from relay.config import TokenConfig
verifier = TokenVerifier(TokenConfig(hmac_secret_key="k", hmac_previous_secret_key="p"))
for alg in ("HS256", "HS384", "HS512"):
    token = encode_hmac_token({"sub": "u"}, "k", alg)
    assert verifier.verify_connect_token(token, now=0).user == "u"
heavy = {"cryptography", "jwt", "_cffi_backend"}
loaded = sorted({name.split(".")[0] for name in sys.modules} & heavy)
assert not loaded, loaded
"""


def test_hmac_only_verifier_never_imports_cryptography_or_pyjwt() -> None:
    """Memory: an HMAC-only worker must not load cryptography's Rust bindings nor PyJWT."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", _HMAC_ONLY_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
