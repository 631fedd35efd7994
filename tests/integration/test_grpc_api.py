"""The gRPC server API (``grpc_api``) against a real relay server and a real grpcio client.

Each test starts a ``RelayServer`` (both modes: one worker, two workers on the bus) with
``grpc_api.enabled``: each worker starts its ``GrpcAPI`` and all bind one port
(SO_REUSEPORT). Where the HTTP API can take the same input, the test sends it there too
and compares: gRPC must give the same results and errors. Expected values were checked
against Centrifugo 6.9.1's gRPC API.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message

from relay.api.grpc import centrifugo_api_pb2 as pb
from relay.api.grpc import rpc_status_pb2
from relay.config.tree import GrpcAPIConfig, TLSConfig
from relay.transports.grpc_api import GrpcAPI
from relay.transports.tls import TLSConfigError
from tests.conftest import make_config, token
from tests.integration.conftest import API, WSClient
from tests.integration.wsutil import RawClient
from tests.procutil import free_port

SERVICE = "centrifugal.centrifugo.api.CentrifugoApi"
KEY = "grpc-test-key"
AUTH = (("authorization", f"apikey {KEY}"),)


def grpc_config(**overrides: Any) -> GrpcAPIConfig:
    return replace(GrpcAPIConfig(enabled=True, address="127.0.0.1", port=0, key=KEY), **overrides)


class Client:
    """Calls ``CentrifugoApi`` methods by name on one channel (with the test key)."""

    def __init__(self, channel: grpc.aio.Channel, metadata: Any = AUTH) -> None:
        self.channel = channel
        self.metadata = metadata

    async def __call__(self, method: str, request: Message, metadata: Any = None) -> Any:
        response_cls = getattr(pb, method + "Response")
        call = self.channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        return await call(request, metadata=self.metadata if metadata is None else metadata)

    async def raw(self, path: str, body: bytes, metadata: Any = AUTH) -> bytes:
        call = self.channel.unary_unary(path)
        result: bytes = await call(body, metadata=metadata)
        return result

    async def status(self, method: str, request: Message, metadata: Any = None) -> Any:
        """The error status of a call that must fail."""
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await self(method, request, metadata)
        return exc.value


class Relay:
    """A running relay (``srv``: the test handle) with the gRPC API on every worker."""

    def __init__(self, srv: Any, apis: list[GrpcAPI]) -> None:
        self.srv = srv
        self.apis = apis
        self.port = apis[0].port

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def _workers(srv: Any) -> list[Any]:
    return list(getattr(srv.server, "workers", None) or [srv.server])


@asynccontextmanager
async def serving(
    server_factory: Callable[..., Any], grpc_cfg: GrpcAPIConfig | None = None, **overrides: Any
) -> AsyncIterator[Relay]:
    cfg = grpc_cfg or grpc_config()
    if cfg.port == 0:  # every worker binds the one port (SO_REUSEPORT), as in production
        cfg = replace(cfg, port=free_port())
    async with server_factory(make_config(grpc_api=cfg, **overrides)) as srv:
        apis = [worker.grpc_api for worker in _workers(srv)]  # started by RelayServer.start
        assert all(api is not None and api.port == cfg.port for api in apis)
        yield Relay(srv, apis)


@pytest.fixture
async def relay_grpc(server_factory: Callable[..., Any]) -> AsyncIterator[Relay]:
    async with serving(server_factory) as r:
        yield r


@pytest.fixture
async def client(relay_grpc: Relay) -> AsyncIterator[Client]:
    async with grpc.aio.insecure_channel(relay_grpc.target) as channel:
        yield Client(channel)


@pytest.fixture
def api(relay_grpc: Relay, http: Any) -> API:
    return API(http, relay_grpc.srv.api_url)


# ---- helpers: gRPC replies as the HTTP API's JSON ---------------------------------------
def as_json(msg: Message) -> dict[str, Any]:
    """A reply in the HTTP API's JSON shape (raw JSON ``bytes`` fields parsed)."""
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        sub = fd.message_type
        if sub is not None and sub.GetOptions().map_entry:
            nested = sub.fields_by_name["value"].message_type is not None
            out[fd.name] = {k: as_json(v) if nested else v for k, v in value.items()}
        elif fd.is_repeated:
            out[fd.name] = [as_json(v) if sub is not None else v for v in value]
        elif sub is not None:
            out[fd.name] = as_json(value)
        elif fd.type == fd.TYPE_BYTES:
            out[fd.name] = json.loads(value)
        else:
            out[fd.name] = value
    return out


def prune(value: Any) -> Any:
    """Drop zero values (JSON writes some of them, protobuf none)."""
    if isinstance(value, dict):
        pruned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (0, "", False, [], {}, None)}
    if isinstance(value, list):
        return [prune(v) for v in value]
    return value


def fill(msg: Message, body: dict[str, Any]) -> Message:
    """Set ``msg`` from an HTTP API body (raw JSON values become ``bytes`` fields)."""
    for name, value in body.items():
        fd = msg.DESCRIPTOR.fields_by_name[name]
        target = getattr(msg, name)
        sub = fd.message_type
        if sub is not None and sub.GetOptions().map_entry:
            target.update(value)
        elif fd.is_repeated and sub is not None:
            for item in value:
                fill(target.add(), item)
        elif fd.is_repeated:
            target.extend(value)
        elif sub is not None:
            target.SetInParent()
            fill(target, value)
        elif fd.type == fd.TYPE_BYTES:
            setattr(msg, name, json.dumps(value, separators=(",", ":")).encode())
        else:
            setattr(msg, name, value)
    return msg


def request(method: str, body: dict[str, Any]) -> Message:
    """The gRPC request of ``method`` carrying the HTTP API body ``body``."""
    return fill(getattr(pb, method + "Request")(), body)


async def both(client: Client, api: API, method: str, body: dict[str, Any]) -> Any:
    """Send ``body`` over gRPC and HTTP; assert the same answer; return it."""
    reply = prune(as_json(await client(method, request(method, body))))
    name = "rpc" if method == "RPC" else re.sub(r"(?<!^)(?=[A-Z])", "_", method).lower()
    http = prune(await api.call(name, body))
    assert reply == http, (method, reply, http)
    return reply


def err(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


# =========================================================================================
# every method: the same results as over HTTP
# =========================================================================================
async def test_publish_and_history_match_http(client: Client, api: API) -> None:
    first = await client("Publish", pb.PublishRequest(channel="chat:1", data=b'{"n":1}'))
    assert first.HasField("result") and not first.HasField("error")
    assert first.result.offset == 1 and len(first.result.epoch) == 8
    second = await api.call("publish", {"channel": "chat:1", "data": {"n": 2}})
    assert second == {"result": {"offset": 2, "epoch": first.result.epoch}}
    tagged = pb.PublishRequest(channel="chat:1", data=b'"t"', tags={"k": "v"})
    assert (await client("Publish", tagged)).result.offset == 3
    hist = await both(client, api, "History", {"channel": "chat:1", "limit": -1})
    assert hist["result"]["offset"] == 3
    assert [p["data"] for p in hist["result"]["publications"]] == [{"n": 1}, {"n": 2}, "t"]
    assert hist["result"]["publications"][2]["tags"] == {"k": "v"}
    body = {"channel": "chat:1", "limit": 1, "since": {"offset": 1, "epoch": first.result.epoch}}
    hist = await both(client, api, "History", body)
    assert [p["offset"] for p in hist["result"]["publications"]] == [2]
    await both(client, api, "History", {"channel": "chat:1", "limit": 2, "reverse": True})


async def test_publish_without_history_has_an_empty_result(client: Client) -> None:
    """Go sets ``result`` even when it is empty: the field is on the wire."""
    reply = await client("Publish", pb.PublishRequest(channel="news", data=b"{}"))
    assert reply.HasField("result") and reply.result == pb.PublishResult()


@pytest.mark.parametrize(
    ("method", "body", "code"),
    [
        ("Publish", {"channel": "nope:x", "data": {}}, 102),
        ("Publish", {"data": {}}, 107),
        ("Publish", {"channel": "chat:1"}, 107),
        ("Publish", {"channel": "chat:1", "b64data": "!!"}, 107),
        ("Broadcast", {"data": 1}, 107),
        ("Subscribe", {"user": "42"}, 107),
        ("Subscribe", {"channel": "nope:x", "user": "42"}, 102),
        ("Unsubscribe", {"channel": "nope:x"}, 102),
        ("Presence", {}, 107),
        ("Presence", {"channel": "hist:a"}, 108),
        ("PresenceStats", {"channel": "nope:x"}, 102),
        ("PresenceStats", {"channel": "closed:x"}, 108),
        ("History", {"channel": "news"}, 108),
        ("History", {"channel": "nope:x"}, 102),
        ("History", {"channel": "chat:1", "since": {"epoch": "bad"}}, 112),
        ("HistoryRemove", {}, 107),
        ("HistoryRemove", {"channel": "closed:x"}, 108),
        ("Channels", {"pattern": "["}, 100),
        ("RPC", {}, 107),
        ("RPC", {"method": "m", "params": {}}, 104),
    ],
)
async def test_errors_match_http(
    client: Client, api: API, method: str, body: dict[str, Any], code: int
) -> None:
    reply = await both(client, api, method, body)
    message = {
        100: "internal server error",
        102: "unknown channel",
        104: "not found",
        107: "bad request",
        108: "not available",
        112: "unrecoverable position",
    }[code]
    assert reply == err(code, message)
    raw = await client(method, request(method, body))
    assert raw.HasField("error") and not raw.HasField("result")


async def test_broadcast_matches_http(client: Client, api: API) -> None:
    channels = ["news", "", "nope:x", "hist:b"]
    request = pb.BroadcastRequest(channels=channels, data=b'{"b":1}')
    reply = as_json(await client("Broadcast", request))
    responses = reply["result"]["responses"]
    assert responses[0] == {"result": {}}
    assert responses[1] == err(107, "bad request") and responses[2] == err(102, "unknown channel")
    assert responses[3]["result"]["offset"] == 1
    http = await api.call("broadcast", {"channels": channels, "data": {"b": 1}})
    assert prune(http) == prune({"result": {"responses": responses[:3] + [
        {"result": {"offset": 2, "epoch": responses[3]["result"]["epoch"]}}
    ]}})  # fmt: skip


async def test_presence_and_stats_match_http(relay_grpc: Relay, client: Client, api: API) -> None:
    ws = await WSClient.login(relay_grpc.srv.ws_url, "42", info={"name": "Alice"})
    await ws.subscribe("chat:p")
    other = await WSClient.login(relay_grpc.srv.ws_url, "43")
    await other.subscribe("chat:p")
    presence = await both(client, api, "Presence", {"channel": "chat:p"})
    entries = presence["result"]["presence"]
    assert entries[ws.client_id] == {
        "user": "42",
        "client": ws.client_id,
        "conn_info": {"name": "Alice"},
    }
    raw = await client("Presence", pb.PresenceRequest(channel="chat:p"))
    assert raw.result.presence[ws.client_id].conn_info == b'{"name":"Alice"}'
    stats = await both(client, api, "PresenceStats", {"channel": "chat:p"})
    assert stats == {"result": {"num_clients": 2, "num_users": 2}}
    empty = await client("Presence", pb.PresenceRequest(channel="chat:none"))
    assert empty.HasField("result") and not empty.result.presence
    await ws.close()
    await other.close()


async def test_history_remove_matches_http(client: Client, api: API) -> None:
    for n in range(3):
        await client("Publish", pb.PublishRequest(channel="hist:r", data=b"%d" % n))
    reply = await client("HistoryRemove", pb.HistoryRemoveRequest(channel="hist:r"))
    assert reply.HasField("result") and not reply.HasField("error")
    hist = await both(client, api, "History", {"channel": "hist:r", "limit": -1})
    assert hist["result"]["offset"] == 3 and "publications" not in hist["result"]
    await both(client, api, "HistoryRemove", {"channel": "hist:r"})


async def test_channels_and_info_match_http(relay_grpc: Relay, client: Client, api: API) -> None:
    ws = await WSClient.login(relay_grpc.srv.ws_url, "42")
    await ws.subscribe("chat:c1")
    await ws.subscribe("news")
    channels = await both(client, api, "Channels", {})
    one = {"num_clients": 1}
    assert channels == {"result": {"channels": {"chat:c1": one, "news": one}}}
    only = await both(client, api, "Channels", {"pattern": "chat:*"})
    assert list(only["result"]["channels"]) == ["chat:c1"]
    info = as_json(await client("Info", pb.InfoRequest()))
    http = await api.call("info", {})
    keys = ("uid", "name", "version", "num_clients", "num_users", "num_channels", "num_subs")
    mine = [{k: n.get(k, 0) for k in keys} for n in info["result"]["nodes"]]
    theirs = [{k: n.get(k, 0) for k in keys} for n in http["result"]["nodes"]]
    assert mine == theirs and mine[0]["num_clients"] == 1 and mine[0]["num_subs"] == 2
    node = info["result"]["nodes"][0]
    assert node["metrics"]["interval"] == 60 and node["metrics"]["items"]
    await ws.close()


async def test_rpc_results(client: Client) -> None:
    reply = await client("RPC", pb.RPCRequest(method="any"))
    assert as_json(reply) == err(104, "not found")


@pytest.mark.parametrize("parallel", [False, True])
async def test_batch_matches_http(client: Client, api: API, parallel: bool) -> None:
    commands: list[dict[str, Any]] = [
        {"publish": {"channel": "chat:b", "data": {"i": 1}}},
        {},
        {"publish": {"channel": "nope:x", "data": 1}},
        {"publish": {"channel": "news", "data": 1}},
        {"presence_stats": {"channel": "chat:b"}},
        {"history": {"channel": "hist:none"}},
        {"broadcast": {"channels": ["news", ""], "data": 2}},
        {"subscribe": {"channel": "news", "user": "nobody"}},
        {"rpc": {"method": "x"}},
        {"channels": {"pattern": "zzz*"}},
    ]
    body = {"commands": commands, "parallel": parallel}
    reply = prune(as_json(await client("Batch", request("Batch", body))))
    replies = reply["replies"]
    assert replies[0]["publish"]["offset"] == 1
    assert replies[1] == err(104, "not found") and replies[2] == err(102, "unknown channel")
    assert replies[5] == {"history": {"epoch": replies[5]["history"]["epoch"]}}
    http = prune(await api.call("batch", body))
    replies[0]["publish"]["offset"] = 2  # the second publish into chat:b, over HTTP
    assert reply == http
    assert (await client("Batch", pb.BatchRequest())).replies == []


async def test_batch_reply_fields_are_set_even_when_empty(client: Client) -> None:
    commands = [pb.Command(subscribe=pb.SubscribeRequest(channel="news", user="u"))]
    commands.append(pb.Command(info=pb.InfoRequest()))
    reply = await client("Batch", pb.BatchRequest(commands=commands))
    assert reply.replies[0].HasField("subscribe") and reply.replies[1].HasField("info")


async def test_batch_picks_methods_in_centrifugo_order(client: Client) -> None:
    """A command with several fields set runs the first in ``processCmd`` order (history
    before presence); map and PRO commands are not found."""
    both_set = pb.Command(
        presence=pb.PresenceRequest(channel="hist:a"), history=pb.HistoryRequest(channel="hist:a")
    )
    others = [pb.Command(map_stats=pb.MapStatsRequest(channel="x"))]
    others.append(pb.Command(connections=pb.ConnectionsRequest()))
    reply = await client("Batch", pb.BatchRequest(commands=[both_set, *others]))
    assert reply.replies[0].HasField("history")
    assert [r.error.code for r in reply.replies[1:]] == [104, 104]


# =========================================================================================
# payloads: bytes end to end
# =========================================================================================
async def test_binary_and_raw_data_round_trip(client: Client, api: API) -> None:
    """Data is stored as sent (binary, or JSON with its spaces and newlines): gRPC history
    returns those bytes; HTTP cannot carry binary data (100, as a b64data publish)."""
    payloads = [b"\x00\xffbinary", b'{"a":\n 1}', b"  42  "]
    for data in payloads:
        await client("Publish", pb.PublishRequest(channel="chat:raw", data=data))
    hist = await client("History", pb.HistoryRequest(channel="chat:raw", limit=-1))
    assert [p.data for p in hist.result.publications] == payloads
    http = await api.call("history", {"channel": "chat:raw", "limit": -1})
    assert http == err(100, "internal server error")
    b64 = base64.b64encode(b"\x01\x02").decode()
    reply = await client("Publish", pb.PublishRequest(channel="hist:b64", b64data=b64, data=b"1"))
    assert reply.result.offset == 1
    hist = await client("History", pb.HistoryRequest(channel="hist:b64", limit=-1))
    assert [p.data for p in hist.result.publications] == [b"\x01\x02"]


async def test_publication_data_format_checks(server_factory: Callable[..., Any]) -> None:
    from relay.config import ChannelConfig, ChannelOptions

    channel = ChannelConfig(without_namespace=ChannelOptions(publication_data_format="json"))
    async with serving(server_factory, channel=channel) as r:
        async with grpc.aio.insecure_channel(r.target) as channel_:
            client = Client(channel_)
            bad = await client("Publish", pb.PublishRequest(channel="x", data=b"\x00"))
            assert as_json(bad) == err(107, "bad request")
            good = await client("Publish", pb.PublishRequest(channel="x", data=b"[1]"))
            assert good.HasField("result")


# =========================================================================================
# connection actions reach websocket clients
# =========================================================================================
async def test_publish_reaches_websocket_subscribers(relay_grpc: Relay, client: Client) -> None:
    ws = await WSClient.login(relay_grpc.srv.ws_url, "42")
    await ws.subscribe("chat:live")
    await client("Publish", pb.PublishRequest(channel="chat:live", data=b'{"hello":"grpc"}'))
    push = await ws.push("pub", "chat:live")
    assert push["pub"]["data"] == {"hello": "grpc"} and push["pub"]["offset"] == 1
    proto = await RawClient.open(relay_grpc.srv.ws_url, protobuf=True)
    reply = await proto.connect(token=token("7"))
    assert "connect" in reply
    sub = await proto.call("subscribe", {"channel": "news"})
    assert "error" not in sub
    await client("Publish", pb.PublishRequest(channel="news", data=b"\x00\x01raw"))
    assert (await proto.push("pub", "news"))["pub"]["data"] == b"\x00\x01raw"
    await ws.close()
    await proto.close()


async def test_subscribe_unsubscribe_disconnect_refresh(relay_grpc: Relay, client: Client) -> None:
    ws = await WSClient.login(relay_grpc.srv.ws_url, "42")
    reply = await client(
        "Subscribe",
        pb.SubscribeRequest(
            channel="news",
            user="42",
            data=b'{"welcome":true}',
            override=pb.SubscribeOptionOverride(presence=pb.BoolValue(value=False)),
        ),
    )
    assert reply.HasField("result")
    push = await ws.push("subscribe", "news")
    assert push["subscribe"]["data"] == {"welcome": True}
    await client("Publish", pb.PublishRequest(channel="news", data=b'"x"'))
    assert (await ws.push("pub", "news"))["pub"]["data"] == "x"
    await client("Unsubscribe", pb.UnsubscribeRequest(channel="news", user="42"))
    assert (await ws.push("unsubscribe", "news"))["unsubscribe"]["code"] == 2000
    await client("Refresh", pb.RefreshRequest(user="42", expire_at=4102444800))
    assert (await ws.push("refresh"))["refresh"]["expires"] is True
    other = await WSClient.login(relay_grpc.srv.ws_url, "42")
    disconnect = pb.Disconnect(code=4001, reason="bye")
    await client(
        "Disconnect",
        pb.DisconnectRequest(user="42", disconnect=disconnect, whitelist=[ws.client_id]),
    )
    assert await other.closed() == (4001, "bye")
    await client("Refresh", pb.RefreshRequest(user="42", expired=True))
    code, _ = await ws.closed()
    assert code == 3005


async def test_default_disconnect(relay_grpc: Relay, client: Client) -> None:
    ws = await WSClient.login(relay_grpc.srv.ws_url, "42")
    await client("Disconnect", pb.DisconnectRequest(user="42", client=ws.client_id))
    assert await ws.closed() == (3503, "force disconnect")


# =========================================================================================
# transport: key, error mode, unimplemented and malformed calls
# =========================================================================================
@pytest.mark.parametrize(
    "metadata",
    [(), (("authorization", "apikey wrong"),), (("authorization", f"APIKEY {KEY}"),),
     (("authorization", KEY),), (("x-api-key", KEY),)],
)  # fmt: skip
async def test_api_key_required(client: Client, metadata: Any) -> None:
    status = await client.status("Info", pb.InfoRequest(), metadata)
    assert (status.code(), status.details()) == (grpc.StatusCode.UNAUTHENTICATED, "unauthenticated")
    status = await client.status("Connections", pb.ConnectionsRequest(), metadata)
    assert status.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_api_key_accepted_and_optional(
    client: Client, server_factory: Callable[..., Any]
) -> None:
    assert (await client("Info", pb.InfoRequest())).HasField("result")
    async with serving(server_factory, grpc_config(key="")) as r:
        async with grpc.aio.insecure_channel(r.target) as channel:
            open_client = Client(channel, metadata=())
            assert (await open_client("Info", pb.InfoRequest())).HasField("result")


def _details(status: Any) -> rpc_status_pb2.Status:
    (raw,) = [v for k, v in status.trailing_metadata() or () if k == "grpc-status-details-bin"]
    return rpc_status_pb2.Status.FromString(raw)


async def test_transport_error_mode_header(client: Client) -> None:
    mode = (*AUTH, ("x-centrifugo-error-mode", "transport"))
    codes = grpc.StatusCode
    cases = [
        ("Publish", {"channel": "nope:x", "data": 1}, codes.NOT_FOUND, 102),
        ("Publish", {"channel": "", "data": 1}, codes.INVALID_ARGUMENT, 107),
        ("Presence", {"channel": "hist:a"}, codes.INVALID_ARGUMENT, 108),
        ("RPC", {"method": "x"}, codes.NOT_FOUND, 104),
        ("History", {"channel": "chat:1", "since": {"epoch": "x"}}, codes.OUT_OF_RANGE, 112),
        ("Channels", {"pattern": "["}, codes.INTERNAL, 100),
    ]
    for method, body, code, api_code in cases:
        status = await client.status(method, request(method, body), mode)
        assert status.code() == code, method
        details = _details(status)
        assert details.code == code.value[0] and details.message == status.details()
        (detail,) = details.details
        assert detail.type_url == "type.googleapis.com/centrifugal.centrifugo.api.Error"
        error = pb.Error.FromString(detail.value)
        assert error.code == api_code and error.message == status.details()
    ok = await client("Publish", pb.PublishRequest(channel="news", data=b"1"), mode)
    assert ok.HasField("result")
    batch = pb.BatchRequest(commands=[pb.Command(publish=pb.PublishRequest(channel="nope:x"))])
    reply = await client("Batch", batch, mode)  # batch always answers in the body
    assert reply.replies[0].error.code == 102
    other = (*AUTH, ("x-centrifugo-error-mode", "Transport"))
    reply = await client("Publish", pb.PublishRequest(channel="nope:x", data=b"1"), other)
    assert reply.error.code == 102


async def test_transport_error_mode_config(server_factory: Callable[..., Any]) -> None:
    async with serving(server_factory, grpc_config(error_mode="transport")) as r:
        async with grpc.aio.insecure_channel(r.target) as channel:
            status = await Client(channel).status(
                "Publish", pb.PublishRequest(channel="nope:x", data=b"1")
            )
            assert (status.code(), status.details()) == (
                grpc.StatusCode.NOT_FOUND,
                "unknown channel",
            )


async def test_unimplemented_unknown_and_malformed_calls(client: Client) -> None:
    for method, request in (
        ("Connections", pb.ConnectionsRequest()),
        ("MapPublish", pb.MapPublishRequest(channel="x", key="k")),
        ("SendPushNotification", pb.SendPushNotificationRequest()),
    ):
        status = await client.status(method, request)
        assert (status.code(), status.details()) == (
            grpc.StatusCode.UNIMPLEMENTED,
            f"method {method} not implemented",
        )
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.raw(f"/{SERVICE}/Nope", b"")
    assert exc.value.details() == f"unknown method Nope for service {SERVICE}"
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.raw("/x.Y/Z", b"")
    assert (exc.value.code(), exc.value.details()) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "unknown service x.Y",
    )
    with pytest.raises(grpc.aio.AioRpcError) as exc:  # malformed before the key check
        await client.raw(f"/{SERVICE}/Publish", b"\xff\xff\xff", metadata=())
    assert exc.value.code() == grpc.StatusCode.INTERNAL
    assert exc.value.details().startswith("grpc: error unmarshalling request")


async def test_max_receive_message_size(server_factory: Callable[..., Any]) -> None:
    async with serving(server_factory, grpc_config(max_receive_message_size=1024)) as r:
        async with grpc.aio.insecure_channel(r.target) as channel:
            client = Client(channel)
            small = await client("Publish", pb.PublishRequest(channel="news", data=b"1"))
            assert small.HasField("result")
            big = pb.PublishRequest(channel="news", data=b'"' + b"x" * 2000 + b'"')
            status = await client.status("Publish", big)
            assert status.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_reflection(server_factory: Callable[..., Any]) -> None:
    from grpc_reflection.v1alpha import reflection_pb2

    path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    async with serving(server_factory, grpc_config(reflection=True)) as r:
        async with grpc.aio.insecure_channel(r.target) as channel:
            call = channel.stream_stream(
                path,
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            responses = [resp async for resp in call(iter([request]))]
            names = {s.name for s in responses[0].list_services_response.service}
            assert SERVICE in names


# =========================================================================================
# TLS
# =========================================================================================
def _self_signed(name: str) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


async def test_tls(server_factory: Callable[..., Any], tmp_path: Path) -> None:
    """PEM values as raw PEM, base64 and a file path; plaintext clients are refused."""
    cert, key = _self_signed("relay-test")
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(key)
    tls = TLSConfig(enabled=True, cert_pem=base64.b64encode(cert).decode(), key_pem=str(key_file))
    async with serving(server_factory, grpc_config(tls=tls)) as r:
        creds = grpc.ssl_channel_credentials(root_certificates=cert)
        async with grpc.aio.secure_channel(r.target, creds) as channel:
            reply = await Client(channel)("Publish", pb.PublishRequest(channel="news", data=b"1"))
            assert reply.HasField("result")
        async with grpc.aio.insecure_channel(r.target) as channel:
            status = await Client(channel).status("Info", pb.InfoRequest())
            assert status.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls(server_factory: Callable[..., Any]) -> None:
    cert, key = _self_signed("relay-server")
    client_cert, client_key = _self_signed("relay-client")
    tls = TLSConfig(
        enabled=True,
        cert_pem=cert.decode(),
        key_pem=key.decode(),
        client_ca_pem=client_cert.decode(),
    )
    async with serving(server_factory, grpc_config(tls=tls)) as r:
        good = grpc.ssl_channel_credentials(cert, client_key, client_cert)
        async with grpc.aio.secure_channel(r.target, good) as channel:
            assert (await Client(channel)("Info", pb.InfoRequest())).HasField("result")
        stranger_cert, stranger_key = _self_signed("stranger")
        for creds in (
            grpc.ssl_channel_credentials(cert),
            grpc.ssl_channel_credentials(cert, stranger_key, stranger_cert),
        ):
            async with grpc.aio.secure_channel(r.target, creds) as channel:
                status = await Client(channel).status("Info", pb.InfoRequest())
                assert status.code() == grpc.StatusCode.UNAVAILABLE


async def test_bad_tls_config_is_refused(relay_grpc: Relay) -> None:
    cert, key = _self_signed("relay-test")
    other_cert, _ = _self_signed("other")
    worker = _workers(relay_grpc.srv)[0]
    for tls in (
        TLSConfig(enabled=True),
        TLSConfig(enabled=True, cert_pem=other_cert.decode(), key_pem=key.decode()),
        TLSConfig(enabled=True, cert_pem="/no/such/file.pem", key_pem=key.decode()),
        TLSConfig(enabled=True, cert_pem=cert.decode(), key_pem=key.decode(), client_ca_pem="x"),
    ):
        api = GrpcAPI(worker.node, worker.executor, grpc_config(tls=tls))
        with pytest.raises(TLSConfigError):
            await api.start()


# =========================================================================================
# lifecycle
# =========================================================================================
async def test_workers_share_the_port_and_stop_releases_it(relay_grpc: Relay) -> None:
    worker = _workers(relay_grpc.srv)[0]
    extra = GrpcAPI(worker.node, worker.executor, grpc_config(port=relay_grpc.port))
    assert await extra.start() == relay_grpc.port  # SO_REUSEPORT: one more listener
    for api in relay_grpc.apis:
        await api.stop(0.5)
    async with grpc.aio.insecure_channel(relay_grpc.target) as channel:
        assert (await Client(channel)("Info", pb.InfoRequest())).HasField("result")
    await extra.stop(0.5)
    async with grpc.aio.insecure_channel(relay_grpc.target) as channel:
        status = await Client(channel).status("Info", pb.InfoRequest())
        assert status.code() == grpc.StatusCode.UNAVAILABLE


async def test_port_taken_without_reuseport_fails(relay_grpc: Relay) -> None:
    worker = _workers(relay_grpc.srv)[0]
    http_port = relay_grpc.srv.port  # aiohttp's listener: no SO_REUSEPORT
    api = GrpcAPI(worker.node, worker.executor, grpc_config(port=http_port))
    with pytest.raises(OSError, match="cannot listen to address"):
        await api.start()


def test_grpc_is_imported_only_by_start() -> None:
    """``relay.server`` and this module load without grpc (the front forks workers)."""
    code = (
        "import sys, relay.server, relay.transports.grpc_api;"
        "assert not [m for m in sys.modules if m == 'grpc' or m.startswith(('grpc.', 'google'))]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


async def test_unknown_error_mode_is_refused(relay_grpc: Relay) -> None:
    from relay.errors import ConfigError

    worker = _workers(relay_grpc.srv)[0]
    with pytest.raises(ConfigError, match="can't extract grpc error mode: invalid value: custom"):
        GrpcAPI(worker.node, worker.executor, grpc_config(error_mode="custom"))  # type: ignore[arg-type]
