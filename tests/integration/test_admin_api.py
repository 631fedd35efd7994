"""Admin endpoints against a real relay: auth, throttling, init/settings, /admin/api, UI files.

Spec: spec/server-surface.md §2.7, §4.5, §7; spec/reliability.md §2 F (F1-F4).
The second client address (throttling is per peer) is 127.0.0.2, bound with
``TCPConnector(local_addr=...)``; ``X-Forwarded-For`` must not be trusted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from relay.config import AdminConfig, Config, EndpointConfig
from relay.server import RelayServer
from relay.transports import admin
from tests.conftest import API_KEY, ServerHandle, make_config, run_server
from tests.integration.conftest import WSClient

PASSWORD = "admin-password"
ADMIN_SECRET = "admin-secret"


def admin_config(**overrides: Any) -> Config:
    """The test config with the admin UI enabled (``overrides`` go to ``AdminConfig``)."""
    opts: dict[str, Any] = {"enabled": True, "password": PASSWORD, "secret": ADMIN_SECRET}
    opts.update(overrides)
    return make_config(admin=AdminConfig(**opts))


@asynccontextmanager
async def admin_server(config: Config | None = None) -> AsyncIterator[ServerHandle]:
    """A relay with the admin UI enabled."""
    async with run_server(config or admin_config()) as handle:
        yield handle


@pytest.fixture
async def srv() -> AsyncIterator[ServerHandle]:
    async with admin_server() as handle:
        yield handle


@asynccontextmanager
async def session_from(address: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A client session whose connections leave from ``address``."""
    connector = aiohttp.TCPConnector(local_addr=(address, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def login(
    http: aiohttp.ClientSession, base: str, password: str = PASSWORD, **kw: Any
) -> tuple[int, bytes]:
    async with http.post(base + "/admin/auth", data={"password": password}, **kw) as r:
        return r.status, await r.read()


async def get_token(http: aiohttp.ClientSession, base: str) -> str:
    status, body = await login(http, base)
    assert status == 200, body
    token = json.loads(body)["token"]
    assert isinstance(token, str)
    return token


async def admin_api(
    http: aiohttp.ClientSession, base: str, body: str, auth: str | None
) -> tuple[int, bytes]:
    headers = {"Authorization": auth} if auth is not None else {}
    async with http.post(base + "/admin/api", data=body, headers=headers) as r:
        return r.status, await r.read()


def cmd(method: str | int, params: Any, cid: int = 0) -> str:
    body: dict[str, Any] = {"method": method, "params": params}
    if cid:
        body["id"] = cid
    return json.dumps(body)


# =========================================================================================
# tokens and the throttle, in isolation
# =========================================================================================
def test_token_round_trip_and_rejections() -> None:
    token = admin.issue_token("s")
    assert admin.verify_token("s", token)
    assert not admin.verify_token("other", token)
    assert not admin.verify_token("", token)
    payload, _, sig = token.partition(".")
    assert not admin.verify_token(
        "s", payload + "." + sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    )
    assert not admin.verify_token("s", payload + "x." + sig)
    assert not admin.verify_token("s", "garbage")
    assert not admin.verify_token("s", "")
    assert not admin.verify_token("s", "é.é")


def test_token_expires() -> None:
    token = admin.issue_token("s", now=time.time() - admin.TOKEN_LIFETIME - 1)
    assert not admin.verify_token("s", token)
    fresh = admin.issue_token("s")
    assert admin.verify_token("s", fresh, now=time.time() + admin.TOKEN_LIFETIME - 5)
    assert not admin.verify_token("s", fresh, now=time.time() + admin.TOKEN_LIFETIME + 5)


def test_throttle_window_and_isolation() -> None:
    now = [1000.0]
    throttle = admin.LoginThrottle(max_failures=3, window=10.0, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("a") == 0
        throttle.failure("a")
    assert throttle.retry_after("a") == pytest.approx(10.0)
    assert throttle.retry_after("b") == 0
    now[0] += 10.5
    assert throttle.retry_after("a") == 0
    throttle.failure("a")
    throttle.success("a")
    assert throttle.retry_after("a") == 0


def test_throttle_memory_is_bounded() -> None:
    throttle = admin.LoginThrottle(max_tracked=100)
    for i in range(1000):
        throttle.failure(f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._failures) == 100


# =========================================================================================
# /admin/auth
# =========================================================================================
async def test_auth_ok_urlencoded_and_multipart(srv: ServerHandle) -> None:
    async with aiohttp.ClientSession() as http:
        status, body = await login(http, srv.http_url)
        assert status == 200
        reply = json.loads(body)
        assert list(reply) == ["token"]
        assert admin.verify_token(ADMIN_SECRET, reply["token"])
        form = aiohttp.FormData()
        form.add_field("password", PASSWORD)
        form.add_field("filler", b"x", filename="f.bin")  # forces multipart/form-data
        async with http.post(srv.http_url + "/admin/auth", data=form) as r:
            assert r.status == 200
            assert "multipart" not in r.headers["Content-Type"]
            assert admin.verify_token(ADMIN_SECRET, (await r.json())["token"])
        assert not http.cookie_jar.filter_cookies(srv.http_url)  # never a cookie


async def test_auth_wrong_password_and_method(srv: ServerHandle) -> None:
    async with aiohttp.ClientSession() as http:
        assert (await login(http, srv.http_url, "nope"))[0] == 400
        assert (await login(http, srv.http_url, ""))[0] == 400
        async with http.post(srv.http_url + "/admin/auth") as r:
            assert r.status == 400
        async with http.get(srv.http_url + "/admin/auth") as r:
            assert r.status == 405


@pytest.mark.parametrize(("password", "secret"), [("", ADMIN_SECRET), (PASSWORD, ""), ("", "")])
async def test_auth_fails_closed_without_password_or_secret(password: str, secret: str) -> None:
    """F1: missing password or secret -> /admin/auth 400, /admin/api 401."""
    async with admin_server(admin_config(password=password, secret=secret)) as srv:
        async with aiohttp.ClientSession() as http:
            assert (await login(http, srv.http_url, password))[0] == 400
            forged = admin.issue_token(secret)
            status, body = await admin_api(http, srv.http_url, cmd("info", {}), f"token {forged}")
            assert (status, body) == (401, b"")


async def test_failed_logins_are_throttled_per_peer_address(srv: ServerHandle) -> None:
    """F3: after MAX_FAILURES failures one address gets 429; another address still logs in."""
    async with aiohttp.ClientSession() as http:
        for _ in range(admin.MAX_FAILURES):
            assert (await login(http, srv.http_url, "wrong"))[0] == 400
        async with http.post(srv.http_url + "/admin/auth", data={"password": "wrong"}) as r:
            assert r.status == 429
            assert 0 < int(r.headers["Retry-After"]) <= admin.FAILURE_WINDOW
        # the right password does not bypass the throttle, nor does a forged client address
        assert (await login(http, srv.http_url))[0] == 429
        spoof = {"X-Forwarded-For": "127.0.0.9", "X-Real-IP": "127.0.0.9"}
        assert (await login(http, srv.http_url, headers=spoof))[0] == 429
    async with session_from("127.0.0.2") as other:
        status, body = await login(other, srv.http_url)
        assert status == 200, body


async def test_successful_login_resets_the_failure_count(srv: ServerHandle) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(admin.MAX_FAILURES - 1):
            assert (await login(http, srv.http_url, "wrong"))[0] == 400
        assert (await login(http, srv.http_url))[0] == 200
        for _ in range(admin.MAX_FAILURES - 1):
            assert (await login(http, srv.http_url, "wrong"))[0] == 400
        assert (await login(http, srv.http_url))[0] == 200


# =========================================================================================
# /admin/init, /admin/settings
# =========================================================================================
@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
async def test_init_and_settings_shapes(srv: ServerHandle, method: str) -> None:
    async with aiohttp.ClientSession() as http:
        token = await get_token(http, srv.http_url)
        async with http.request(method, srv.http_url + "/admin/init") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("application/json")
            assert await r.json() == {"insecure": False, "edition": "oss", "authenticated": False}
        hdrs = {"Authorization": f"token {token}"}
        async with http.request(method, srv.http_url + "/admin/init", headers=hdrs) as r:
            assert await r.json() == {"insecure": False, "edition": "oss", "authenticated": True}
        async with http.request(method, srv.http_url + "/admin/settings") as r:
            assert r.status == 200
            assert await r.json() == {"insecure": False, "edition": "oss"}


async def test_init_with_expired_token_is_not_authenticated(srv: ServerHandle) -> None:
    old = admin.issue_token(ADMIN_SECRET, now=time.time() - admin.TOKEN_LIFETIME - 60)
    async with aiohttp.ClientSession() as http:
        hdrs = {"Authorization": f"token {old}"}
        async with http.get(srv.http_url + "/admin/init", headers=hdrs) as r:
            assert (await r.json())["authenticated"] is False


# =========================================================================================
# /admin/api
# =========================================================================================
async def test_admin_api_with_valid_token(srv: ServerHandle) -> None:
    async with aiohttp.ClientSession() as http:
        token = await get_token(http, srv.http_url)
        body = "\n".join(
            [
                cmd("publish", {"channel": "chat:1", "data": {"a": 1}}, cid=1),
                cmd("HISTORY", {"channel": "chat:1", "limit": -1}, cid=2),
                cmd("connections", {}, cid=3),  # PRO-only: 104 in OSS
                cmd("info", {}),
            ]
        )
        for scheme in ("token", "Token", "TOKEN"):
            status, raw = await admin_api(http, srv.http_url, body, f"{scheme} {token}")
            assert status == 200
        replies = [json.loads(line) for line in raw.split(b"\n")]
        assert len(replies) == 4
        assert replies[0]["id"] == 1 and replies[0]["result"]["offset"] == 3
        assert [p["data"] for p in replies[1]["result"]["publications"]] == [{"a": 1}] * 3
        assert replies[2] == {"id": 3, "error": {"code": 104, "message": "not found"}}
        assert "id" not in replies[3] and replies[3]["result"]["nodes"][0]["uid"] == srv.node.uid


async def test_admin_api_matches_the_http_api(srv: ServerHandle) -> None:
    """The same legacy command through /admin/api and /api answers alike."""
    async with aiohttp.ClientSession() as http:
        token = await get_token(http, srv.http_url)
        for body in (
            cmd("presence_stats", {"channel": "chat:x"}),
            cmd("presence", {"channel": "nope:x"}, cid=5),
            cmd("nope", {}) + cmd("info", {}),
            cmd(2, {"user": "u"}),
            cmd("publish", {"channel": 1}),
        ):
            status, via_admin = await admin_api(http, srv.http_url, body, f"token {token}")
            async with http.post(srv.api_url, data=body, headers={"X-API-Key": API_KEY}) as r:
                assert (r.status, await r.read()) == (status, via_admin), body


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "",
        "token",
        "Bearer {t}",
        "apikey " + API_KEY,
        "token {t} extra",
        "token {t}x",
        "token x{t}",
        "token {expired}",
        "token {other}",
    ],
)
async def test_admin_api_refuses_bad_tokens(srv: ServerHandle, auth: str | None) -> None:
    """F4: missing, malformed, tampered, expired or foreign-secret tokens -> 401, empty body."""
    async with aiohttp.ClientSession() as http:
        token = await get_token(http, srv.http_url)
        expired = admin.issue_token(ADMIN_SECRET, lifetime=-1)
        other = admin.issue_token("old-secret")
        header = None if auth is None else auth.format(t=token, expired=expired, other=other)
        status, body = await admin_api(http, srv.http_url, cmd("info", {}), header)
        assert (status, body) == (401, b"")


async def test_admin_api_ignores_query_token_and_cookie(srv: ServerHandle) -> None:
    async with aiohttp.ClientSession() as http:
        token = await get_token(http, srv.http_url)
        url = srv.http_url + "/admin/api?token=" + token
        async with http.post(url, data=cmd("info", {}), headers={"Cookie": f"token={token}"}) as r:
            assert r.status == 401


async def test_admin_api_method_and_body_errors(srv: ServerHandle) -> None:
    async with aiohttp.ClientSession() as http:
        token = await get_token(http, srv.http_url)
        hdrs = {"Authorization": f"token {token}"}
        async with http.get(srv.http_url + "/admin/api", headers=hdrs) as r:
            assert r.status == 405
        for bad in ("", "{", "[1]"):
            status, _ = await admin_api(http, srv.http_url, bad, f"token {token}")
            assert status == 400


# =========================================================================================
# /admin/stats
# =========================================================================================
async def test_stats_requires_a_token_and_counts(srv: ServerHandle) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(srv.http_url + "/admin/stats") as r:
            assert (r.status, await r.read()) == (401, b"")
        token = await get_token(http, srv.http_url)
        hdrs = {"Authorization": f"token {token}"}
        client = await WSClient.login(srv.ws_url, user="7")
        try:
            await client.subscribe("chat:1")
            await admin_api(
                http,
                srv.http_url,
                cmd("publish", {"channel": "chat:1", "data": 1}),
                hdrs["Authorization"],
            )
            await client.push("pub", "chat:1")
            async with http.get(srv.http_url + "/admin/stats", headers=hdrs) as r:
                assert r.status == 200
                assert r.headers["Cache-Control"] == "no-store"
                stats = await r.json()
        finally:
            await client.close()
    assert stats["workers"] == len(stats["nodes"]) == 1
    assert (stats["clients"], stats["users"]) == (1, 1)
    assert (stats["subscriptions"], stats["channels"]) == (1, 1)
    assert stats["messages_received"] >= 1 and stats["messages_sent"] >= 1
    assert stats["api_commands"] >= 1
    assert stats["node"]["uid"] == srv.node.uid
    assert stats["uptime"] >= 0 and stats["time"] > 0


# =========================================================================================
# insecure, disabled, prefix
# =========================================================================================
async def test_insecure_mode_opens_admin_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="relay.admin"):
        ctx = admin_server(admin_config(insecure=True, password="", secret=""))
        async with ctx as srv, aiohttp.ClientSession() as http:
            status, body = await admin_api(http, srv.http_url, cmd("info", {}), None)
            assert status == 200 and b"nodes" in body
            async with http.get(srv.http_url + "/admin/stats") as r:
                assert r.status == 200
            async with http.get(srv.http_url + "/admin/init") as r:
                assert await r.json() == {"insecure": True, "edition": "oss", "authenticated": True}
    assert any(
        r.levelno == logging.WARNING and "INSECURE admin mode" in r.getMessage()
        for r in caplog.records
    )


async def test_disabled_admin_registers_nothing() -> None:
    async with admin_server(make_config()) as srv, aiohttp.ClientSession() as http:
        for path in ("/", "/index.html", "/admin/init", "/admin/settings", "/admin/stats"):
            async with http.get(srv.http_url + path) as r:
                assert r.status == 404, path
        for path in ("/admin/auth", "/admin/api"):
            async with http.post(srv.http_url + path, data={"password": PASSWORD}) as r:
                assert r.status == 404, path


async def test_handler_prefix() -> None:
    async with admin_server(admin_config(handler_prefix="/ui/")) as srv:
        async with aiohttp.ClientSession() as http:
            base = srv.http_url + "/ui"
            token = await get_token(http, base)
            status, _ = await admin_api(http, base, cmd("info", {}), f"token {token}")
            assert status == 200
            async with http.get(base, allow_redirects=False) as r:
                assert r.status == 301 and r.headers["Location"] == "/ui/"
            async with http.get(base + "/") as r:
                assert r.status == 200 and b"relay admin" in await r.read()
            async with http.get(srv.http_url + "/admin/init") as r:
                assert r.status == 404


# =========================================================================================
# the UI's files, neighbours on the same port
# =========================================================================================
async def test_static_ui_files(srv: ServerHandle) -> None:
    async with aiohttp.ClientSession() as http:
        for path, ctype in (
            ("/", "text/html"),
            ("/index.html", "text/html"),
            ("/app.js", "javascript"),
            ("/style.css", "text/css"),
        ):
            async with http.get(srv.http_url + path) as r:
                assert r.status == 200, path
                assert ctype in r.headers["Content-Type"], path
                assert "default-src 'self'" in r.headers["Content-Security-Policy"]
                assert r.headers["X-Frame-Options"] == "DENY"
                assert API_KEY.encode() not in await r.read()
        for path in ("/missing.js", "/admin/unknown", "/../pyproject.toml", "/%2e%2e/api.py"):
            async with http.get(srv.http_url + path) as r:
                assert r.status == 404, path
        for method in ("POST", "PUT", "DELETE"):  # Go's FileServer ignores the method
            async with http.request(method, srv.http_url + "/") as r:
                assert r.status == 200 and b"<html" in (await r.read()).lower(), method


async def test_custom_web_path(tmp_path: Any) -> None:
    (tmp_path / "index.html").write_text("<p>custom spa</p>")
    async with admin_server(admin_config(web_path=str(tmp_path))) as srv:
        async with aiohttp.ClientSession() as http, http.get(srv.http_url + "/") as r:
            assert r.status == 200 and await r.text() == "<p>custom spa</p>"
            assert "Content-Security-Policy" not in r.headers


async def test_api_health_and_metrics_stay_reachable() -> None:
    cfg = replace(
        admin_config(),
        health=EndpointConfig(enabled=True, handler_prefix="/health"),
        prometheus=EndpointConfig(enabled=True, handler_prefix="/metrics"),
    )
    async with admin_server(cfg) as srv, aiohttp.ClientSession() as http:
        async with http.get(srv.http_url + "/health") as r:
            assert r.status == 200 and await r.json() == {}
        async with http.get(srv.http_url + "/metrics") as r:
            assert r.status == 200 and b"centrifugo_node_num_clients" in await r.read()
        hdrs = {"X-API-Key": API_KEY}
        async with http.post(srv.api_url + "/info", data="{}", headers=hdrs) as r:
            assert r.status == 200
        async with http.get(srv.api_url + "/info") as r:
            assert r.status == 405


async def test_api_key_never_reaches_the_browser(srv: ServerHandle) -> None:
    async with aiohttp.ClientSession() as http:
        token = await get_token(http, srv.http_url)
        hdrs = {"Authorization": f"token {token}"}
        for path in ("/admin/init", "/admin/settings", "/admin/stats"):
            async with http.get(srv.http_url + path, headers=hdrs) as r:
                assert API_KEY.encode() not in await r.read()
        _, body = await admin_api(http, srv.http_url, cmd("info", {}), hdrs["Authorization"])
        assert API_KEY.encode() not in body


def test_static_resolution_stays_inside_the_web_root() -> None:
    ui = admin._Admin(RelayServer(admin_config()).node, None, AdminConfig(enabled=True))  # type: ignore[arg-type]
    assert ui._resolve("") == admin.WEB_ROOT / "index.html"
    assert ui._resolve("app.js") == admin.WEB_ROOT / "app.js"
    for tail in ("../transports/admin.py", "/../config.py", "..", "a/../../api.py", "x\x00.js"):
        assert ui._resolve(tail) is None, tail


async def test_raw_dot_dot_request_is_refused(srv: ServerHandle) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /../config.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = await reader.readline()
    writer.close()
    assert head.split()[1] in (b"400", b"404"), head
