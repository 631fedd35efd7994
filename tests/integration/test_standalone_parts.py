"""A standalone ``broker`` and ``presence_manager`` of type memory (Centrifugo's keys):
with both enabled the engine is not made, with one the other part stays the engine's;
history, presence and join/leave work either way, with one worker and with two."""

from __future__ import annotations

from dataclasses import replace

import pytest

from relay.config.engine_tree import BrokerConfig, PresenceManagerConfig
from tests.conftest import make_config, run_server, token
from tests.integration.wsutil import RawClient

BOTH = {
    "broker": BrokerConfig(enabled=True),
    "presence_manager": PresenceManagerConfig(enabled=True),
}


@pytest.mark.parametrize(
    "parts",
    [BOTH, {"broker": BrokerConfig(enabled=True)},
     {"presence_manager": PresenceManagerConfig(enabled=True)}],
    ids=["both", "broker", "presence_manager"],
)  # fmt: skip
async def test_memory_broker_and_presence_manager(mode: str, parts: dict[str, object]) -> None:
    config = replace(make_config(), **parts)  # type: ignore[arg-type]
    async with run_server(config, mode) as handle:
        a = await RawClient.open(handle.ws_url)
        await a.connect(token=token("ann"))
        b = await RawClient.open(handle.ws_url)
        await b.connect(token=token("bob"))
        for c in (a, b):
            assert "subscribe" in await c.call("subscribe", {"channel": "chat:room"})
        joins = [(await a.push("join", "chat:room"))["join"]["info"]["user"] for _ in range(2)]
        assert joins == ["ann", "bob"]  # its own join first (force_push_join_leave)
        res = await a.call("publish", {"channel": "chat:room", "data": {"n": 1}})
        assert "publish" in res
        for c in (a, b):
            pub = (await c.push("pub", "chat:room"))["pub"]
            assert pub["data"] == {"n": 1} and pub["offset"] == 1
        hist = await b.call("history", {"channel": "chat:room", "limit": -1})
        assert [p["data"] for p in hist["history"]["publications"]] == [{"n": 1}]
        presence = await b.call("presence", {"channel": "chat:room"})
        assert len(presence["presence"]["presence"]) == 2
        await a.close()
        await b.close()
