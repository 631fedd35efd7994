"""Helpers for integration tests: an HTTP API caller and a JSON WebSocket client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.conftest import API_KEY, token


class WSClient:
    """A JSON-protocol client: commands out, every reply/push collected in ``inbox``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: list[dict[str, Any]] = []
        self._ids = 0
        self.client_id = ""

    @classmethod
    async def connect(cls, url: str, user: str = "42", **claims: Any) -> WSClient:
        """Open, send ``connect`` with a token for ``user`` and wait for the reply."""
        client = cls(await websockets.connect(url))
        reply = await client.command({"connect": {"token": token(user, **claims)}})
        assert "connect" in reply, reply
        client.client_id = reply["connect"]["client"]
        return client

    async def command(self, body: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
        """Send one command and return its reply."""
        self._ids += 1
        cmd_id = self._ids
        await self.ws.send(json.dumps({"id": cmd_id, **body}))
        return await self.expect(lambda m: m.get("id") == cmd_id, timeout)

    async def subscribe(self, channel: str) -> dict[str, Any]:
        reply = await self.command({"subscribe": {"channel": channel}})
        assert "subscribe" in reply, reply
        return reply

    async def _read(self, timeout: float) -> None:
        msg = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(msg, str)
        self.inbox.extend(json.loads(line) for line in msg.split("\n") if line)

    async def expect(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 3.0) -> Any:
        """Wait for (and remove) the first message matching ``pred``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, m in enumerate(self.inbox):
                if pred(m):
                    return self.inbox.pop(i)
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no matching message; inbox={self.inbox}")
            await self._read(left)

    async def push(self, kind: str, channel: str | None = None, timeout: float = 3.0) -> Any:
        """The next push of ``kind`` (``pub``, ``subscribe``, ``unsubscribe``, ...)."""

        def pred(m: dict[str, Any]) -> bool:
            p = m.get("push")
            return bool(p) and kind in p and (channel is None or p.get("channel") == channel)

        return (await self.expect(pred, timeout))["push"]

    async def closed(self, timeout: float = 3.0) -> tuple[int | None, str]:
        """Read until the server closes; return (code, reason)."""
        try:
            while True:
                await self._read(timeout)
        except websockets.ConnectionClosed:
            pass
        return self.ws.close_code, self.ws.close_reason or ""

    async def close(self) -> None:
        await self.ws.close()


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


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(relay: Any, http: aiohttp.ClientSession) -> API:
    return API(http, relay.api_url)
