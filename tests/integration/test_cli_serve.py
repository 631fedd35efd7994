"""`relay --config FILE` as a real process: env vars, flags, serving, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.auth import encode_hmac_token
from tests.integration.wsutil import RawClient
from tests.procutil import free_port, scrape_until, wait_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def relay_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "health": {"enabled": True},
                "prometheus": {"enabled": True},
                "channel": {"without_namespace": {"allow_subscribe_for_client": True}},
            }
        )
    )
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": "cli-secret",
            "CENTRIFUGO_HTTP_API_KEY": "cli-key",
            "CENTRIFUGO_UNKNOWN_THING": "1",
        }
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relay",
            "--config",
            str(cfg),
            "-p",
            str(port),
            "-a",
            "127.0.0.1",
            "--log.level",
            "info",
        ],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


async def test_serve_publish_and_sigterm(relay_process: Any) -> None:
    proc, port = relay_process
    await wait_port(port)
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/health") as resp:
            assert resp.status == 200 and await resp.json() == {}
    c = await RawClient.open(f"ws://127.0.0.1:{port}/connection/websocket")
    await c.connect(token=encode_hmac_token({"sub": "u1"}, "cli-secret"))
    await c.call("subscribe", {"channel": "news"})
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/api/publish",
            json={"channel": "news", "data": {"x": 1}},
            headers={"X-API-Key": "cli-key"},
        ) as resp:
            assert resp.status == 200
        needle = "centrifugo_node_num_clients 1\n"  # once the client's worker flushed
        assert needle in await scrape_until(http, f"{base}/metrics", needle)
    assert (await c.push("pub", "news"))["pub"]["data"] == {"x": 1}
    closing = asyncio.ensure_future(c.closed(timeout=5))
    proc.send_signal(signal.SIGTERM)
    assert await closing == (3001, "shutdown")
    loop = asyncio.get_running_loop()
    rc = await loop.run_in_executor(None, proc.wait, 5)
    assert rc == 0
    stderr = proc.stderr.read().decode()
    assert "unknown var in environment" in stderr and "CENTRIFUGO_UNKNOWN_THING" in stderr
