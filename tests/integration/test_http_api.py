"""HTTP server API against a real relay server: wire details, then the ``cent`` client.

Spec: spec/server-surface.md §4, §8.3, §11; spec/reliability.md §2 E.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from cent import (
    AsyncClient,
    BatchRequest,
    BroadcastRequest,
    CentApiResponseError,
    CentTransportError,
    CentUnauthorizedError,
    ChannelOptionsOverride,
    ChannelsRequest,
    DisconnectRequest,
    HistoryRemoveRequest,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
    RefreshRequest,
    StreamPosition,
    SubscribeRequest,
    UnsubscribeRequest,
)
from cent.dto import BoolValue, Disconnect

from relay.config import EndpointConfig, HTTPAPIConfig
from tests.conftest import API_KEY, make_config, token
from tests.integration.conftest import API, WSClient
from tests.integration.wsutil import RawClient

BATCH_E7 = [
    None,
    {"foo": {}},
    {"publish": {"channel": "nope:x", "data": {}}},
    {"publish": {"channel": "chat:1", "data": {"a": 1}}},
]


def err(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# =========================================================================================
# wire: routing, methods, auth
# =========================================================================================
async def test_publish_without_history_returns_empty_result(api: API) -> None:
    status, body, headers = await api.raw("/publish", '{"channel":"news","data":{"t":"hi"}}')
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"result": {}}


async def test_publish_with_history_returns_position(api: API) -> None:
    first = await api.call("publish", {"channel": "chat:1", "data": {"n": 1}})
    second = await api.call("publish", {"channel": "chat:1", "data": {"n": 2}})
    assert first["result"]["offset"] == 1
    assert second["result"] == {"offset": 2, "epoch": first["result"]["epoch"]}
    assert len(first["result"]["epoch"]) == 8


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"channel": "nope:x", "data": {}}, 102),
        ({"channel": "", "data": {}}, 107),
        ({"data": {}}, 107),
        ({"channel": "chat:1", "b64data": "!!not base64"}, 107),
        ({"channel": "chat:1"}, 107),
        ({"channel": "nope:x", "b64data": "%%%"}, 107),
    ],
)
async def test_publish_application_errors(api: API, params: dict[str, Any], code: int) -> None:
    body = await api.call("publish", params)
    message = {102: "unknown channel", 107: "bad request"}[code]
    assert body == err(code, message)


async def test_publish_null_data_counts_as_present(api: API) -> None:
    assert await api.call("publish", {"channel": "news", "data": None}) == {"result": {}}


async def test_publish_b64data_and_idempotency(api: API) -> None:
    b64 = base64.b64encode(b'{"x":1}').decode()
    one = await api.call("publish", {"channel": "hist:a", "b64data": b64, "idempotency_key": "k"})
    two = await api.call("publish", {"channel": "hist:a", "data": 5, "idempotency_key": "k"})
    assert one == two and one["result"]["offset"] == 1
    hist = await api.call("history", {"channel": "hist:a", "limit": -1})
    assert [p["data"] for p in hist["result"]["publications"]] == [{"x": 1}]


async def test_publish_versions_suppress_stale_state(api: API) -> None:
    """``version``/``version_epoch`` as Centrifugo 6.9.1 answers them (checked side by
    side): a stale version gets the stream's top and is not stored; batch and broadcast
    carry versions too."""

    async def offset(method: str, params: dict[str, Any]) -> Any:
        return (await api.call(method, params))["result"]["offset"]

    pub = {"channel": "hist:v", "data": {"a": 1}}
    assert await offset("publish", {**pub, "version": 2}) == 1
    assert await offset("publish", {**pub, "version": 2}) == 1
    assert await offset("publish", {**pub, "version": 1, "version_epoch": ""}) == 1
    assert await offset("publish", {**pub, "version": 3, "version_epoch": "x"}) == 2
    assert await offset("publish", {**pub, "version": 3}) == 2
    assert await offset("publish", {**pub, "version": 1, "version_epoch": "y"}) == 3
    batch = {
        "commands": [
            {"publish": {**pub, "version": 5}},
            {"publish": {**pub, "version": 5}},
            {"publish": {**pub, "version": 6}},
        ]
    }
    replies = (await api.call("batch", batch))["replies"]
    assert [r["publish"]["offset"] for r in replies] == [4, 4, 5]
    cast = {"channels": ["hist:v", "hist:w"], "data": 1, "version": 6}
    responses = (await api.call("broadcast", cast))["result"]["responses"]
    assert [r["result"]["offset"] for r in responses] == [5, 1]
    hist = await api.call("history", {"channel": "hist:v", "limit": -1})
    assert [p["offset"] for p in hist["result"]["publications"]] == [3, 4, 5]  # size 3


async def test_batch_of_distinct_channels_gets_each_namespace_right(api: API) -> None:
    """Options are memoised per namespace within a batch: every channel still gets its
    own namespace's (history or not, 102 for an unknown one)."""
    channels = ["hist:n1", "plain1", "nope:x", "hist:n2", "plain2", "nope:y", "hist:n1"]
    batch = {"commands": [{"publish": {"channel": c, "data": 1}} for c in channels]}
    replies = (await api.call("batch", batch))["replies"]
    unknown = {"error": {"code": 102, "message": "unknown channel"}}
    assert [r.get("publish", r).get("offset", r.get("error", {}).get("code")) for r in replies] == [
        1, None, 102, 1, None, 102, 2,
    ]  # fmt: skip
    assert replies[1] == {"publish": {}} and replies[2] == unknown


async def test_transport_error_mode_header(api: API) -> None:
    hdr = {"X-Centrifugo-Error-Mode": "transport"}
    status, body, _ = await api.raw("/publish", '{"channel":"nope:x","data":1}', headers=hdr)
    assert (status, json.loads(body)) == (404, {"code": 102, "message": "unknown channel"})
    status, body, _ = await api.raw("/publish", '{"channel":"","data":1}', headers=hdr)
    assert (status, json.loads(body)) == (400, {"code": 107, "message": "bad request"})
    status, body, _ = await api.raw("/presence", '{"channel":"hist:a"}', headers=hdr)
    assert (status, json.loads(body)) == (400, {"code": 108, "message": "not available"})
    status, body, _ = await api.raw("/rpc", '{"method":"x"}', headers=hdr)
    assert (status, json.loads(body)) == (404, {"code": 104, "message": "not found"})
    status, body, _ = await api.raw("/publish", '{"channel":"news","data":1}', headers=hdr)
    assert (status, json.loads(body)) == (200, {"result": {}})


async def test_transport_error_mode_config(
    server_factory: Any, http: aiohttp.ClientSession
) -> None:
    cfg = make_config(http_api=HTTPAPIConfig(key=API_KEY, error_mode="transport"))
    async with server_factory(cfg) as srv:
        api = API(http, srv.api_url)
        status, body, _ = await api.raw("/publish", '{"channel":"nope:x","data":1}')
        assert (status, json.loads(body)) == (404, {"code": 102, "message": "unknown channel"})
        # batch is never in transport mode
        status, body, _ = await api.raw("/batch", json.dumps({"commands": BATCH_E7}))
        assert status == 200
        # broadcast: only top-level errors become statuses
        status, body, _ = await api.raw("/broadcast", '{"channels":[],"data":1}')
        assert (status, json.loads(body)) == (400, {"code": 107, "message": "bad request"})
        status, body, _ = await api.raw("/broadcast", '{"channels":["nope:x"],"data":1}')
        assert status == 200
        assert json.loads(body)["result"]["responses"] == [err(102, "unknown channel")]


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({}, ""),
        ({"X-API-Key": "wrong"}, ""),
        ({"Authorization": f"Bearer {API_KEY}"}, ""),
        ({"Authorization": f"apikey {API_KEY} extra"}, ""),
        ({"Authorization": "apikey wrong"}, ""),
        ({}, "?api_key=wrong"),
        ({"X-API-Key": "wrong", "Authorization": f"apikey {API_KEY}"}, ""),
    ],
)
async def test_auth_rejected(api: API, headers: dict[str, str], query: str) -> None:
    status, body, _ = await api.raw("/info" + query, "{}", headers=headers, key=None)
    assert (status, body) == (401, b"")


@pytest.mark.parametrize(
    ("headers", "query"),
    [
        ({"X-API-Key": API_KEY}, ""),
        ({"Authorization": f"apikey {API_KEY}"}, ""),
        ({"Authorization": f"APIKey   {API_KEY}"}, ""),
        ({}, f"?api_key={API_KEY}"),
        ({"X-API-Key": "wrong"}, f"?api_key={API_KEY}"),
        ({"X-API-Key": "", "Authorization": f"apikey {API_KEY}"}, ""),
    ],
)
async def test_auth_accepted(api: API, headers: dict[str, str], query: str) -> None:
    status, body, _ = await api.raw("/info" + query, "{}", headers=headers, key=None)
    assert status == 200
    assert "nodes" in json.loads(body)["result"]


async def test_empty_key_fails_closed(
    server_factory: Any, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with server_factory(make_config(http_api=HTTPAPIConfig(key=""))) as srv:
        api = API(http, srv.api_url)
        with caplog.at_level(logging.ERROR, logger="relay.api"):
            status, body, _ = await api.raw("/info", "{}", key="")
            status2, _, _ = await api.raw("/info?api_key=", "{}", key=None)
        assert (status, body, status2) == (401, b"", 401)
        assert [r.getMessage() for r in caplog.records if r.name == "relay.api"] == [
            "API key is empty",
            "API key is empty",
        ]


async def test_insecure_api_needs_no_key(server_factory: Any, http: aiohttp.ClientSession) -> None:
    async with server_factory(make_config(http_api=HTTPAPIConfig(insecure=True))) as srv:
        status, _, _ = await API(http, srv.api_url).raw("/info", "{}", key=None)
        assert status == 200


@pytest.mark.parametrize("path", ["/publish", "/batch", ""])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_non_post_is_405_before_auth(api: API, path: str, method: str) -> None:
    status, body, _ = await api.raw(path, None, method=method, key=None)
    assert (status, body) == (405, b"")


@pytest.mark.parametrize("path", ["/xyz", "/connections", "/update_user_status"])
async def test_unknown_method_is_404(api: API, path: str) -> None:
    status, body, _ = await api.raw(path, "{}")
    assert (status, body) == (404, b"404 page not found\n")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/info", ""),
        ("/info", "{"),
        ("/info", "[]"),
        ("/info", '{"a":1} x'),
        ("/publish", '{"channel":1,"data":{}}'),
        ("/publish", '{"channel":"chat:1","data":NaN}'),
        ("/publish", '{"channel":"chat:1","data":1,"skip_history":"yes"}'),
        ("/publish", '{"channel":"chat:1","data":1,"tags":{"a":1}}'),
        ("/broadcast", '{"channels":"chat:1","data":1}'),
        ("/history", '{"channel":"chat:1","limit":1.5}'),
        ("/history", '{"channel":"chat:1","limit":4294967296}'),
        ("/history", '{"channel":"chat:1","since":{"offset":-1}}'),
        ("/disconnect", '{"user":"42","disconnect":{"code":"x"}}'),
        ("/subscribe", '{"user":"42","channel":"x","override":{"presence":{"value":1}}}'),
        ("/batch", '{"commands":[{"publish":{"channel":5}}]}'),
        ("/batch", '{"commands":[5]}'),
        ("/publish", '{"channel":"chat:1","data":1,"version":18446744073709551616}'),
        (
            "/batch",
            '{"commands":[{"publish":{"channel":"chat:1","version":18446744073709551616}}]}',
        ),
        (
            "/batch",
            '{"commands":[{"publish":{"channel":"chat:1","data":1}},{"Publish":{"tags":1}}]}',
        ),
        ("/batch", '{"commands":[{"publish":{"channel":"chat:1","data":1}}], "parallel":1}'),
    ],
)
async def test_undecodable_body_is_400(api: API, path: str, body: str) -> None:
    status, data, headers = await api.raw(path, body)
    assert (status, data) == (400, b"Bad Request\n")
    assert headers["Content-Type"].startswith("text/plain")


async def test_field_names_are_case_insensitive_and_unknown_ignored(api: API) -> None:
    body = await api.call("publish", {"Channel": "chat:2", "DATA": {"a": 1}, "extra": [1]})
    assert body["result"]["offset"] == 1
    body = await api.call("info", None)  # a null body counts as {}
    assert body["result"]["nodes"][0]["num_clients"] == 0


RAW_DATA = b'{"a": 1,\n "b":[1.50, 1E5, "\\u00e9\\/"],\t"c":\r\n2}'


@pytest.mark.parametrize("path", ["publish", "batch"])
async def test_api_data_passes_through_as_sent(relay: Any, api: API, path: str) -> None:
    """As Centrifugo 6.9.1 does: the bytes of ``data`` as sent, newlines removed."""
    ws = await RawClient.open(relay.ws_url, protobuf=True)
    await ws.connect(token=token("42"))
    await ws.call("subscribe", {"channel": "chat:raw"})
    publish = b'{"channel":"chat:raw","data":' + RAW_DATA + b"}"
    body = publish if path == "publish" else b'{"commands":[{"publish":' + publish + b"}]}"
    status, _, _ = await api.raw("/" + path, body)
    assert status == 200
    push = await ws.push("pub", "chat:raw")
    assert push["pub"]["data"] == RAW_DATA.replace(b"\n", b"")
    await ws.close()


async def test_batch_of_canonical_and_other_spellings(relay: Any, api: API) -> None:
    """Items the typed decoder does not take go through the exact decoder, in order."""
    body = (
        b'{"commands":[{"publish":{"channel":"chat:5","data":{"n": 1}}},'
        b'{"Publish":{"Channel":"chat:5","data":{"n": 2}}},'
        b'{"publish":{"channel":"chat:5","data":{"n":3},"tags":null}},'
        b'{"history":{"channel":"chat:5","limit":-1}}]}'
    )
    status, data, _ = await api.raw("/batch", body)
    assert status == 200
    replies = json.loads(data)["replies"]
    assert [r["publish"]["offset"] for r in replies[:3]] == [1, 2, 3]
    pubs = replies[3]["history"]["publications"]
    assert [p["data"] for p in pubs] == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_info_shape(api: API, relay: Any) -> None:
    body = await api.call("info", {})
    (node,) = body["result"]["nodes"]
    assert node["uid"] == relay.node.uid
    assert node["version"].endswith(" OSS")
    assert list(node)[:6] == [
        "uid",
        "name",
        "version",
        "num_clients",
        "num_users",
        "num_channels",
    ]
    assert node["num_clients"] == 0 and node["num_subs"] == 0
    metrics = node["metrics"]
    assert metrics["interval"] == 60.0
    assert metrics["items"]["centrifugo.node.num_clients"] == 0.0
    assert metrics["items"][f"centrifugo.node.build.version.{node['version']}"] == 1.0


@pytest.mark.parametrize("parallel", [False, True])
async def test_batch_mixed_errors(api: API, parallel: bool) -> None:
    body = await api.call("batch", {"commands": BATCH_E7, "parallel": parallel})
    replies = body["replies"]
    assert replies[:3] == [
        err(107, "bad request"),
        err(104, "not found"),
        err(102, "unknown channel"),
    ]
    assert set(replies[3]["publish"]) == {"offset", "epoch"}


async def test_batch_shapes(api: API) -> None:
    assert await api.call("batch", {"commands": []}) == {}
    assert await api.call("batch", {}) == {}
    body = await api.call(
        "batch",
        {
            "commands": [
                {"publish": {"channel": "a", "data": {}}},
                {"presence": {"channel": "hist:x"}},
            ]
        },
    )
    assert body == {"replies": [{"publish": {}}, err(108, "not available")]}
    body = await api.call("batch", {"commands": [{"Info": {}}, {"rpc": {"method": ""}}]})
    assert list(body["replies"][0]) == ["info"]
    assert body["replies"][1] == err(107, "bad request")


async def test_broadcast_responses_in_order(api: API) -> None:
    body = await api.call("broadcast", {"channels": ["a", "x:b", "", "chat:9"], "data": 1})
    responses = body["result"]["responses"]
    assert responses[:3] == [
        {"result": {}},
        err(102, "unknown channel"),
        err(107, "bad request"),
    ]
    assert responses[3]["result"]["offset"] == 1
    assert await api.call("broadcast", {"channels": [], "data": 1}) == err(107, "bad request")
    bad = {"channels": ["a"], "b64data": "@@"}
    assert await api.call("broadcast", bad) == err(107, "bad request")
    no_data = await api.call("broadcast", {"channels": ["a"]})
    assert no_data["result"]["responses"] == [err(107, "bad request")]


async def test_presence_and_history_errors(api: API) -> None:
    assert await api.call("presence", {"channel": ""}) == err(107, "bad request")
    assert await api.call("presence", {"channel": "nope:1"}) == err(102, "unknown channel")
    assert await api.call("presence_stats", {"channel": "hist:1"}) == err(108, "not available")
    assert await api.call("history", {"channel": "news"}) == err(108, "not available")
    assert await api.call("history_remove", {"channel": "closed:1"}) == err(108, "not available")
    assert await api.call("presence", {"channel": "chat:1"}) == {"result": {"presence": {}}}
    stats = await api.call("presence_stats", {"channel": "chat:1"})
    assert stats == {"result": {"num_clients": 0, "num_users": 0}}


async def test_history_positions_and_wrong_epoch(api: API) -> None:
    for i in range(5):
        await api.call("publish", {"channel": "hist:h", "data": {"i": i}, "tags": {"k": "v"}})
    top = await api.call("history", {"channel": "hist:h"})
    assert top["result"]["publications"] == [] and top["result"]["offset"] == 5
    epoch = top["result"]["epoch"]
    full = await api.call("history", {"channel": "hist:h", "limit": -1})
    pubs = full["result"]["publications"]
    assert pubs == [{"data": {"i": i}, "offset": i + 1, "tags": {"k": "v"}} for i in (2, 3, 4)]
    rev = await api.call("history", {"channel": "hist:h", "limit": 2, "reverse": True})
    assert [p["offset"] for p in rev["result"]["publications"]] == [5, 4]
    since = {"channel": "hist:h", "limit": -1, "since": {"offset": 3, "epoch": epoch}}
    after = await api.call("history", since)
    assert [p["offset"] for p in after["result"]["publications"]] == [4, 5]
    wrong = {"channel": "hist:h", "limit": -1, "since": {"offset": 3, "epoch": "other"}}
    assert await api.call("history", wrong) == err(112, "unrecoverable position")
    hdr = {"X-Centrifugo-Error-Mode": "transport"}
    status, _, _ = await api.raw("/history", json.dumps(wrong), headers=hdr)
    assert status == 416
    # a reverse read since offset 0: centrifuge refuses it before the engine, the API says 100
    zero = {"channel": "hist:h", "limit": 0, "reverse": True, "since": {"offset": 0, "epoch": "x"}}
    assert await api.call("history", zero) == err(100, "internal server error")
    assert await api.call("history_remove", {"channel": "hist:h"}) == {"result": {}}
    after_remove = await api.call("history", {"channel": "hist:h", "limit": -1})
    assert after_remove["result"] == {"publications": [], "epoch": epoch, "offset": 5}


async def test_rpc_and_channels_errors(api: API) -> None:
    assert await api.call("rpc", {"method": ""}) == err(107, "bad request")
    assert await api.call("rpc", {"method": "getX", "params": {}}) == err(104, "not found")
    assert await api.call("channels", {"pattern": "[abc"}) == err(100, "internal server error")
    assert await api.call("channels", {}) == {"result": {"channels": {}}}


async def test_legacy_endpoint(api: API) -> None:
    status, body, headers = await api.raw("", '{"method":"info","params":{}}')
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert "nodes" in json.loads(body)["result"]
    stream = "\n".join(
        [
            '{"id":1,"method":"PUBLISH","params":{"channel":"news","data":1}}',
            '{"id":2,"method":0,"params":{"channel":"nope:1","data":1}}',
            '{"id":3,"method":"connections","params":{}}',
            '{"id":4,"method":"publish","params":{"channel":5}}',
            '{"method":5,"params":{"channel":"chat:1"}}',
        ]
    )
    status, body, _ = await api.raw("", stream)
    lines = [json.loads(line) for line in body.decode().split("\n")]
    assert status == 200
    assert lines == [
        {"id": 1, "result": {}},
        {"id": 2, **err(102, "unknown channel")},
        {"id": 3, **err(104, "not found")},
        {"id": 4, **err(107, "bad request")},
        {"result": {"num_clients": 0, "num_users": 0}},
    ]
    status, body, _ = await api.raw("", '{"id":1,"method":3}')
    assert json.loads(body) == {"id": 1, **err(107, "bad request")}  # no params
    for bad in ("", "   ", "{", '{"id":"x","method":"info"}', '{"method":"nosuch","params":{}}'):
        status, body, _ = await api.raw("", bad)
        assert (status, body) == (400, b"Bad Request\n")


async def test_health_and_metrics(server_factory: Any, http: aiohttp.ClientSession) -> None:
    cfg = make_config(
        health=EndpointConfig(enabled=True, handler_prefix="/health"),
        prometheus=EndpointConfig(enabled=True, handler_prefix="/metrics"),
    )
    async with server_factory(cfg) as srv:
        for method in ("GET", "POST", "HEAD"):
            async with http.request(method, srv.http_url + "/health") as r:
                assert r.status == 200
                assert r.headers["Content-Type"].startswith("application/json")
                if method != "HEAD":
                    assert await r.read() == b"{}"
        await API(http, srv.api_url).call("publish", {"channel": "nope:1", "data": 1})
        async with http.get(srv.http_url + "/metrics") as r:
            text = await r.text()
            assert r.status == 200
        assert (
            'centrifugo_api_command_duration_seconds_count{method="publish",protocol="http"}'
            in (text)
        )
        assert (
            'centrifugo_api_command_errors_total{error="102",method="publish",protocol="http"}'
            in (text)
        )


async def test_health_disabled_by_default(relay: Any, http: aiohttp.ClientSession) -> None:
    async with http.get(relay.http_url + "/health") as r:
        assert r.status == 404


async def test_api_disabled(server_factory: Any, http: aiohttp.ClientSession) -> None:
    cfg = make_config(http_api=replace(make_config().http_api, disabled=True))
    async with server_factory(cfg) as srv:
        status, _, _ = await API(http, srv.api_url).raw("/info", "{}")
        assert status == 404


# =========================================================================================
# the real cent client, with real WebSocket connections where a method acts on them
# =========================================================================================
@pytest.fixture
async def cent(relay: Any) -> Any:
    client = AsyncClient(relay.api_url, API_KEY)
    yield client
    await client._session.close()


async def test_cent_publish_reaches_subscriber(relay: Any, cent: AsyncClient) -> None:
    ws = await WSClient.login(relay.ws_url)
    await ws.subscribe("chat:1")
    res = await cent.publish(PublishRequest(channel="chat:1", data={"text": "hi"}, tags={"a": "b"}))
    assert res.offset == 1 and res.epoch
    push = await ws.push("pub", "chat:1")
    assert push["pub"]["data"] == {"text": "hi"}
    assert push["pub"]["tags"] == {"a": "b"}
    await ws.close()


async def test_cent_broadcast(relay: Any, cent: AsyncClient) -> None:
    ws = await WSClient.login(relay.ws_url)
    await ws.subscribe("chat:1")
    await ws.subscribe("news")
    res = await cent.broadcast(BroadcastRequest(channels=["chat:1", "news", "nope:1"], data=[1]))
    assert res.responses[0].result is not None and res.responses[0].result.offset == 1
    assert res.responses[1].result is not None and res.responses[1].result.offset == 0
    assert res.responses[2].error is not None and res.responses[2].error.code == 102
    assert (await ws.push("pub", "chat:1"))["pub"]["data"] == [1]
    assert (await ws.push("pub", "news"))["pub"]["data"] == [1]
    await ws.close()


async def test_cent_presence_with_members(relay: Any, cent: AsyncClient) -> None:
    a = await WSClient.login(relay.ws_url, "42", info={"name": "a"})
    b = await WSClient.login(relay.ws_url, "43")
    await a.subscribe("chat:1")
    await b.subscribe("chat:1")
    res = await cent.presence(PresenceRequest(channel="chat:1"))
    assert set(res.presence) == {a.client_id, b.client_id}
    assert res.presence[a.client_id].user == "42"
    assert res.presence[a.client_id].conn_info == {"name": "a"}
    stats = await cent.presence_stats(PresenceStatsRequest(channel="chat:1"))
    assert (stats.num_clients, stats.num_users) == (2, 2)
    await a.close()
    await b.close()


async def test_cent_history_and_remove(relay: Any, cent: AsyncClient) -> None:
    for i in range(3):
        await cent.publish(PublishRequest(channel="chat:h", data={"i": i}))
    res = await cent.history(HistoryRequest(channel="chat:h", limit=-1))
    assert [p.data for p in res.publications] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert res.offset == 3
    since = StreamPosition(offset=1, epoch=res.epoch)
    part = await cent.history(HistoryRequest(channel="chat:h", limit=10, since=since))
    assert [p.offset for p in part.publications] == [2, 3]
    with pytest.raises(CentApiResponseError) as exc:
        bad = StreamPosition(offset=1, epoch="nope")
        await cent.history(HistoryRequest(channel="chat:h", limit=1, since=bad))
    assert exc.value.code == 112
    await cent.history_remove(HistoryRemoveRequest(channel="chat:h"))
    empty = await cent.history(HistoryRequest(channel="chat:h", limit=-1))
    assert empty.publications == [] and empty.offset == 3 and empty.epoch == res.epoch


async def test_cent_info_and_channels(relay: Any, cent: AsyncClient) -> None:
    ws = await WSClient.login(relay.ws_url)
    await ws.subscribe("chat:1")
    await ws.subscribe("chat:2")
    await ws.subscribe("news")
    info = await cent.info(InfoRequest())
    (node,) = info.nodes
    assert (node.num_clients, node.num_users, node.num_channels, node.num_subs) == (1, 1, 3, 3)
    chans = await cent.channels(ChannelsRequest(pattern="chat:*"))
    assert {k: v.num_clients for k, v in chans.channels.items()} == {"chat:1": 1, "chat:2": 1}
    every = await cent.channels(ChannelsRequest())
    assert set(every.channels) == {"chat:1", "chat:2", "news"}
    await ws.close()


async def test_cent_subscribe_and_unsubscribe(relay: Any, cent: AsyncClient) -> None:
    ws = await WSClient.login(relay.ws_url, "42")
    other = await WSClient.login(relay.ws_url, "43")
    await cent.subscribe(
        SubscribeRequest(
            user="42",
            channel="news",
            data={"welcome": True},
            override=ChannelOptionsOverride(presence=BoolValue(value=False)),
        )
    )
    push = await ws.push("subscribe", "news")
    assert push["subscribe"].get("data") == {"welcome": True}
    await cent.publish(PublishRequest(channel="news", data="x"))
    assert (await ws.push("pub", "news"))["pub"]["data"] == "x"
    with pytest.raises(TimeoutError):
        await other.push("subscribe", "news", timeout=0.2)
    await cent.unsubscribe(UnsubscribeRequest(user="42", channel="news"))
    unsub = await ws.push("unsubscribe", "news")
    assert unsub["unsubscribe"]["code"] == 2000
    with pytest.raises(CentApiResponseError) as exc:
        await cent.subscribe(SubscribeRequest(user="42", channel="nope:x"))
    assert exc.value.code == 102
    await ws.close()
    await other.close()


async def test_cent_subscribe_targets_one_client(relay: Any, cent: AsyncClient) -> None:
    a = await WSClient.login(relay.ws_url, "42")
    b = await WSClient.login(relay.ws_url, "42")
    await cent.subscribe(SubscribeRequest(user="42", channel="chat:s", client=b.client_id))
    push = await b.push("subscribe", "chat:s")
    assert push["subscribe"].get("recoverable") is True
    with pytest.raises(TimeoutError):
        await a.push("subscribe", "chat:s", timeout=0.2)
    await a.close()
    await b.close()


async def test_cent_disconnect_default_custom_and_whitelist(relay: Any, cent: AsyncClient) -> None:
    a = await WSClient.login(relay.ws_url, "42")
    b = await WSClient.login(relay.ws_url, "42")
    keep = await WSClient.login(relay.ws_url, "42")
    await cent.disconnect(
        DisconnectRequest(
            user="42", client=a.client_id, disconnect=Disconnect(code=4001, reason="bye")
        )
    )
    assert await a.closed() == (4001, "bye")
    await cent.disconnect(DisconnectRequest(user="42", whitelist=[keep.client_id]))
    assert await b.closed() == (3503, "force disconnect")
    reply = await keep.command({"subscribe": {"channel": "news"}})
    assert "subscribe" in reply
    await keep.close()


async def test_cent_refresh(relay: Any, cent: AsyncClient) -> None:
    ws = await WSClient.login(relay.ws_url, "42")
    await cent.refresh(RefreshRequest(user="42", expire_at=4102444800))
    push = await ws.push("refresh")
    assert push["refresh"]["expires"] is True
    await cent.refresh(RefreshRequest(user="42", expired=True))
    code, _ = await ws.closed()
    assert code == 3005


async def test_cent_batch(relay: Any, cent: AsyncClient) -> None:
    res = await cent.batch(
        BatchRequest(
            requests=[
                PublishRequest(channel="chat:b", data={"a": 1}),
                PresenceStatsRequest(channel="chat:b"),
                HistoryRequest(channel="chat:b", limit=-1),
                InfoRequest(),
            ],
            parallel=False,
        )
    )
    publish, stats, history, info = res.replies
    assert publish.offset == 1
    assert stats.num_clients == 0
    assert [p.data for p in history.publications] == [{"a": 1}]
    assert len(info.nodes) == 1


async def test_cent_errors(relay: Any) -> None:
    bad = AsyncClient(relay.api_url, "wrong")
    with pytest.raises(CentUnauthorizedError):
        await bad.info(InfoRequest())
    await bad._session.close()
    client = AsyncClient(relay.api_url + "/nope", API_KEY)
    with pytest.raises(CentTransportError) as exc:
        await client.info(InfoRequest())
    assert exc.value.status_code == 404
    await client._session.close()


async def test_concurrent_requests_do_not_interfere(api: API) -> None:
    results = await asyncio.gather(
        *(api.call("publish", {"channel": "chat:c", "data": i}) for i in range(20))
    )
    assert sorted(r["result"]["offset"] for r in results) == list(range(1, 21))


async def test_deeply_nested_body_is_400_not_a_crash(api: API) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    status, body, _ = await api.raw("/publish", '{"channel":"news","data":' + deep + "}")
    assert (status, body) == (400, b"Bad Request\n")
    status, _, _ = await api.raw("", deep)
    assert status == 400
    assert (await api.call("info", {}))["result"]["nodes"]


async def test_batch_crosses_the_bus_once_per_owner(relay: Any, mode: str, api: API) -> None:
    if mode == "single":
        pytest.skip("no bus with one worker")
    buses = [w.bus for w in relay.server.workers]
    before = sum(b.counters["sent"] for b in buses)
    cmds = [{"publish": {"channel": f"hist:b{i % 100}", "data": i}} for i in range(1000)]
    body = await api.call("batch", {"commands": cmds})
    assert len(body["replies"]) == 1000 and all("publish" in r for r in body["replies"])
    # one request to the other worker and its answer: not 1,000 messages
    assert sum(b.counters["sent"] for b in buses) - before <= 2


async def test_server_subscribe_b64_fields_replace_data_and_info(relay: Any, api: API) -> None:
    """6.9.1's rule (6.6.2 dropped them): ``b64data`` / ``b64info`` win over ``data`` /
    ``info``; invalid base64 is 107, an unknown namespace still 102 first."""
    ws = await WSClient.login(relay.ws_url, "42")
    b64 = base64.b64encode(b'{"hello":1}').decode()
    body = {"user": "42", "channel": "news", "data": {"plain": 1}, "b64data": b64}
    assert await api.call("subscribe", body) == {"result": {}}
    push = await ws.push("subscribe", "news")
    assert push["subscribe"].get("data") == {"hello": 1}
    bad = {"user": "42", "channel": "news2", "b64info": "\u001f"}
    assert await api.call("subscribe", bad) == {"error": {"code": 107, "message": "bad request"}}
    wrong_ns = {"user": "42", "channel": "nope:x", "b64info": "\u001f"}
    assert (await api.call("subscribe", wrong_ns))["error"]["code"] == 102
    await ws.close()
