"""Helpers for integration tests: an HTTP API caller and a JSON WebSocket client."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
import websockets

from tests.conftest import API_KEY, token
from tests.integration.wsutil import RawClient


class WSClient(RawClient):
    """A JSON-protocol ``RawClient`` that logs in with a token when opened."""

    client_id = ""

    @classmethod
    async def login(cls, url: str, user: str = "42", **claims: Any) -> WSClient:
        """Open, send ``connect`` with a token for ``user`` and wait for the reply."""
        client = cls(await websockets.connect(url))
        reply = await client.connect(token=token(user, **claims))
        assert "connect" in reply, reply
        client.client_id = reply["connect"]["client"]
        return client

    async def command(self, body: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
        """Send one command (``{"<method>": {...}}``) and return its reply."""
        ((method, params),) = body.items()
        return await self.call(method, params, timeout)

    async def subscribe(self, channel: str) -> dict[str, Any]:
        reply = await self.call("subscribe", {"channel": channel})
        assert "subscribe" in reply, reply
        return reply


class API:
    """POSTs to ``<api_url>/<method>`` with the test key; returns (status, body, headers)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def raw(
        self,
        path: str,
        body: bytes | str | None = None,
        *,
        method: str = "POST",
        headers: dict[str, str] | None = None,
        key: str | None = API_KEY,
    ) -> tuple[int, bytes, Any]:
        hdrs = dict(headers or {})
        if key is not None:
            hdrs.setdefault("X-API-Key", key)
        async with self.session.request(method, self.base + path, data=body, headers=hdrs) as r:
            return r.status, await r.read(), r.headers

    async def call(self, method: str, params: Any, **kw: Any) -> Any:
        """POST JSON ``params`` to ``/<method>``, expect 200 and return the decoded body."""
        status, body, _ = await self.raw("/" + method, json.dumps(params), **kw)
        assert status == 200, (status, body)
        return json.loads(body)


@pytest.fixture(autouse=True)
def no_server_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """No client input may make the server log a traceback (issue 9's rule).

    ``setup_logging`` (run by CLI tests in this process) sets the ``relay`` logger's level
    and stops its records from propagating; they must reach ``caplog`` here, so during
    the test the logger propagates and takes the root's level.
    """
    relay_logger = logging.getLogger("relay")
    propagate, level = relay_logger.propagate, relay_logger.level
    relay_logger.propagate = True
    relay_logger.setLevel(logging.NOTSET)  # setLevel: the loggers' level caches are reset
    try:
        yield
    finally:
        relay_logger.propagate = propagate
        relay_logger.setLevel(level)
    # caplog.records holds only the current phase's (teardown): read every phase.
    records = [*caplog.get_records("setup"), *caplog.get_records("call"), *caplog.records]
    traced = [r for r in records if r.exc_info]
    assert not traced, [f"{r.name}: {r.getMessage()}" for r in traced]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(relay: Any, http: aiohttp.ClientSession) -> API:
    return API(http, relay.api_url)
