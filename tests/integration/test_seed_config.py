"""The seed deployment's config (examples/seed-config.json) + its four env vars, end to end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

from relay.auth import encode_hmac_token
from relay.config import load_config, validate
from tests.conftest import run_server
from tests.integration.wsutil import RawClient

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-config.json"
ENV = {
    "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": "seed-secret",
    "CENTRIFUGO_HTTP_API_KEY": "seed-api-key",
    "CENTRIFUGO_ADMIN_PASSWORD": "seed-admin-password",
    "CENTRIFUGO_ADMIN_SECRET": "seed-admin-secret",
}


def user_token(user: str) -> str:
    return encode_hmac_token({"sub": user}, ENV["CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY"])


@pytest.fixture
async def seed() -> AsyncIterator[Any]:
    result = load_config(str(SEED), ENV, {"http_server.port": 0})
    assert not result.warnings, result.warnings
    validate(result.config)
    assert result.config.http_api.key == "seed-api-key"
    assert result.config.admin.password == "seed-admin-password"
    assert result.config.admin.secret == "seed-admin-secret"
    async with run_server(result.config) as srv:
        yield srv


async def api(srv: Any, method: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = {"Authorization": "apikey seed-api-key"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{srv.api_url}/{method}", json=body, headers=headers) as resp:
            assert resp.status == 200
            data: dict[str, Any] = await resp.json()
            return data


async def test_session_namespace(seed: Any) -> None:
    a = await RawClient.open(seed.ws_url)
    await a.connect(token=user_token("alice"))
    sub = (await a.call("subscribe", {"channel": "session:room1"}))["subscribe"]
    assert sub["recoverable"] is True  # force_recovery
    await a.push("join", "session:room1")
    b = await RawClient.open(seed.ws_url)
    await b.connect(token=user_token("bob"))
    assert (await b.call("publish", {"channel": "session:room1", "data": {}}))["error"][
        "code"
    ] == 103  # only subscribers publish
    await b.call("subscribe", {"channel": "session:room1"})
    assert (await a.push("join", "session:room1"))["join"]["info"]["user"] == "bob"
    assert "publish" in await b.call("publish", {"channel": "session:room1", "data": {"n": 60}})
    assert (await a.push("pub", "session:room1"))["pub"]["data"] == {"n": 60}
    pres = (await a.call("presence", {"channel": "session:room1"}))["presence"]["presence"]
    assert sorted(i["user"] for i in pres.values()) == ["alice", "bob"]
    hist = (await a.call("history", {"channel": "session:room1", "limit": 100}))["history"]
    assert [p["data"] for p in hist["publications"]] == [{"n": 60}]
    anon = await RawClient.open(seed.ws_url)
    await anon.connect()
    assert (await anon.call("subscribe", {"channel": "session:room1"}))["error"]["code"] == 103
    for c in (a, b, anon):
        await c.close()


async def test_public_namespace_anonymous(seed: Any) -> None:
    anon = await RawClient.open(seed.ws_url)
    assert "connect" in await anon.connect()
    assert "subscribe" in await anon.call("subscribe", {"channel": "public:status"})
    assert "publish" in await anon.call("publish", {"channel": "public:status", "data": 1})
    assert (await anon.push("pub", "public:status"))["pub"]["data"] == 1
    stats = (await anon.call("presence_stats", {"channel": "public:status"}))["presence_stats"]
    assert stats == {"num_clients": 1, "num_users": 1}
    assert (await anon.call("history", {"channel": "public:status"}))["error"]["code"] == 108
    res = await api(
        seed,
        "broadcast",
        {"channels": ["public:status", "public:display"], "data": {"status": "live"}},
    )
    assert len(res["result"]["responses"]) == 2
    assert (await anon.push("pub", "public:status"))["pub"]["data"] == {"status": "live"}
    await anon.close()


async def test_system_namespace_server_push_only(seed: Any) -> None:
    c = await RawClient.open(seed.ws_url)
    await c.connect(token=user_token("carol"))
    assert "subscribe" in await c.call("subscribe", {"channel": "system:alerts"})
    assert (await c.call("publish", {"channel": "system:alerts", "data": 1}))["error"][
        "code"
    ] == 103
    res = await api(seed, "publish", {"channel": "system:alerts", "data": {"level": "warn"}})
    assert res["result"]["offset"] == 1
    assert (await c.push("pub", "system:alerts"))["pub"]["data"] == {"level": "warn"}
    hist = (await c.call("history", {"channel": "system:alerts", "limit": 10}))["history"]
    assert hist["offset"] == 1
    await c.close()


async def test_allowed_origins(seed: Any) -> None:
    ok = await websockets.connect(seed.ws_url, origin="https://dashboard.spacemusic.tv")  # type: ignore[arg-type]
    await ok.close()
    with pytest.raises(websockets.InvalidStatus) as exc:
        await websockets.connect(seed.ws_url, origin="https://evil.example")  # type: ignore[arg-type]
    assert exc.value.response.status_code == 403


def test_compose_runs_relay_like_the_seed() -> None:
    import yaml

    compose = yaml.safe_load((SEED.parents[1] / "docker-compose.yml").read_text())
    relay = compose["services"]["relay"]
    assert "env_file" not in relay  # the seed's gotcha: no raw variables injected
    assert sorted(relay["environment"]) == sorted(ENV)
    assert relay["ports"] == ["8000:8000"]
    assert relay["volumes"][0].startswith("./examples/seed-config.json:")
    node = compose["services"]["relay-a"]
    env = {k: "x" for k in ENV} | {
        k: v for k, v in node["environment"].items() if not k.startswith("<<")
    }
    cfg = load_config(str(SEED), {**env, "CENTRIFUGO_ENGINE_REDIS_ADDRESS": "redis://r:6379"})
    assert not cfg.warnings
    assert cfg.config.engine.type == "redis"
    assert cfg.config.engine.redis.address == ("redis://r:6379",)
