"""relay.auth.jwks and relay.config.jwks: key sets, cache, URL rules (no network).

Expected values come from Centrifugo v6.9.1's ``internal/jwks`` and
``internal/jwtverify`` and from runs of the centrifugo 6.9.1 binary against a JWKS
server (see tests/integration/test_jwks.py for the end-to-end behaviour).
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import replace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from relay.auth import JwksError, TokenExpired, TokenInvalid, TokenVerifier
from relay.auth.jwks import KeyCache, parse_key_set
from relay.config import ClientConfig, Config, SubscriptionTokenConfig, TokenConfig, validate
from relay.config.jwks import (
    EndpointTemplate,
    endpoint_safety_error,
    go_clean_path,
    go_url_path,
)
from relay.errors import ConfigError

NOW = 1_700_000_000.0
URL = "https://auth.example/jwks"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
EC384_KEY = ec.generate_private_key(ec.SECP384R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
HMAC_SECRET = "s" * 32


def b64(value: int | bytes, size: int = 0) -> str:
    if isinstance(value, int):
        value = value.to_bytes(size or (value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def rsa_jwk(kid: str, key: rsa.RSAPrivateKey = RSA_KEY, **extra: Any) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256"}
    jwk |= {"n": b64(numbers.n), "e": b64(numbers.e)}
    return {k: v for k, v in (jwk | extra).items() if v is not None}


def ec_jwk(kid: str, key: ec.EllipticCurvePrivateKey = EC_KEY, **extra: Any) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    crv = {256: "P-256", 384: "P-384", 521: "P-521"}[key.curve.key_size]
    jwk = {"kty": "EC", "kid": kid, "use": "sig", "crv": crv}
    jwk |= {"x": b64(numbers.x, size), "y": b64(numbers.y, size)}
    return {k: v for k, v in (jwk | extra).items() if v is not None}


def ed_jwk(kid: str, **extra: Any) -> dict[str, Any]:
    raw = ED_KEY.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    jwk = {"kty": "OKP", "kid": kid, "use": "sig", "crv": "Ed25519", "x": b64(raw)}
    return {k: v for k, v in (jwk | extra).items() if v is not None}


def doc(*keys: Any) -> bytes:
    return json.dumps({"keys": list(keys)}).encode()


def sign(key: Any, alg: str, kid: str | None, **claims: Any) -> str:
    body: dict[str, Any] = {"sub": "42", "exp": NOW + 600} | claims
    headers = {} if kid is None else {"kid": kid}
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def verifier(**config: Any) -> TokenVerifier:
    return TokenVerifier(TokenConfig(jwks_public_endpoint=URL, **config))


def loaded(*keys: Any, **config: Any) -> TokenVerifier:
    v = verifier(**config)
    v.store_jwks(URL, doc(*keys))
    return v


# --------------------------------------------------------------------------- key sets


def test_parse_keeps_only_sig_keys_in_order() -> None:
    keys = parse_key_set(
        doc(
            rsa_jwk("r"),
            ec_jwk("e"),
            ed_jwk("d"),
            rsa_jwk("nouse", use=None),
            rsa_jwk("enc", use="enc"),
        )
    )
    assert [(k.kid, k.kty) for k in keys] == [("r", "RSA"), ("e", "EC"), ("d", "OKP")]
    assert all(k.public is not None for k in keys)
    assert keys[1].curve_bits == 256


def test_parse_matches_field_names_case_insensitively_like_go() -> None:
    jwk = {k.upper(): v for k, v in rsa_jwk("up").items()}
    jwk["Use"] = jwk.pop("USE")
    (key,) = parse_key_set(json.dumps({"KEYS": [jwk]}).encode())
    assert key.kid == "up" and key.public is not None


@pytest.mark.parametrize(
    "body",
    [
        b"garbage",
        b"[]",
        b'{"keys": null}',
        b'{"keys": []}',
        b'{"keys": {}}',
        b"null",
        b'{"keys": [null]}',
        b'{"keys": [5]}',
        b'{"keys": [{"kty": "RSA", "n": NaN, "e": "AQAB"}]}',
        doc(rsa_jwk("a"), {"kty": "foo", "kid": "b", "use": "enc"}),  # a bad non-sig key too
        doc(rsa_jwk("a", exp=1.5)),
        doc(rsa_jwk("a", exp=True)),
        doc(rsa_jwk("a", e="AQAB==")),  # padding is not base64url "raw"
        doc(rsa_jwk("a", n="not base64!")),
        doc(rsa_jwk("a") | {"kid": 5}),
        doc(rsa_jwk("a", e=None)),
        doc(rsa_jwk("a", e="AA")),  # exponent 0
        doc(rsa_jwk("a", e=b64(2**31))),  # exponent too big
        doc(ec_jwk("a", crv="P-192")),
        doc(ec_jwk("a", crv=None)),
        doc(ec_jwk("a", x=b64(1, 31))),  # wrong coordinate size
        doc(ec_jwk("a", y=b64(1, 32))),  # not on the curve
        doc(ec_jwk("a", d=b64(12345, 32))),  # d does not match x/y
        doc(ed_jwk("a", x=b64(b"\x01" * 31))),
        doc(ed_jwk("a", crv="X9")),
        doc({"kty": "oct", "kid": "a", "use": "sig"}),
        doc({"kty": "rsa", "kid": "a", "use": "sig"}),  # kty is case-sensitive
    ],
)
def test_unusable_documents_cache_nothing(body: bytes) -> None:
    with pytest.raises(JwksError):
        parse_key_set(body)
    v = verifier()
    with pytest.raises(JwksError):
        v.store_jwks(URL, body)
    assert v.jwks is not None and len(v.jwks.cache) == 0


def test_go_json_details() -> None:
    # null keeps a string field; CR/LF inside base64 are skipped; an int64 exp is fine
    jwk = rsa_jwk("a", exp=5)
    jwk["n"] = jwk["n"][:10] + "\r\n" + jwk["n"][10:]
    text = '{"keys": [' + json.dumps(jwk)[:-1] + ', "kid": null}]}'
    (key,) = parse_key_set(text.encode())
    assert key.kid == "a" and key.public is not None


def test_private_and_small_keys_load_but_never_verify() -> None:
    private = RSA_KEY.private_numbers()
    small_n = (2**511 + 1) * 3  # a 513-bit modulus: Go 1.26 refuses RSA under 1024 bits
    keys = parse_key_set(
        doc(
            rsa_jwk("priv", d=b64(private.d), p=b64(private.p), q=b64(private.q)),
            {"kty": "RSA", "kid": "small", "use": "sig", "n": b64(small_n), "e": "AQAB"},
            ec_jwk("ecpriv", d=b64(EC_KEY.private_numbers().private_value, 32)),
            {"kty": "OKP", "kid": "x", "use": "sig", "crv": "X25519", "x": b64(b"\x09" * 32)},
            {"kty": "oct", "kid": "o", "use": "sig", "k": "c2VjcmV0"},
        )
    )
    assert [k.kid for k in keys] == ["priv", "small", "ecpriv", "x", "o"]
    assert all(k.public is None for k in keys)


# --------------------------------------------------------------------------- cache


def test_cache_expires_an_hour_after_last_use() -> None:
    clock = [0.0]
    cache = KeyCache(clock=lambda: clock[0])
    (key,) = parse_key_set(doc(rsa_jwk("a")))
    cache.add(URL, key)
    clock[0] = 3000.0
    assert cache.get(URL, "a") is key  # renews: expires at 6600 now
    clock[0] = 6000.0
    assert cache.get(URL, "a") is key
    assert cache.get("https://other/jwks", "a") is None  # scoped by URL
    clock[0] = 9601.0
    assert cache.get(URL, "a") is None
    assert len(cache) == 0


# --------------------------------------------------------------------------- verification


def test_request_then_verify_rsa_ec_ed25519() -> None:
    v = verifier(hmac_secret_key=HMAC_SECRET)
    tokens = {
        "r1": sign(RSA_KEY, "RS256", "r1"),
        "e1": sign(EC_KEY, "ES256", "e1"),
        "d1": sign(ED_KEY, "EdDSA", "d1"),
    }
    assert v.jwks_key_request(tokens["r1"]) == (URL, "r1")
    with pytest.raises(TokenInvalid, match="not found"):
        v.verify_connect_token(tokens["r1"], now=NOW)
    assert v.store_jwks(URL, doc(rsa_jwk("r1"), ec_jwk("e1"), ed_jwk("d1"))) == 3
    for token in tokens.values():
        assert v.jwks_key_request(token) is None
        assert v.verify_connect_token(token, now=NOW).user == "42"
    sub = sign(EC_KEY, "ES256", "e1", channel="news")
    assert v.verify_subscribe_token(sub, now=NOW).channel == "news"
    with pytest.raises(TokenInvalid):  # the HMAC key is not used with JWKS
        v.verify_connect_token(sign(HMAC_SECRET, "HS256", "r1"), now=NOW)


@pytest.mark.parametrize(
    ("jwk", "token", "ok"),
    [
        (rsa_jwk("k"), sign(RSA_KEY, "RS256", "k"), True),
        (rsa_jwk("k"), sign(RSA_KEY, "RS384", "k"), False),  # key alg RS256 is binding
        (rsa_jwk("k", alg=None), sign(RSA_KEY, "RS384", "k"), True),
        (rsa_jwk("k", alg=None), sign(RSA_KEY, "RS512", "k"), True),
        (rsa_jwk("k", alg=None), sign(RSA_KEY, "PS256", "k"), False),
        (rsa_jwk("k", alg="PS256"), sign(RSA_KEY, "PS256", "k"), False),
        (rsa_jwk("k", alg="ES256"), sign(EC_KEY, "ES256", "k"), False),
        (rsa_jwk("k", key=RSA_OTHER), sign(RSA_KEY, "RS256", "k"), False),
        (ec_jwk("k"), sign(EC_KEY, "ES256", "k"), True),
        (ec_jwk("k", alg="ES256"), sign(EC_KEY, "ES256", "k"), True),
        (ec_jwk("k", alg="ES384"), sign(EC_KEY, "ES256", "k"), False),  # curve is P-256
        (ec_jwk("k", key=EC384_KEY), sign(EC384_KEY, "ES384", "k"), True),
        (ec_jwk("k"), sign(RSA_KEY, "RS256", "k"), False),
        (ed_jwk("k"), sign(ED_KEY, "EdDSA", "k"), True),
        (ed_jwk("k", alg="RS256"), sign(ED_KEY, "EdDSA", "k"), True),  # alg ignored for OKP
        (
            {"kty": "oct", "kid": "k", "use": "sig", "k": b64(HMAC_SECRET.encode())},
            sign(HMAC_SECRET, "HS256", "k"),
            False,
        ),
    ],
)
def test_algorithm_rules(jwk: dict[str, Any], token: str, ok: bool) -> None:
    v = loaded(jwk)
    if ok:
        assert v.verify_connect_token(token, now=NOW).user == "42"
    else:
        with pytest.raises(TokenInvalid):
            v.verify_connect_token(token, now=NOW)


def test_failures_before_the_key() -> None:
    v = loaded(rsa_jwk("r1"))
    no_kid = sign(RSA_KEY, "RS256", None)
    assert v.jwks_key_request(no_kid) is None  # no fetch for a token without kid
    with pytest.raises(TokenInvalid, match="kid"):
        v.verify_connect_token(no_kid, now=NOW)
    good = sign(RSA_KEY, "RS256", "r1")
    head, claims, sig = good.split(".")
    tampered = f"{head}.{b64(json.dumps({'sub': 'admin'}).encode())}.{sig}"
    with pytest.raises(TokenInvalid):
        v.verify_connect_token(tampered, now=NOW)
    assert v.jwks_key_request("not a token") is None
    with pytest.raises(TokenExpired):
        v.verify_connect_token(sign(RSA_KEY, "RS256", "r1", exp=NOW - 1), now=NOW)
    bad_kid = _with_header(good, {"alg": "RS256", "kid": 7})
    assert v.jwks_key_request(bad_kid) is None
    with pytest.raises(TokenInvalid, match="kid"):
        v.verify_connect_token(bad_kid, now=NOW)


def _with_header(token: str, header: dict[str, Any]) -> str:
    _, claims, sig = token.split(".")
    return f"{b64(json.dumps(header).encode())}.{claims}.{sig}"


def test_skip_signature_verify_fetches_nothing() -> None:
    v = TokenVerifier(TokenConfig(jwks_public_endpoint=URL), skip_signature_verify=True)
    token = sign(RSA_KEY, "RS256", "r1")
    assert not v.fetches_jwks and v.jwks_key_request(token) is None
    assert v.verify_connect_token(token, now=NOW).user == "42"


# --------------------------------------------------------------------------- templates


TENANT_URL = "https://auth.example/{{tenant}}/jwks"


def test_templated_endpoint_scopes_keys_by_tenant() -> None:
    """TestJWKSCacheKeyIsScopedToTemplatedEndpoint of Centrifugo, as a pure test."""
    v = TokenVerifier(
        TokenConfig(jwks_public_endpoint=TENANT_URL, issuer_regex="^(?P<tenant>a|b)$")
    )
    token_a = sign(RSA_KEY, "RS256", "shared", iss="a")
    forged_b = sign(RSA_KEY, "RS256", "shared", iss="b")
    assert v.jwks_key_request(token_a) == ("https://auth.example/a/jwks", "shared")
    v.store_jwks("https://auth.example/a/jwks", doc(rsa_jwk("shared")))
    assert v.verify_connect_token(token_a, now=NOW).user == "42"
    assert v.jwks_key_request(forged_b) == ("https://auth.example/b/jwks", "shared")
    v.store_jwks("https://auth.example/b/jwks", doc(rsa_jwk("shared", key=RSA_OTHER)))
    with pytest.raises(TokenInvalid):
        v.verify_connect_token(forged_b, now=NOW)
    assert v.jwks_key_request(sign(RSA_KEY, "RS256", "shared", iss="c")) is None


def test_audience_groups_fill_the_template() -> None:
    v = TokenVerifier(
        TokenConfig(
            jwks_public_endpoint="https://auth.example/{{realm}}/{{tenant}}",
            issuer_regex="^(?P<tenant>t1|t2)$",
            audience_regex="^(?P<realm>x|y)$",
        )
    )
    token = sign(RSA_KEY, "RS256", "k", iss="t2", aud=["nope", "y", "x"])
    assert v.jwks_key_request(token) == ("https://auth.example/y/t2", "k")


def test_traversal_in_resolved_url_is_refused() -> None:
    v = TokenVerifier(
        TokenConfig(
            jwks_public_endpoint=TENANT_URL,
            issuer_regex="^(?P<tenant>.*)$",
            insecure_skip_jwks_endpoint_safety_check=True,
        )
    )
    for issuer in ("..", "../x", "", "a/./b", "a//b", "%2e%2e"):
        token = sign(RSA_KEY, "RS256", "k", iss=issuer)
        assert v.jwks_key_request(token) is None, issuer
        with pytest.raises(TokenInvalid):
            v.verify_connect_token(token, now=NOW)
    assert v.jwks_key_request(sign(RSA_KEY, "RS256", "k", iss="ok")) == (
        "https://auth.example/ok/jwks",
        "k",
    )


def test_trailing_slash_endpoint_never_verifies() -> None:
    """path.Clean drops the slash, so Centrifugo refuses every token (binary run)."""
    v = TokenVerifier(TokenConfig(jwks_public_endpoint="https://auth.example/jwks/"))
    assert v.jwks_key_request(sign(RSA_KEY, "RS256", "k")) is None


def test_unsafe_template_needs_the_escape_hatch(caplog: pytest.LogCaptureFixture) -> None:
    config = TokenConfig(jwks_public_endpoint=TENANT_URL, issuer_regex="^(?P<tenant>.+)$")
    with pytest.raises(ValueError, match="explicit list"):
        TokenVerifier(config)
    with caplog.at_level(logging.WARNING, logger="relay.auth"):
        TokenVerifier(replace(config, insecure_skip_jwks_endpoint_safety_check=True))
    assert "INSECURE" in caplog.text


@pytest.mark.parametrize(
    ("regex", "safe"),
    [
        ("^(?P<tenant>a|b)$", True),
        ("^(?P<tenant>test1|test2|c(?:d|e))$", True),
        ("(?i)^(?P<tenant>acme|globex)$", True),
        ("^(?P<other>.*)-(?P<tenant>a|b)$", True),  # only groups used in the URL count
        ("^(?P<tenant>.+)$", False),
        ("^(?P<tenant>a*)$", False),
        ("^(?P<tenant>a{2})$", False),
        ("^(?P<tenant>[ab])$", False),
        (r"^(?P<tenant>\w+)$", False),
        (r"^(?P<tenant>\d)$", False),
        ("^(?P<tenant>^a)$", False),
    ],
)
def test_safety_rule(regex: str, safe: bool) -> None:
    assert (endpoint_safety_error(TENANT_URL, regex, "") is None) is safe
    assert (endpoint_safety_error(TENANT_URL, "", regex) is None) is safe
    assert endpoint_safety_error(URL, regex, "") is None  # no placeholder: no rule


def test_template_parsing() -> None:
    template = EndpointTemplate.parse("https://h/{{a}}/x/{{b}}")
    assert template.tags == ("a", "b")
    assert template.execute({"a": "1"}) == "https://h/1/x/"
    with pytest.raises(ValueError):
        EndpointTemplate.parse("https://h/{{a/x")


# --------------------------------------------------------------------------- Go URL rules


@pytest.mark.parametrize(
    ("url", "result"),
    [
        ("http://127.0.0.1:8000/jwks", ("http", b"/jwks")),
        ("HTTPS://h/jwks?x=1#f", ("https", b"/jwks")),
        ("http://u:p@h/a/%2e%2e/b", ("http", b"/a/../b")),
        ("http://[::1]:80/a", ("http", b"/a")),
        ("http://h", ("http", b"")),
        ("ftp://h/x", ("ftp", b"/x")),
        ("http://{{t}}.h/jwks", None),  # '{' is not a host character
        ("127.0.0.1:8000/jwks", None),
        ("http://h/%zz", None),
        ("http://h:8x/", None),
        ("http://a:1:2/", None),
        ("http://[1.2.3.4]/", None),
        ("http://h/\x01", None),
        ("://h", None),
    ],
)
def test_go_url_parse(url: str, result: tuple[str, bytes] | None) -> None:
    if result is None:
        with pytest.raises(ValueError):
            go_url_path(url)
    else:
        assert go_url_path(url) == result


def test_go_path_clean() -> None:
    assert go_clean_path(b"/jwks/") == b"/jwks"
    assert go_clean_path(b"//jwks") == b"/jwks"
    assert go_clean_path(b"/a/../../b") == b"/b"
    assert go_clean_path(b"/") == b"/"
    assert go_clean_path(b"a/..") == b"."


# --------------------------------------------------------------------------- config


def _config(token: TokenConfig, sub: SubscriptionTokenConfig | None = None) -> Config:
    return Config(
        client=ClientConfig(token=token, subscription_token=sub or SubscriptionTokenConfig())
    )


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (TokenConfig(jwks_public_endpoint="ftp://h/jwks"), "http:// or https://"),
        (TokenConfig(jwks_public_endpoint="h/jwks"), "http:// or https://"),
        (TokenConfig(jwks_public_endpoint="127.0.0.1:80/jwks"), "invalid url"),
        (TokenConfig(jwks_public_endpoint="http://{{t}}.h/jwks"), "invalid url"),
        (TokenConfig(jwks_public_endpoint="http://h/%zz"), "invalid url"),
        (TokenConfig(jwks_public_endpoint="http://h/{{t/jwks"), "end tag"),
        (TokenConfig(jwks_public_endpoint=TENANT_URL, issuer_regex="(?P<tenant>.+)"), "explicit"),
        (TokenConfig(jwks_public_endpoint=TENANT_URL, audience_regex="(?P<tenant>[a])"), "class"),
    ],
)
def test_config_refuses(token: TokenConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate(_config(token))
    sub = SubscriptionTokenConfig(enabled=True, **vars(token))
    with pytest.raises(ConfigError, match="client.subscription_token"):
        validate(_config(TokenConfig(hmac_secret_key="k"), sub))
    # Centrifugo builds the subscription verifier only when it is enabled
    validate(_config(TokenConfig(hmac_secret_key="k"), replace(sub, enabled=False)))


def test_config_accepts() -> None:
    validate(_config(TokenConfig(jwks_public_endpoint="HTTPS://h:443/certs")))
    validate(
        _config(TokenConfig(jwks_public_endpoint=TENANT_URL, issuer_regex="^(?P<tenant>a|b)$"))
    )
    unsafe = TokenConfig(
        jwks_public_endpoint=TENANT_URL,
        issuer_regex="(?P<tenant>.+)",
        insecure_skip_jwks_endpoint_safety_check=True,
    )
    validate(_config(unsafe))
