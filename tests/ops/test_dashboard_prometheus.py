"""deploy/grafana/relay.json against a real Prometheus scraping a real relay.

A relay node (the real CLI: a front and two workers) gets WebSocket clients that connect,
subscribe, publish, recover, answer pings and send bad commands, and HTTP API calls, some
failing. Debian's ``prometheus`` scrapes it every second with deploy/prometheus/prometheus.yml
(targets and interval swapped for the test's). Then every target expression of every panel,
with its template variables filled in, is run through Prometheus' query API: each must
return at least one series with a number (not NaN), which is what a panel needs to draw.

With ``CENTRIFUGO_BIN`` (or ``~/go/bin/centrifugo``) the same check runs against the real
Centrifugo, minus the panels marked relay only (``relay_*`` families).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets
import yaml

from relay.auth import encode_hmac_token
from relay.metrics.families import FAMILIES
from tests.procutil import OPEN_CHANNELS, ROOT, free_port, spawn_relay, wait_port

PROMETHEUS = Path("/usr/bin/prometheus")
DASHBOARD = ROOT / "deploy/grafana/relay.json"
SCRAPE_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
SECRET = "dashboard-secret"
KEY = "dashboard-key"
CONFIG = {
    "client": {
        "token": {"hmac_secret_key": SECRET},
        "ping_interval": "1s",  # pings answered by every client: the ping/pong panel
        "pong_timeout": "800ms",
    },
    "http_api": {"key": KEY},
    "prometheus": {"enabled": True},
    "health": {"enabled": True},
    "channel": {
        "without_namespace": {**OPEN_CHANNELS, "join_leave": True, "force_push_join_leave": True}
    },
}
#: what Grafana would put for ``$__rate_interval`` etc.: longer than the whole test, so
#: every rate sees the traffic
RANGE = "2m"
ROUNDS = 4

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120), pytest.mark.flaky(reruns=1)]


@pytest.fixture(scope="module")
def event_loop_policy() -> asyncio.AbstractEventLoopPolicy:
    """One loop is enough here (the root conftest runs async tests on two)."""
    return asyncio.DefaultEventLoopPolicy()


# ---- the dashboard -----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    panel: str
    ref: str
    expr: str
    relay_only: bool


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside (collapsed) rows included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(board: dict[str, Any]) -> list[Target]:
    out = []
    for panel in panels(board):
        for target in panel.get("targets", []):
            expr = target["expr"]
            relay_only = "relay_" in expr
            out.append(Target(panel["title"], target["refId"], expr, relay_only))
    return out


def concrete(expr: str, job: str, instance: str) -> str:
    """``expr`` as Grafana sends it with one job and one instance selected (regex
    characters escaped, as a PromQL string literal holds them)."""
    values = {
        "job": re.escape(job).replace("\\", "\\\\"),
        "instance": re.escape(instance).replace("\\", "\\\\"),
        "__rate_interval": RANGE,
        "__interval": RANGE,
        "__range": RANGE,
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", fill, expr)


_METRIC = re.compile(r"\b((?:centrifugo|relay|process)_[a-z_]+)")
_SUFFIXES = ("_bucket", "_count", "_sum")


def test_dashboard_uses_exposed_families_and_variables() -> None:
    """Without Prometheus: names relay exposes, and every query filtered by job and instance."""
    board = dashboard()
    assert board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert {"job", "instance"} <= variables.keys()
    exposed = set(FAMILIES) | {"relay_worker_connections", "relay_bus_messages_total"}
    found = targets(board)
    assert len(found) > 30
    for panel in panels(board):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    for t in found:
        assert '$job"' in t.expr and '$instance"' in t.expr, t
        for name in _METRIC.findall(t.expr):
            if name.startswith("process_"):
                assert name in {
                    "process_cpu_seconds_total",
                    "process_resident_memory_bytes",
                    "process_open_fds",
                }, name
                continue
            base = next((name[: -len(s)] for s in _SUFFIXES if name.endswith(s)), name)
            assert name in exposed or base in exposed, f"{t.panel}: {name} is not exposed"
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))


# ---- traffic -----------------------------------------------------------------------------


class Client:
    """A JSON-protocol connection that answers server pings on its own."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.pushes: list[dict[str, Any]] = []
        self.pongs = 0
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, url: str, user: str) -> Client:
        client = cls(await websockets.connect(url))
        reply = await client.call("connect", {"token": encode_hmac_token({"sub": user}, SECRET)})
        assert "connect" in reply, reply
        return client

    async def _read(self) -> None:
        with suppress(websockets.ConnectionClosed):
            async for frame in self.ws:
                for line in str(frame).split("\n"):
                    msg = json.loads(line)
                    if not msg:  # a ping
                        await self.ws.send("{}")
                        self.pongs += 1
                    elif "id" in msg and msg["id"] in self._waiting:
                        self._waiting.pop(msg["id"]).set_result(msg)
                    else:
                        self.pushes.append(msg)

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        future = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        await self.ws.send(json.dumps({"id": self._next, method: params}))
        return await asyncio.wait_for(future, 5)

    async def close(self) -> None:
        await self.ws.close()
        await self._reader


class Node:
    """Where the traffic goes: a relay or Centrifugo process on ``port``."""

    def __init__(self, port: int, kind: str) -> None:
        self.port = port
        self.kind = kind
        self.ws_url = f"ws://127.0.0.1:{port}/connection/websocket"

    async def api(self, method: str, body: Any) -> dict[str, Any]:
        data = body if isinstance(body, str) else json.dumps(body)
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"http://127.0.0.1:{self.port}/api/{method}",
                data=data,
                headers={"X-API-Key": KEY, "Content-Type": "application/json"},
            ) as resp:
                text = await resp.text()
                return {"status": resp.status, **(json.loads(text) if resp.status == 200 else {})}


async def drive(node: Node) -> None:
    """Touch every family the dashboard reads, over ``ROUNDS`` rounds about a second apart
    (so counters and histograms grow between scrapes)."""
    clients = [await Client.open(node.ws_url, f"user{i}") for i in range(4)]
    for c in clients:
        assert "subscribe" in await c.call("subscribe", {"channel": "room"})
    epoch = ""
    for round_ in range(ROUNDS):
        for i, c in enumerate(clients):
            reply = await c.call("publish", {"channel": "room", "data": {"n": round_, "i": i}})
            assert "publish" in reply, reply
            await c.call("presence_stats", {"channel": "room"})
            history = await c.call("history", {"channel": "room", "limit": 1})
            epoch = history["history"]["epoch"]
        # client errors: unknown channel (102), already subscribed (105), rpc (no proxy)
        assert "error" in await clients[0].call("subscribe", {"channel": "nope:x"})
        assert "error" in await clients[1].call("subscribe", {"channel": "room"})
        assert "error" in await clients[2].call("rpc", {"method": "m", "data": {}})
        # a recovering subscription, then one the server ends (unsubscribe API)
        late = await Client.open(node.ws_url, f"late{round_}")
        reply = await late.call(
            "subscribe", {"channel": "room", "recover": True, "epoch": epoch, "offset": 1}
        )
        assert reply["subscribe"].get("recovered") is True, reply
        await node.api("unsubscribe", {"user": f"late{round_}", "channel": "room"})
        # a server disconnect (disconnect API), and a bad frame (bad request close)
        await node.api("disconnect", {"user": f"late{round_}"})
        await late.close()
        bad = await websockets.connect(node.ws_url)
        await bad.send("not json")
        with suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(bad.recv(), 5)
        await bad.close()
        # the server API: ok calls, a duplicate idempotent publish, two failures
        for method, body in (
            ("publish", {"channel": "room", "data": {"api": round_}}),
            ("publish", {"channel": "room", "data": {}, "idempotency_key": f"k{round_}"}),
            ("publish", {"channel": "room", "data": {}, "idempotency_key": f"k{round_}"}),
            ("broadcast", {"channels": ["room", "other"], "data": {"b": round_}}),
            ("presence", {"channel": "room"}),
            ("history", {"channel": "room", "limit": 2}),
            ("channels", {}),
            ("info", {}),
        ):
            res = await node.api(method, body)
            assert res["status"] == 200 and "error" not in res, (method, res)
        assert "error" in await node.api("publish", {"channel": "nope:x", "data": {}})
        assert (await node.api("publish", "{not json"))["status"] == 400
        await asyncio.sleep(1.1)
    assert all(c.pongs for c in clients), "no server pings answered"
    for c in clients:
        await c.close()


# ---- processes ---------------------------------------------------------------------------


def centrifugo_binary() -> str | None:
    path = os.environ.get("CENTRIFUGO_BIN") or os.path.expanduser("~/go/bin/centrifugo")
    return path if os.access(path, os.X_OK) else shutil.which("centrifugo")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(params=["relay", "centrifugo"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Node]:
    if not PROMETHEUS.exists():
        pytest.skip(f"{PROMETHEUS} not installed (Debian: apt-get install prometheus)")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(CONFIG))
    port = free_port()
    if request.param == "relay":
        proc = spawn_relay(cfg, port, workers=2)
    else:
        binary = centrifugo_binary()
        if binary is None:
            pytest.skip("no Centrifugo binary (set CENTRIFUGO_BIN to check the dashboard on it)")
        proc = subprocess.Popen(
            [binary, "-c", str(cfg), "-p", str(port), "-a", "127.0.0.1", "--log.level", "error"]
        )
    try:
        await wait_port(port)
        await asyncio.sleep(0.5)  # relay: both workers up
        yield Node(port, request.param)
    finally:
        stop(proc)


@dataclass
class Prometheus:
    url: str
    job: str

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{self.url}/api/v1/query", params={"query": expr}) as resp:
                body = await resp.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result


@pytest.fixture
async def prometheus(server: Node, tmp_path: Path) -> AsyncIterator[Prometheus]:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"]["scrape_interval"] = config["global"]["evaluation_interval"] = "1s"
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{server.port}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    prom = Prometheus(f"http://127.0.0.1:{port}", job["job_name"])
    try:
        await wait_port(port, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the target scraped twice, both up
            with suppress(aiohttp.ClientError, AssertionError):
                if await prom.query(f'sum_over_time(up{{job="{prom.job}"}}[1m]) >= 2'):
                    break
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("Prometheus did not scrape the node: " + path.read_text())
        yield prom
    finally:
        stop(proc)
        log.close()


async def test_every_panel_query_returns_data(server: Node, prometheus: Prometheus) -> None:
    await drive(server)
    await asyncio.sleep(3)  # the last round's counts flushed (1 s) and scraped (1 s)
    instance = f"127.0.0.1:{server.port}"
    empty, nan = [], []
    checked = 0
    for t in targets(dashboard()):
        if t.relay_only and server.kind != "relay":
            continue
        result = await prometheus.query(concrete(t.expr, prometheus.job, instance))
        checked += 1
        if not result:
            empty.append(f"{t.panel} [{t.ref}]: {t.expr}")
        elif all(math.isnan(float(r["value"][1])) for r in result):
            nan.append(f"{t.panel} [{t.ref}]: {t.expr}")
    assert checked > 30
    assert not empty, "panel queries without data:\n" + "\n".join(empty)
    assert not nan, "panel queries with only NaN:\n" + "\n".join(nan)
