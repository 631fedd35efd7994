"""JWKS end to end: a real HTTP server serves key sets, a real relay verifies tokens with them.

Expected behaviour (Centrifugo v6.9.1 ``internal/jwks``, ``internal/jwtverify``; every
case below was also run against the centrifugo 6.9.1 binary with the same JWKS server):

* a token's key is picked by its header ``kid``; the whole set is cached on a miss, keys
  live an hour after their last use, so a removed key keeps working while in use and a
  new ``kid`` triggers a fetch;
* any failure (unknown kid, no kid, bad signature, endpoint down, 500, timeout) is an
  invalid token: close 3500 on connect/refresh, error 103 on subscribe; expiry stays 109;
* a fetch is 2 attempts of 1 s each; concurrent misses for one kid share one fetch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from relay.config import ClientConfig, Config, SubscriptionTokenConfig, TokenConfig
from tests.conftest import SECRET, make_config, run_server, token
from tests.integration.sdk_helpers import SDKPool
from tests.integration.wsutil import RawClient

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()


def b64(value: int | bytes, size: int = 0) -> str:
    if isinstance(value, int):
        value = value.to_bytes(size or (value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


def rsa_jwk(kid: str, key: rsa.RSAPrivateKey = RSA_KEY) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()
    return {
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": b64(numbers.n),
        "e": b64(numbers.e),
    }


def ec_jwk(kid: str) -> dict[str, Any]:
    numbers = EC_KEY.public_key().public_numbers()
    return {
        "kty": "EC",
        "kid": kid,
        "use": "sig",
        "crv": "P-256",
        "x": b64(numbers.x, 32),
        "y": b64(numbers.y, 32),
    }


def ed_jwk(kid: str) -> dict[str, Any]:
    raw = ED_KEY.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return {"kty": "OKP", "kid": kid, "use": "sig", "crv": "Ed25519", "x": b64(raw)}


def sign(key: Any, alg: str, kid: str | None, user: str = "42", **claims: Any) -> str:
    body: dict[str, Any] = {"sub": user, "exp": int(time.time()) + 3600} | claims
    return jwt.encode(body, key, algorithm=alg, headers={} if kid is None else {"kid": kid})


@dataclass
class JwksServer:
    """``/jwks`` serves ``keys``; ``/<tenant>/jwks`` serves ``tenants[tenant]``."""

    keys: list[dict[str, Any]] = field(default_factory=list)
    tenants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    status: int = 200
    delay: float = 0.0
    hits: list[str] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks"

    async def handle(self, request: web.Request) -> web.Response:
        self.hits.append(request.path)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.Response(status=self.status, text="nope")
        if request.path == "/jwks":
            keys = self.keys
        else:
            tenant = request.path.strip("/").split("/")[0]
            if tenant not in self.tenants:
                return web.Response(status=404)
            keys = self.tenants[tenant]
        return web.json_response({"keys": keys})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def jwks() -> AsyncIterator[JwksServer]:
    server = JwksServer(keys=[rsa_jwk("r1"), ec_jwk("e1"), ed_jwk("d1")])
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def jwks_config(token_cfg: TokenConfig, sub: SubscriptionTokenConfig | None = None) -> Config:
    cfg = make_config()
    client: ClientConfig = replace(cfg.client, token=token_cfg)
    if sub is not None:
        client = replace(client, subscription_token=sub)
    return replace(cfg, client=client)


async def connect(url: str, tok: str) -> tuple[RawClient, dict[str, Any]]:
    client = await RawClient.open(url)
    return client, await client.connect(token=tok)


async def refused(url: str, tok: str) -> int | None:
    """Connect with ``tok``; the close code (no reply may accept it)."""
    client = await RawClient.open(url)
    await client.send({"id": 1, "connect": {"token": tok}})
    code, _ = await client.closed()
    assert not any("connect" in m for m in client.inbox), client.inbox
    return code


async def accepted(url: str, tok: str, user: str = "42") -> RawClient:
    client, reply = await connect(url, tok)
    assert reply.get("connect", {}).get("client"), reply
    return client


# --------------------------------------------------------------------------- connect


async def test_tokens_signed_by_each_key_connect(jwks: JwksServer, mode: str) -> None:
    cfg = jwks_config(TokenConfig(jwks_public_endpoint=jwks.url))
    async with run_server(cfg, mode) as srv:
        for tok in (
            sign(RSA_KEY, "RS256", "r1"),
            sign(EC_KEY, "ES256", "e1"),
            sign(ED_KEY, "EdDSA", "d1"),
        ):
            client = await accepted(srv.ws_url, tok)
            await client.close()
        async with SDKPool(srv.ws_url, protobuf=False) as pool:  # the real SDK too
            _, rec = await pool.connected(token=sign(EC_KEY, "ES256", "e1", user="sdk"))
            assert rec.all("connected")[0].client
        assert jwks.hits and set(jwks.hits) == {"/jwks"}


async def test_refused_tokens(jwks: JwksServer) -> None:
    cfg = jwks_config(TokenConfig(jwks_public_endpoint=jwks.url, hmac_secret_key=SECRET))
    async with run_server(cfg) as srv:
        url = srv.ws_url
        await (await accepted(url, sign(RSA_KEY, "RS256", "r1"))).close()
        assert jwks.hits == ["/jwks"]
        # signed by another key under a known kid; tampered claims; HMAC with the
        # configured secret (ignored with JWKS); no kid: all refused without a fetch
        assert await refused(url, sign(RSA_OTHER, "RS256", "r1")) == 3500
        head, _claims, sig = sign(RSA_KEY, "RS256", "r1").split(".")
        forged = b64(json.dumps({"sub": "admin"}).encode())
        assert await refused(url, f"{head}.{forged}.{sig}") == 3500
        assert await refused(url, token("42")) == 3500
        assert await refused(url, sign(RSA_KEY, "RS256", None)) == 3500
        assert await refused(url, sign(EC_KEY, "ES256", "r1")) == 3500  # kid of an RSA key
        assert jwks.hits == ["/jwks"]
        # an unknown kid is looked up again on every attempt (no negative cache)
        assert await refused(url, sign(RSA_KEY, "RS256", "zz")) == 3500
        assert await refused(url, sign(RSA_KEY, "RS256", "zz")) == 3500
        assert jwks.hits == ["/jwks"] * 3
        # expiry is checked after the signature: error 109, connection kept
        client, reply = await connect(url, sign(RSA_KEY, "RS256", "r1", exp=int(time.time()) - 5))
        assert reply["error"]["code"] == 109
        await client.close()


async def test_rotation(jwks: JwksServer) -> None:
    cfg = jwks_config(TokenConfig(jwks_public_endpoint=jwks.url))
    async with run_server(cfg) as srv:
        await (await accepted(srv.ws_url, sign(RSA_KEY, "RS256", "r1"))).close()
        await (await accepted(srv.ws_url, sign(EC_KEY, "ES256", "e1"))).close()
        assert len(jwks.hits) == 1  # the whole set was cached by the first fetch
        jwks.keys = [rsa_jwk("r2", RSA_OTHER)]  # the issuer rotates: r1 and e1 are gone
        await (await accepted(srv.ws_url, sign(RSA_OTHER, "RS256", "r2"))).close()
        assert len(jwks.hits) == 2  # a new kid: fetched
        # removed keys stay valid while cached (an hour after their last use)
        await (await accepted(srv.ws_url, sign(RSA_KEY, "RS256", "r1"))).close()
        assert len(jwks.hits) == 2


async def test_endpoint_down(jwks: JwksServer) -> None:
    cfg = jwks_config(TokenConfig(jwks_public_endpoint=jwks.url))
    async with run_server(cfg) as srv:
        await (await accepted(srv.ws_url, sign(RSA_KEY, "RS256", "r1"))).close()
        jwks.status = 500
        assert await refused(srv.ws_url, sign(RSA_KEY, "RS256", "new")) == 3500
        assert len(jwks.hits) == 3  # 1 + two attempts
        await (await accepted(srv.ws_url, sign(RSA_KEY, "RS256", "r1"))).close()  # cached
        jwks.status, jwks.delay = 200, 1.3  # slower than the 1 s per attempt
        started = time.monotonic()
        assert await refused(srv.ws_url, sign(RSA_KEY, "RS256", "slow")) == 3500
        assert 1.9 < time.monotonic() - started < 3.5
        assert len(jwks.hits) == 5
        jwks.delay = 0.0
        await asyncio.sleep(0.5)  # the slow handlers finish
        await jwks.stop()  # connection refused
        assert await refused(srv.ws_url, sign(RSA_KEY, "RS256", "gone")) == 3500
        await (await accepted(srv.ws_url, sign(EC_KEY, "ES256", "e1"))).close()


async def test_concurrent_misses_share_one_fetch(jwks: JwksServer) -> None:
    cfg = jwks_config(TokenConfig(jwks_public_endpoint=jwks.url))
    jwks.delay = 0.3
    async with run_server(cfg) as srv:
        clients = await asyncio.gather(
            *(accepted(srv.ws_url, sign(RSA_KEY, "RS256", "r1", user=str(i))) for i in range(5))
        )
        assert jwks.hits == ["/jwks"]
        for client in clients:
            await client.close()


async def test_client_gone_during_fetch(jwks: JwksServer, caplog: pytest.LogCaptureFixture) -> None:
    cfg = jwks_config(TokenConfig(jwks_public_endpoint=jwks.url))
    jwks.delay = 0.5
    async with run_server(cfg) as srv:
        client = await RawClient.open(srv.ws_url)
        await client.send({"id": 1, "connect": {"token": sign(RSA_KEY, "RS256", "r1")}})
        await asyncio.sleep(0.1)
        await client.close()
        await asyncio.sleep(0.8)
        assert jwks.hits == ["/jwks"]
        assert srv.clients == {}  # the connect did not finish for a closed connection
        assert not [r.getMessage() for r in caplog.records if r.exc_info]
        await (await accepted(srv.ws_url, sign(RSA_KEY, "RS256", "r1"))).close()  # cached


async def test_refresh_fetches_a_new_kid(jwks: JwksServer) -> None:
    cfg = jwks_config(TokenConfig(jwks_public_endpoint=jwks.url))
    async with run_server(cfg) as srv:
        client = await accepted(srv.ws_url, sign(RSA_KEY, "RS256", "r1"))
        jwks.keys = [*jwks.keys, rsa_jwk("r2", RSA_OTHER)]
        reply = await client.call("refresh", {"token": sign(RSA_OTHER, "RS256", "r2")})
        assert reply["refresh"]["expires"] is True, reply
        assert len(jwks.hits) == 2
        await client.send({"id": 9, "refresh": {"token": sign(RSA_KEY, "RS256", "zz")}})
        assert (await client.closed())[0] == 3500


# --------------------------------------------------------------------------- templates


async def test_templated_endpoint_by_issuer(jwks: JwksServer) -> None:
    jwks.tenants = {"a": [rsa_jwk("k")], "b": [rsa_jwk("k", RSA_OTHER)]}
    cfg = jwks_config(
        TokenConfig(
            jwks_public_endpoint=f"http://127.0.0.1:{jwks.port}/{{{{tenant}}}}/jwks",
            issuer_regex="^(?P<tenant>a|b)$",
        )
    )
    async with run_server(cfg) as srv:
        await (await accepted(srv.ws_url, sign(RSA_KEY, "RS256", "k", iss="a"))).close()
        await (await accepted(srv.ws_url, sign(RSA_OTHER, "RS256", "k", iss="b"))).close()
        # tenant a's key must not verify a token that claims tenant b
        assert await refused(srv.ws_url, sign(RSA_KEY, "RS256", "k", iss="b")) == 3500
        assert await refused(srv.ws_url, sign(RSA_KEY, "RS256", "k", iss="c")) == 3500
        assert jwks.hits == ["/a/jwks", "/b/jwks"]


# --------------------------------------------------------------------------- subscriptions


async def test_subscription_tokens(jwks: JwksServer, mode: str) -> None:
    cfg = jwks_config(
        TokenConfig(hmac_secret_key=SECRET),
        SubscriptionTokenConfig(enabled=True, jwks_public_endpoint=jwks.url),
    )
    async with run_server(cfg, mode) as srv:
        client = await accepted(srv.ws_url, token("42"))
        reply = await client.call(
            "subscribe", {"channel": "news", "token": sign(EC_KEY, "ES256", "e1", channel="news")}
        )
        assert "subscribe" in reply, reply
        for bad in (
            sign(EC_KEY, "ES256", "nope", channel="other"),  # unknown kid
            sign(RSA_OTHER, "RS256", "r1", channel="other"),  # wrong key
            token("42", channel="other"),  # HMAC: only client.token has the secret
        ):
            reply = await client.call("subscribe", {"channel": "other", "token": bad})
            assert reply["error"]["code"] == 103, reply
        reply = await client.call(
            "sub_refresh",
            {"channel": "news", "token": sign(ED_KEY, "EdDSA", "d1", channel="news")},
        )
        assert "sub_refresh" in reply, reply
        # a connection token signed by a JWKS key is refused: client.token is HMAC only
        assert await refused(srv.ws_url, sign(RSA_KEY, "RS256", "r1")) == 3500
        await client.close()
