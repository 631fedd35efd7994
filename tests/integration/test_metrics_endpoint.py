"""``/metrics`` of a real server under real traffic: Centrifugo's families move with it."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

import aiohttp

from relay.config import EndpointConfig
from tests.conftest import make_config, run_server, token
from tests.integration.conftest import API
from tests.integration.wsutil import RawClient


def value(text: str, series: str) -> float:
    """The value of the one sample line that starts with ``series``."""
    lines = [ln for ln in text.splitlines() if ln.startswith(series + " ")]
    assert len(lines) == 1, (series, [ln for ln in text.splitlines() if series[:40] in ln])
    return float(lines[0].rsplit(" ", 1)[1])


async def test_metrics_move_with_traffic(http: aiohttp.ClientSession) -> None:
    """One worker in process (tests/cluster/ checks the sum over worker processes)."""
    cfg = replace(make_config(), prometheus=EndpointConfig(enabled=True, handler_prefix="/metrics"))
    async with run_server(cfg) as srv:
        client = await RawClient.open(srv.ws_url)
        await client.connect(token=token("m1"), name="", version="")
        await client.call("subscribe", {"channel": "chat:m"})
        await API(http, srv.api_url).call("publish", {"channel": "chat:m", "data": {"n": 1}})
        await client.push("pub", "chat:m")
        await client.call("presence", {"channel": "chat:m"})

        async def scrape() -> str:
            async with http.get(srv.http_url + "/metrics") as r:
                assert r.status == 200
                return await r.text()

        text = await scrape()
        labels = 'accept_protocol="",client_name="unnamed",client_version="unversioned"'
        accepted = f'centrifugo_client_connections_accepted{{{labels},transport="websocket"}}'
        inflight = f'centrifugo_client_connections_inflight{{{labels},transport="websocket"}}'
        assert value(text, accepted) == 1 and value(text, inflight) == 1
        ws = ',transport="websocket"}'
        sent = 'centrifugo_transport_messages_sent{channel_namespace="",frame_type="%s"' + ws
        assert value(text, sent % "push_publication") == 1
        assert value(text, sent % "subscribe") == 1
        received = (
            'centrifugo_transport_messages_received{channel_namespace="",frame_type="%s"' + ws
        )
        assert value(text, received % "connect") == 1
        node_sent = 'centrifugo_node_messages_sent_count{channel_namespace="",type="publication"}'
        assert value(text, node_sent) == 1
        action = 'centrifugo_node_action_count{action="%s",channel_namespace=""}'
        assert value(text, action % "add_client") == 1 and value(text, action % "presence") == 1
        summary = (
            'centrifugo_client_command_duration_seconds{channel_namespace="",method="subscribe"'
        )
        quantile = summary + ',quantile="0.99"}'
        assert 0 < value(text, quantile) < 1
        assert re.search(r"centrifugo_node_broadcast_duration_seconds_count\S* 1\n", text)
        await client.close()
        for _ in range(50):  # the closed connection leaves the inflight gauge
            text = await scrape()
            if value(text, inflight) == 0:
                break
            await asyncio.sleep(0.05)
        assert value(text, inflight) == 0
        assert value(text, accepted) == 1


async def test_join_and_leave_frames_are_counted(http: aiohttp.ClientSession) -> None:
    """4 subscribers of a join/leave channel join one by one, then the last leaves: each
    gets its own join and the later ones' (4+3+2+1 ``push_join`` frames) and the 3 left
    get the leave, the counts Centrifugo 6.9.1 shows for the same traffic."""
    cfg = replace(make_config(), prometheus=EndpointConfig(enabled=True, handler_prefix="/metrics"))
    async with run_server(cfg) as srv:
        clients = []
        for i in range(4):
            c = await RawClient.open(srv.ws_url)
            await c.connect(token=token(f"j{i}"))
            await c.call("subscribe", {"channel": "chat:jl"})
            clients.append(c)
        for i, c in enumerate(clients):  # each sees the joins of itself and later ones
            for _ in range(4 - i):
                await c.push("join", "chat:jl")
        await clients[3].close()
        for c in clients[:3]:
            await c.push("leave", "chat:jl")
        srv.node.metrics.flush()
        async with http.get(srv.http_url + "/metrics") as r:
            text = await r.text()
        sent = 'centrifugo_transport_messages_sent{channel_namespace="",frame_type="%s"'
        sent += ',transport="websocket"}'
        assert value(text, sent % "push_join") == 4 + 3 + 2 + 1
        assert value(text, sent % "push_leave") == 3
        for c in clients[:3]:
            await c.close()
