"""The pure proxy layers: config keys and validation, request bodies, Go's decoding of
answers, what an answer means, and the generated ``proxy_pb2`` against ``proxy.proto``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import descriptor_pb2

from relay.config import Config, config_to_dict, load_config, validate
from relay.config.proxy_tree import ProxyConfig
from relay.errors import ConfigError, DisconnectError, ReplyError
from relay.protocol.channels import Override
from relay.proxy import proxy_pb2
from relay.proxy.messages import ProxyFailure, decode_response, encode_request, request_view
from relay.proxy.outcomes import (
    ProxiedPublish,
    connect_outcome,
    publish_outcome,
    refresh_outcome,
    rpc_outcome,
    stream_subscribe_outcome,
    subscribe_outcome,
)

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import gen_grpc  # noqa: E402


def _load(tmp_path: Path, body: dict[str, Any], env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(body))
    result = load_config(str(path), env or {})
    assert not result.refused and not result.warnings, (result.refused, result.warnings)
    return result.config


# ---- config ----------------------------------------------------------------------------
def test_defaults_are_centrifugos() -> None:
    cfg = Config()
    assert cfg.client.proxy.connect.timeout == 1.0 and not cfg.client.proxy.connect.enabled
    assert cfg.channel.without_namespace.subscribe_proxy_name == "default"
    assert cfg.rpc.namespace_boundary == ":" and cfg.rpc.ping.method == "ping"
    assert cfg.rpc.without_namespace.proxy_name == "default"
    dumped = config_to_dict(cfg)
    assert dumped["proxies"] == [] and dumped["rpc"]["namespaces"] == []
    assert dumped["channel"]["proxy"]["publish"]["http"]["static_headers"] == {}


def test_file_and_env_keys(tmp_path: Path) -> None:
    body = {
        "proxies": [{"name": "p1", "endpoint": "http://a", "http": {"static_headers": {"X-A": 1}}}],
        "rpc": {"namespaces": [{"name": "ns", "proxy_enabled": True, "proxy_name": "p1"}]},
        "client": {
            "proxy": {"connect": {"enabled": True, "endpoint": "grpc://b:1", "timeout": "3s"}}
        },
    }
    env = {
        "CENTRIFUGO_RPC_PROXY_ENDPOINT": "http://rpc",
        "CENTRIFUGO_CHANNEL_PROXY_SUBSCRIBE_HTTP_HEADERS": "Cookie X-Token",
        "CENTRIFUGO_CHANNEL_PROXY_PUBLISH_HTTP_STATIC_HEADERS": '{"k": "v"}',
    }
    cfg = _load(tmp_path, body, env)
    validate(cfg)
    (p1,) = cfg.proxies
    assert p1.name == "p1" and p1.http.static_headers == (("x-a", "1"),)
    assert cfg.rpc.namespaces[0].proxy_name == "p1" and cfg.rpc.proxy.endpoint == "http://rpc"
    assert cfg.client.proxy.connect.timeout == 3.0
    assert cfg.channel.proxy.subscribe.http_headers == ("Cookie", "X-Token")
    assert cfg.channel.proxy.publish.http.static_headers == (("k", "v"),)
    env = {"CENTRIFUGO_PROXIES": '[{"name": "e1", "endpoint": "http://e"}]'}
    assert _load(tmp_path, {}, env).proxies[0].name == "e1"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"client": {"proxy": {"connect": {"enabled": True}}}},
         "in client.proxy.connect: endpoint not set"),
        ({"proxies": [{"name": "a", "endpoint": "http://x"}]}, "in proxy a: invalid proxy name"),
        ({"proxies": [{"name": "aa", "endpoint": "http://x"}] * 2},
         "duplicate proxy name in channel.named_proxies: aa"),
        ({"proxies": [{"name": "default", "endpoint": "http://x"}]},
         "proxy name default is reserved"),
        ({"channel": {"namespaces": [{"name": "ns", "subscribe_proxy_enabled": True,
                                      "subscribe_proxy_name": "nope"}]}},
         'namespace ns: subscribe proxy with name "nope" not found'),
        ({"channel": {"without_namespace": {"publish_proxy_enabled": True}}},
         "in channel.proxy.publish: endpoint not set"),
        ({"rpc": {"namespaces": [{"name": "b"}]}}, "rpc namespace b: invalid rpc namespace name"),
        ({"rpc": {"namespaces": [{"name": "bb"}, {"name": "bb"}]}},
         "rpc namespace name must be unique: bb"),
        ({"rpc": {"without_namespace": {"proxy_name": "zz"}}}, "proxy zz not found for rpc"),
        ({"rpc": {"proxy": {"endpoint": "python://nomodule"},
                  "without_namespace": {"proxy_enabled": True}}},
         "in rpc.proxy: hook endpoint must be python://module:function"),
        ({"rpc": {"proxy": {"endpoint": "python://no_such_module_x:f"},
                  "without_namespace": {"proxy_enabled": True}}},
         "in rpc.proxy: hook module no_such_module_x not found"),
    ],
)  # fmt: skip
def test_validation(tmp_path: Path, body: dict[str, Any], message: str) -> None:
    cfg = load_config(str(_write(tmp_path, body)), {}).config
    with pytest.raises(ConfigError) as exc:
        validate(cfg)
    assert str(exc.value).startswith(message), str(exc.value)


def _write(tmp_path: Path, body: dict[str, Any]) -> Path:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(body))
    return path


# ---- request bodies --------------------------------------------------------------------
def test_request_body_is_gos() -> None:
    request = {
        "client": "c1",
        "transport": "websocket",
        "protocol": "json",
        "encoding": "json",
        "user": "",
        "channel": "ch",
        "data": b'{"a": [1, 2]}',
        "meta": None,
    }
    # proto order, zero values left out, raw JSON compact
    assert encode_request("publish", request) == (
        b'{"client":"c1","transport":"websocket","protocol":"json","encoding":"json",'
        b'"channel":"ch","data":{"a":[1,2]}}'
    )
    with pytest.raises(ProxyFailure):
        encode_request("rpc", {"method": "m", "data": b"\x00\xff"})
    assert request_view("rpc", {"method": "m", "data": b"[1]"}) == {"method": "m", "data": [1]}


# ---- answers ---------------------------------------------------------------------------
def test_answers_are_decoded_as_go_decodes_them() -> None:
    resp = decode_response("connect", b'{"RESULT": {"User": "u", "info": {"k": "v"}, "x": 1}}')
    assert resp == {"result": {"user": "u", "info": b'{"k": "v"}'}}  # raw kept as written
    assert decode_response("rpc", b"null") == {}
    assert decode_response("rpc", b'{"result": null}') == {}
    for bad in (b"[1]", b'{"result": 5}', b'{"result": {"data"', b'{"error": {"code": "1"}}'):
        with pytest.raises(ProxyFailure):
            decode_response("rpc", bad)


def test_outcomes() -> None:
    with pytest.raises(DisconnectError) as d:
        connect_outcome({"disconnect": {"code": 4500, "reason": "r"}, "error": {"code": 1}})
    assert d.value.disconnect.code == 4500
    with pytest.raises(ReplyError) as e:
        rpc_outcome({"error": {"code": 4000, "message": "m", "temporary": True}})
    assert e.value.error.to_dict() == {"code": 4000, "message": "m", "temporary": True}
    assert connect_outcome({}).claims is None
    out = connect_outcome(
        {"result": {"user": "u", "b64info": "e30=", "channels": ["a"],
                    "subs": {"b": {"override": {"presence": {"value": True}}}}}}
    )  # fmt: skip
    assert out.claims is not None and out.claims.info == b"{}"
    assert out.claims.subs["b"].override == Override(presence=True)
    assert set(out.claims.subs) == {"a", "b"}
    with pytest.raises(ReplyError) as e:
        rpc_outcome({"result": {"b64data": "!!"}})
    assert e.value.error.code == 100
    assert subscribe_outcome({"result": {"expire_at": 5}}).expire_at == 5
    assert publish_outcome({"result": {"skip_history": True}}, b"d") == ProxiedPublish(b"d", True)
    assert publish_outcome({"result": {"data": b"[]", "idempotency_key": "k"}}, b"d") == (
        ProxiedPublish(b"[]", False, "k")
    )
    assert refresh_outcome({"error": {"code": 1}}).expired  # only result counts
    assert refresh_outcome({"result": {"expire_at": 9}}).expire_at == 9


def test_stream_subscribe_outcome() -> None:
    """The first message of a subscribe stream: the error loses ``temporary``, disconnect
    wins, only presence / join_leave / force_push_join_leave overrides count."""
    with pytest.raises(ReplyError) as err:
        stream_subscribe_outcome({"error": {"code": 4001, "message": "m", "temporary": True}})
    assert err.value.error.to_dict() == {"code": 4001, "message": "m"}
    with pytest.raises(DisconnectError) as disc:
        stream_subscribe_outcome({"error": {"code": 1}, "disconnect": {"code": 4500}})
    assert disc.value.disconnect.code == 4500
    override = {"force_recovery": {"value": True}, "presence": {"value": False}}
    out = stream_subscribe_outcome({"result": {"override": override, "b64info": "e30="}})
    assert out.override == Override(presence=False) and out.info == b"{}"
    assert stream_subscribe_outcome({}).override is None


# ---- gRPC ------------------------------------------------------------------------------
def test_generated_module_matches_the_proto(tmp_path: Path) -> None:
    fresh = descriptor_pb2.FileDescriptorSet()
    fresh.ParseFromString(
        gen_grpc.descriptor_set(tmp_path, gen_grpc.PROXY_DIR, gen_grpc.PROXY_PROTOS)
    )
    (proto,) = [f for f in fresh.file if f.name == "proxy.proto"]
    for message in proto.message_type:
        for fd in message.field:
            fd.ClearField("json_name")
        for nested in message.nested_type:
            for fd in nested.field:
                fd.ClearField("json_name")
    committed = descriptor_pb2.FileDescriptorProto()
    committed.ParseFromString(proxy_pb2.DESCRIPTOR.serialized_pb)
    assert committed == proto


def test_field_numbers_are_centrifugos() -> None:
    """A few fields whose numbers Centrifugo's proxy.proto fixes (gaps included)."""
    d = proxy_pb2.DESCRIPTOR.message_types_by_name
    assert d["ConnectRequest"].fields_by_name["data"].number == 10
    assert d["ConnectRequest"].fields_by_name["channels"].number == 14
    assert d["SubscribeRequest"].fields_by_name["b64data"].number == 15
    assert d["PublishResult"].fields_by_name["skip_history"].number == 3
    assert d["RPCRequest"].fields_by_name["meta"].number == 14
    assert d["ConnectResult"].fields_by_name["subs"].number == 8
    service = proxy_pb2.DESCRIPTOR.services_by_name["CentrifugoProxy"]
    assert service.full_name == "centrifugal.centrifugo.proxy.CentrifugoProxy"


def test_grpc_is_imported_only_for_grpc_proxies() -> None:
    """The front imports relay.server before forking: no grpcio in it."""
    code = "import sys, relay.server, relay.proxy; print('grpc' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_proxy_config_is_hashable_enough() -> None:
    assert ProxyConfig() == ProxyConfig()
