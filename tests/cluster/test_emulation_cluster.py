"""Emulation sessions across real worker processes: commands posted to whichever worker
the front picks reach the worker holding the session; a killed worker's sessions end."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.auth import encode_hmac_token
from tests.cluster.test_cluster import children
from tests.procutil import OPEN_CHANNELS, free_port, spawn_relay, wait_port

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

SECRET = "emu-secret"
CONFIG = {
    "client": {"token": {"hmac_secret_key": SECRET}},
    "http_api": {"key": "k"},
    "http_stream": {"enabled": True},
    "sse": {"enabled": True},
    "channel": {"without_namespace": OPEN_CHANNELS},
}
JSON_HEADERS = {"Content-Type": "application/json"}
TIMEOUT = 10.0


@pytest.fixture
async def port(tmp_path: Path) -> AsyncIterator[tuple[int, subprocess.Popen[bytes]]]:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    port = free_port()
    proc = spawn_relay(cfg, port, workers=2)
    try:
        await wait_port(port)
        deadline = time.monotonic() + 10
        while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _line(response: aiohttp.ClientResponse) -> Any:
    while True:
        line = await asyncio.wait_for(response.content.readline(), TIMEOUT)
        if not line:
            return None  # the stream ended
        if line.strip():
            return json.loads(line)


async def _ends(response: aiohttp.ClientResponse) -> bool:
    """The stream ends (cut mid-chunk when its worker is killed); no timeout."""
    try:
        while await _line(response) is not None:
            pass
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
        pass
    return True


async def test_commands_reach_the_session_on_any_worker(
    port: tuple[int, subprocess.Popen[bytes]],
) -> None:
    base = f"http://127.0.0.1:{port[0]}"
    tok = encode_hmac_token({"sub": "u"}, SECRET)
    connect = json.dumps({"id": 1, "connect": {"token": tok}})
    async with aiohttp.ClientSession() as s1, aiohttp.ClientSession() as s2:
        streams = [
            await s.post(base + "/connection/http_stream", data=connect, headers=JSON_HEADERS)
            for s in (s1, s2)
        ]
        sessions = [(await _line(r))["connect"] for r in streams]
        connector = aiohttp.TCPConnector(force_close=True)  # a new connection per post
        async with aiohttp.ClientSession(connector=connector) as poster:
            for i in range(4):
                for n, sess in enumerate(sessions):
                    data = json.dumps({"id": 10 + i, "subscribe": {"channel": f"c{n}-{i}"}})
                    body = {"node": sess["node"], "session": sess["session"], "data": data}
                    async with poster.post(base + "/emulation", json=body) as r:
                        assert r.status == 204
            for r in streams:
                ids = [(await _line(r))["id"] for _ in range(4)]
                assert sorted(ids) == [10, 11, 12, 13]
            # kill every worker process but the front: each session ends with its worker
            for pid in children(port[1].pid).values():
                os.kill(pid, signal.SIGKILL)
            for r in streams:
                assert await _ends(r)
        for r in streams:
            r.close()
