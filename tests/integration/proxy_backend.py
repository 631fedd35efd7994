"""A real application backend for the proxy tests: an aiohttp app on port 0.

Every proxy endpoint is ``POST /<kind>`` (``connect``, ``refresh``, ``subscribe``,
``publish``, ``rpc``, ``sub_refresh``); each request is recorded (headers and decoded
body). What it answers is scripted per kind with :meth:`Backend.script`: a JSON value
(sent as written, so raw fields keep their spacing), or one of the bad answers ``SLOW``
(sleeps 2 s, past the tests' proxy timeouts), ``STATUS_500``, ``BAD_JSON``, ``HUGE`` (a body over
relay's limit) and ``RESET`` (closes the connection without an answer). Unscripted
kinds accept with an empty result.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SLOW, STATUS_500, BAD_JSON, HUGE, RESET = "slow", "500", "bad json", "huge", "reset"


@dataclass
class Seen:
    kind: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Backend:
    answers: dict[str, Any] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    def script(self, kind: str, answer: Any) -> None:
        self.answers[kind] = answer

    def requests(self, kind: str) -> list[Seen]:
        return [s for s in self.seen if s.kind == kind]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        raw = await request.read()
        self.seen.append(Seen(kind, dict(request.headers), json.loads(raw)))
        answer = self.answers.get(kind, {"result": {}})
        if callable(answer):
            answer = answer(self.seen[-1].body)
        if answer == SLOW:
            await asyncio.sleep(2)
            return web.json_response({"result": {}})
        if answer == STATUS_500:
            return web.Response(status=500, text="boom")
        if isinstance(answer, str) and answer.startswith("status:"):  # any HTTP status
            return web.Response(status=int(answer[7:]), text="no")
        if answer == BAD_JSON:
            return web.Response(text='{"result": ', content_type="application/json")
        if answer == HUGE:
            return web.Response(body=b" " * (17 * 1024 * 1024), content_type="application/json")
        if answer == RESET:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return web.Response(text=text, content_type="application/json")

    async def start(self, tls: ssl.SSLContext | None = None) -> Backend:
        """Serve on a free port; over HTTPS (``localhost``) with ``tls``."""
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post("/{kind}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(self._runner, sock, ssl_context=tls)
        await site.start()
        port = sock.getsockname()[1]
        self.url = f"https://localhost:{port}" if tls else f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def closed_port() -> int:
    """A local port nothing listens on (connection refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port
