"""The npm ``centrifuge`` SDK (5.8.0) in ``http_stream`` and ``sse`` modes under Node.js.

``tests/node/session.mjs`` runs one SDK client (Node's own ``fetch``, the
``eventsource`` package as the SDK's tests use it) and prints its events; the test
drives it over stdin and the server API, with one worker and two. ``.ci/run`` installs
the packages (``npm ci`` in ``tests/node``); without Node.js or them the tests skip.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import API_KEY, token
from tests.integration.test_emulation import emulation_config

HERE = Path(__file__).resolve().parent.parent / "node"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed"),
    pytest.mark.skipif(
        not (HERE / "node_modules" / "centrifuge").is_dir(),
        reason="npm packages missing: run `npm --prefix tests/node ci`",
    ),
]

TIMEOUT = 10.0


class NodeClient:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def event(self, name: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), TIMEOUT)
            assert line, "the SDK process ended"
            event = json.loads(line)
            if event["event"] == name:
                return dict(event)
            assert event["event"] not in ("error", "sub_error", "call_error"), event

    async def send(self, action: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(action.encode() + b"\n")
        await self.proc.stdin.drain()


@pytest.mark.parametrize(
    ("transport", "fmt"), [("http_stream", "json"), ("http_stream", "protobuf"), ("sse", "json")]
)
async def test_sdk_session(server_factory: Any, transport: str, fmt: str) -> None:
    assert NODE is not None
    async with server_factory(emulation_config()) as srv, aiohttp.ClientSession() as s:
        proc = await asyncio.create_subprocess_exec(
            NODE,
            str(HERE / "session.mjs"),
            srv.http_url,
            transport,
            fmt,
            token("node-user"),
            "chat:sdk",
            cwd=HERE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        client = NodeClient(proc)
        try:
            assert (await client.event("connected"))["transport"] == transport
            assert (await client.event("subscribed"))["recoverable"] is True
            await client.send("publish")  # client -> server through /emulation
            assert (await client.event("publication"))["data"] == {"from": "node"}
            await client.event("published")
            body = {"channel": "chat:sdk", "data": {"from": "api"}}
            async with s.post(
                srv.api_url + "/publish", json=body, headers={"X-API-Key": API_KEY}
            ) as r:
                assert r.status == 200
            assert (await client.event("publication"))["data"] == {"from": "api"}
            await client.send("presence")
            assert (await client.event("presence"))["clients"] == 1
            await client.send("rpc-history")
            history = await client.event("history")
            assert history["data"] == [{"from": "node"}, {"from": "api"}]
            body = {"user": "node-user", "disconnect": {"code": 4500, "reason": "bye"}}
            async with s.post(
                srv.api_url + "/disconnect", json=body, headers={"X-API-Key": API_KEY}
            ) as r:
                assert r.status == 200
            assert (await client.event("disconnected"))["code"] == 4500
            await client.send("disconnect")
            await client.event("done")
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
