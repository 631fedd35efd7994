"""The admin UI in headless Chromium (Playwright for Python) against a real relay.

Needs Debian's ``chromium`` (``/usr/bin/chromium``, or ``RELAY_CHROMIUM``) and the
``playwright`` package; ``.ci/run`` and ``make install`` provide both. Without them the
module is skipped. Screenshots of each page go to ``docs/screenshots/``.

Spec: spec/server-surface.md §7; issue 5 ("How it is tested").
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.config import AdminConfig
from relay.transports import admin
from tests.conftest import API_KEY, ServerHandle, make_config, run_server
from tests.integration.conftest import WSClient

pw = pytest.importorskip("playwright.async_api")

CHROMIUM = os.environ.get("RELAY_CHROMIUM", "/usr/bin/chromium")
if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)", allow_module_level=True)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "e2e-password"
ADMIN_SECRET = "e2e-secret"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
UI_TIMEOUT_MS = 10_000

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """One loop kind is enough for the browser tests (the API tests cover uvloop)."""
    return asyncio.DefaultEventLoopPolicy()


# ---- fixtures ---------------------------------------------------------------------------
@asynccontextmanager
async def admin_server() -> AsyncIterator[ServerHandle]:
    """A relay on 127.0.0.1:<random> with the admin UI wired in."""
    cfg = make_config(admin=AdminConfig(enabled=True, password=PASSWORD, secret=ADMIN_SECRET))
    async with run_server(cfg) as handle:
        yield handle


@pytest.fixture
async def srv() -> AsyncIterator[ServerHandle]:
    async with admin_server() as handle:
        yield handle


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with pw.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page(browser: Any) -> AsyncIterator[Any]:
    context = await browser.new_context(viewport=LAPTOP)
    pg = await context.new_page()
    pg.set_default_timeout(UI_TIMEOUT_MS)
    try:
        yield pg
    finally:
        await context.close()


@pytest.fixture
async def api(srv: ServerHandle) -> AsyncIterator[Callable[[str, dict[str, Any]], Any]]:
    """``await api(method, params)``: the HTTP API's decoded answer for comparison."""
    async with aiohttp.ClientSession() as http:

        async def call(method: str, params: dict[str, Any]) -> Any:
            url = f"{srv.api_url}/{method}"
            async with http.post(url, json=params, headers={"X-API-Key": API_KEY}) as r:
                assert r.status == 200
                return await r.json()

        yield call


# ---- helpers ----------------------------------------------------------------------------
async def screenshot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def log_in(page: Any, base: str, password: str = PASSWORD) -> None:
    await page.goto(base + "/")
    await page.locator("#login-view").wait_for(state="visible")
    await page.fill("#password", password)
    await page.click("#login-submit")


async def logged_in(page: Any, base: str) -> None:
    await log_in(page, base)
    await page.locator("#status-view").wait_for(state="visible")


async def metric(page: Any, key: str) -> str:
    return str(await page.locator(f"#metric-{key}").text_content())


async def wait_metric(page: Any, key: str, pred: Callable[[float], bool], timeout: float) -> float:
    """Poll a status card until ``pred(value)`` holds; returns the value."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = (await metric(page, key)).replace(",", "")
        try:
            value = float(text)
        except ValueError:
            value = None
        if value is not None and pred(value):
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"metric {key} stayed at {text!r}")


async def run_action(page: Any, method: str, fields: dict[str, str]) -> Any:
    """Fill the method's form, run it and return the rendered reply JSON."""
    await page.select_option("#method", method)
    for name, value in fields.items():
        await page.fill(f"#field-{name}", value)
    await page.evaluate("document.getElementById('result-json').textContent = 'pending'")
    await page.click("#action-submit")
    await page.wait_for_function(
        "() => !['', 'pending'].includes(document.getElementById('result-json').textContent)"
    )
    return json.loads(await page.locator("#result-json").text_content())


async def summary(page: Any) -> str:
    return str(await page.locator("#result-summary").text_content())


# ---- tests ------------------------------------------------------------------------------
async def test_wrong_password_is_refused(srv: ServerHandle, page: Any) -> None:
    await page.goto(srv.http_url + "/")
    await page.locator("#login-view").wait_for(state="visible")
    await screenshot(page, "login")
    await log_in(page, srv.http_url, "not-the-password")
    error = page.locator("#login-error")
    await error.wait_for(state="visible")
    assert "Wrong password" in str(await error.text_content())
    assert await page.locator("#status-view").is_hidden()
    assert await page.evaluate("localStorage.getItem('token')") is None


async def publish_steadily(api: Callable[..., Any], channel: str, stop: asyncio.Event) -> int:
    """Publish with a slowly varying rate until ``stop``; returns how many were sent."""
    sent = 0
    while not stop.is_set():
        await api("publish", {"channel": channel, "data": {"n": sent}})
        sent += 1
        await asyncio.sleep(0.02 + 0.03 * (1 + math.sin(sent / 15)))
    return sent


async def wait_points(page: Any, key: str, n: int) -> None:
    """Wait until the card's sparkline holds at least ``n`` samples."""
    await page.wait_for_function(
        "([k, n]) => (document.querySelector(`[data-metric='${k}'] .spark-line`)"
        "?.getAttribute('points') || '').split(' ').length >= n",
        arg=[key, n],
    )


async def test_login_and_live_status(
    srv: ServerHandle, page: Any, api: Callable[..., Any], browser: Any
) -> None:
    await logged_in(page, srv.http_url)
    await wait_metric(page, "clients", lambda v: v == 0, 5)
    client = await WSClient.login(srv.ws_url, user="7")
    stop = asyncio.Event()
    publisher: asyncio.Task[int] | None = None
    try:
        await client.subscribe("chat:live")
        await wait_metric(page, "clients", lambda v: v == 1, 5)
        await wait_metric(page, "subscriptions", lambda v: v == 1, 5)
        await wait_metric(page, "channels", lambda v: v == 1, 5)
        before = int(await page.locator("#metric-rate_in").get_attribute("data-total") or 0)
        publisher = asyncio.create_task(publish_steadily(api, "chat:live", stop))
        assert await wait_metric(page, "rate_in", lambda v: v > 0, 5) > 0
        assert await wait_metric(page, "rate_out", lambda v: v > 0, 5) > 0
        await page.wait_for_function(
            "n => Number(document.getElementById('metric-rate_in').dataset.total) >= n",
            arg=before + 40,
        )
        nodes = page.locator("#nodes-table tbody tr")
        assert await nodes.count() == 1
        assert srv.node.name in str(await nodes.first.text_content())
        await wait_points(page, "rate_in", 8)
        await screenshot(page, "status")
        await check_phone_layout(browser, srv)
        stop.set()
        sent = await publisher
        await page.wait_for_function(
            "n => Number(document.getElementById('metric-rate_in').dataset.total) >= n",
            arg=before + sent,
        )
        await wait_metric(page, "rate_in", lambda v: v == 0, 5)
    finally:
        stop.set()
        if publisher is not None:
            await asyncio.gather(publisher, return_exceptions=True)
        await client.close()


async def check_phone_layout(browser: Any, srv: ServerHandle) -> None:
    """The status page on a phone: no horizontal overflow; screenshot."""
    phone = await browser.new_context(viewport=PHONE, is_mobile=True)
    try:
        mobile = await phone.new_page()
        mobile.set_default_timeout(UI_TIMEOUT_MS)
        await log_in(mobile, srv.http_url)
        await mobile.locator("#status-view").wait_for(state="visible")
        await wait_metric(mobile, "clients", lambda v: v == 1, 5)
        await wait_points(mobile, "rate_in", 5)
        width = await mobile.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "status page overflows a phone screen"
        await screenshot(mobile, "status-phone")
    finally:
        await phone.close()


async def test_actions_match_the_api(srv: ServerHandle, page: Any, api: Callable[..., Any]) -> None:
    client = await WSClient.login(srv.ws_url, user="7")
    try:
        await client.subscribe("chat:1")
        await logged_in(page, srv.http_url)
        await page.click("#nav-actions")
        await page.locator("#actions-view").wait_for(state="visible")
        options = await page.locator("#method option").all_text_contents()
        for method in (
            "publish",
            "broadcast",
            "presence",
            "presence_stats",
            "history",
            "history_remove",
            "channels",
            "disconnect",
            "unsubscribe",
            "subscribe",
            "info",
        ):
            assert method in options

        shown = await run_action(page, "publish", {"channel": "chat:1", "data": '{"text":"hi"}'})
        hist = (await api("history", {"channel": "chat:1", "limit": 0}))["result"]
        assert shown == {"result": {"offset": hist["offset"], "epoch": hist["epoch"]}}
        assert "Published at offset" in await summary(page)
        assert (await client.push("pub", "chat:1"))["pub"]["data"] == {"text": "hi"}

        shown = await run_action(
            page, "broadcast", {"channels": "chat:1, chat:2", "data": '{"text":"all"}'}
        )
        responses = shown["result"]["responses"]
        assert len(responses) == 2 and all("offset" in r["result"] for r in responses)
        assert "2 channels, 0 failed" in await summary(page)

        for method, fields, params in (
            ("presence", {"channel": "chat:1"}, {"channel": "chat:1"}),
            ("presence_stats", {"channel": "chat:1"}, {"channel": "chat:1"}),
            ("channels", {"pattern": "chat:*"}, {"pattern": "chat:*"}),
            ("history", {"channel": "chat:1", "limit": "10"}, {"channel": "chat:1", "limit": 10}),
        ):
            shown = await run_action(page, method, fields)
            assert shown == await api(method, params), method
        assert await page.locator("#result-table tbody tr").count() == 2  # two publications
        await screenshot(page, "actions")

        shown = await run_action(page, "info", {})
        expected = await api("info", {})
        for node in (shown["result"]["nodes"][0], expected["result"]["nodes"][0]):
            node.pop("uptime", None)  # both move between the two calls
            node.pop("metrics", None)
        assert shown == expected

        shown = await run_action(page, "presence", {"channel": "nope:x"})
        assert shown == await api("presence", {"channel": "nope:x"})
        assert "Error 102" in await summary(page)

        shown = await run_action(page, "subscribe", {"user": "7", "channel": "chat:3"})
        assert shown == {"result": {}}
        await client.push("subscribe", "chat:3")
        presence = (await api("presence", {"channel": "chat:3"}))["result"]["presence"]
        assert [p["user"] for p in presence.values()] == ["7"]

        shown = await run_action(page, "unsubscribe", {"user": "7", "channel": "chat:3"})
        assert shown == {"result": {}}
        await client.push("unsubscribe", "chat:3")
        assert (await api("presence", {"channel": "chat:3"}))["result"]["presence"] == {}

        shown = await run_action(page, "history_remove", {"channel": "chat:1"})
        assert shown == {"result": {}}
        assert (await api("history", {"channel": "chat:1", "limit": -1}))["result"][
            "publications"
        ] == []

        shown = await run_action(page, "disconnect", {"user": "7"})
        assert shown == {"result": {}}
        code, _ = await client.closed()
        assert code == 3503
    finally:
        await client.close()


async def test_expired_token_returns_to_login(srv: ServerHandle, page: Any) -> None:
    expired = admin.issue_token(ADMIN_SECRET, now=time.time() - admin.TOKEN_LIFETIME - 60)
    await page.goto(srv.http_url + "/")
    await page.evaluate("t => localStorage.setItem('token', t)", expired)
    await page.reload()
    await page.locator("#login-view").wait_for(state="visible")
    # the message arrives with the answer to the token check: wait for it
    await page.locator("#login-error", has_text="expired").wait_for(state="visible")
    # a session that expires while the status page polls goes back to login as well
    await log_in(page, srv.http_url)
    await page.locator("#status-view").wait_for(state="visible")
    await page.evaluate("t => localStorage.setItem('token', t)", expired)
    await page.locator("#login-view").wait_for(state="visible")
    await page.wait_for_function("localStorage.getItem('token') === null")


async def test_logout(srv: ServerHandle, page: Any) -> None:
    await logged_in(page, srv.http_url)
    assert await page.evaluate("localStorage.getItem('token')")
    await page.click("#logout")
    await page.locator("#login-view").wait_for(state="visible")
    assert await page.evaluate("localStorage.getItem('token')") is None
    await page.reload()
    await page.locator("#login-view").wait_for(state="visible")
    assert await page.locator("#topbar").is_hidden()
