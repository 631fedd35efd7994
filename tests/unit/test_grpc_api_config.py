"""``grpc_api``: its config keys (file, env, flags) and relay's ``.proto`` wire interface.

The generated ``relay/api/grpc/*_pb2.py`` must describe exactly what the ``.proto`` files
say (protoc from grpcio-tools compiles them again here), and the field numbers must be
the ones relay's HTTP request tables (``protocol/schema.py``) already carry from
Centrifugo's ``internal/apiproto/api.proto``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from relay.api.grpc import centrifugo_api_pb2, rpc_status_pb2
from relay.cli import _explicit_flags, build_parser
from relay.config import Config, config_to_dict, known_env_vars, load_config
from relay.config.schema import not_implemented_paths
from relay.config.tree import GrpcAPIConfig, TLSConfig
from relay.protocol.schema import API_MESSAGES
from relay.transports.grpc_api import listen_address

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import gen_grpc  # noqa: E402


# ---- config ----------------------------------------------------------------------------
def test_defaults_are_centrifugos() -> None:
    cfg = Config().grpc_api
    assert cfg == GrpcAPIConfig(
        enabled=False,
        error_mode="",
        address="",
        port=10000,
        key="",
        tls=TLSConfig(),
        reflection=False,
        max_receive_message_size=0,
    )
    dumped = config_to_dict(Config())["grpc_api"]
    assert isinstance(dumped, dict) and dumped["port"] == 10000 and "tls" in dumped
    assert not [p for p in not_implemented_paths() if p.startswith("grpc_api")]


def test_file_keys(tmp_path: Path) -> None:
    body = {
        "grpc_api": {
            "enabled": True,
            "address": "127.0.0.1",
            "port": 10100,
            "key": "secret",
            "error_mode": "transport",
            "reflection": True,
            "max_receive_message_size": 1 << 20,
            "tls": {"enabled": True, "cert_pem": "c.pem", "key_pem": "k.pem"},
        }
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(body))
    result = load_config(str(path), {})
    cfg = result.config.grpc_api
    assert (cfg.enabled, cfg.address, cfg.port, cfg.key) == (True, "127.0.0.1", 10100, "secret")
    assert (cfg.error_mode, cfg.reflection, cfg.max_receive_message_size) == (
        "transport",
        True,
        1 << 20,
    )
    assert cfg.tls == TLSConfig(enabled=True, cert_pem="c.pem", key_pem="k.pem")
    assert result.warnings == []
    path.write_text(json.dumps({"grpc_api": {"bogus": 1}}))
    warnings = load_config(str(path), {}).warnings
    assert warnings == [("unknown key in configuration file", {"key": "grpc_api.bogus"})]


def test_env_vars() -> None:
    env = {
        "CENTRIFUGO_GRPC_API_ENABLED": "true",
        "CENTRIFUGO_GRPC_API_PORT": "10200",
        "CENTRIFUGO_GRPC_API_KEY": "k",
        "CENTRIFUGO_GRPC_API_ERROR_MODE": "transport",
        "CENTRIFUGO_GRPC_API_TLS_ENABLED": "1",
        "CENTRIFUGO_GRPC_API_TLS_CLIENT_CA_PEM": "ca.pem",
        "CENTRIFUGO_GRPC_API_MAX_RECEIVE_MESSAGE_SIZE": "4096",
    }
    result = load_config(None, env)
    cfg = result.config.grpc_api
    assert (cfg.enabled, cfg.port, cfg.key, cfg.error_mode) == (True, 10200, "k", "transport")
    assert cfg.tls.enabled and cfg.tls.client_ca_pem == "ca.pem"
    assert cfg.max_receive_message_size == 4096
    assert result.warnings == []
    names = {name for name, _ in known_env_vars(Config())}
    assert {"CENTRIFUGO_GRPC_API_PORT", "CENTRIFUGO_GRPC_API_TLS_KEY_PEM"} <= names


def test_flags_take_effect() -> None:
    """``--grpc_api.enabled`` and ``--grpc_api.port`` (the helm chart passes the port)."""
    args = build_parser().parse_args(["--grpc_api.enabled", "--grpc_api.port", "10300"])
    env = {"CENTRIFUGO_GRPC_API_PORT": "10400"}
    result = load_config(None, env, _explicit_flags(args))
    assert result.config.grpc_api.enabled and result.config.grpc_api.port == 10300
    assert result.warnings == []
    args = build_parser().parse_args(["--grpc_api.enabled=false"])
    assert not load_config(None, {}, _explicit_flags(args)).config.grpc_api.enabled


@pytest.mark.parametrize(
    ("address", "port", "expected"),
    [("", 10000, "[::]:10000"), ("127.0.0.1", 0, "127.0.0.1:0"), ("::1", 5, "[::1]:5")],
)
def test_listen_address(address: str, port: int, expected: str) -> None:
    assert listen_address(GrpcAPIConfig(address=address, port=port)) == expected


# ---- the .proto files and their generated modules ---------------------------------------
def _committed(module: object) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    proto.ParseFromString(module.DESCRIPTOR.serialized_pb)  # type: ignore[attr-defined]
    return proto


def _without_json_names(proto: descriptor_pb2.FileDescriptorProto) -> None:
    """protoc's descriptor sets carry ``json_name``; the generated modules do not."""

    def strip(message: descriptor_pb2.DescriptorProto) -> None:
        for fd in message.field:
            fd.ClearField("json_name")
        for nested in message.nested_type:
            strip(nested)

    for message in proto.message_type:
        strip(message)


def test_generated_modules_match_the_proto_files(tmp_path: Path) -> None:
    """``make grpc-proto`` after editing a ``.proto`` (scripts/gen_grpc.py)."""
    fresh = descriptor_pb2.FileDescriptorSet()
    fresh.ParseFromString(gen_grpc.descriptor_set(tmp_path))
    by_name = {f.name: f for f in fresh.file}
    for proto in fresh.file:
        _without_json_names(proto)
    assert set(by_name) >= set(gen_grpc.PROTOS)
    assert _committed(centrifugo_api_pb2) == by_name["centrifugo_api.proto"]
    assert _committed(rpc_status_pb2) == by_name["rpc_status.proto"]


def test_wire_numbers_agree_with_the_http_tables() -> None:
    """Every field relay's HTTP API decodes has the same name and number in the .proto."""
    messages = centrifugo_api_pb2.DESCRIPTOR.message_types_by_name
    for name, fields in API_MESSAGES.items():
        desc = messages[name]
        numbers = {f.name: f.number for f in desc.fields}
        assert {f.name: f.number for f in fields}.items() <= numbers.items(), name


def test_service_shape() -> None:
    service = centrifugo_api_pb2.DESCRIPTOR.services_by_name["CentrifugoApi"]
    assert service.full_name == "centrifugal.centrifugo.api.CentrifugoApi"
    assert len(service.methods) == 40
    publish = service.methods_by_name["Publish"]
    assert (publish.input_type.name, publish.output_type.name) == (
        "PublishRequest",
        "PublishResponse",
    )
    for method in service.methods:
        response = method.output_type
        if method.name != "Batch":
            assert [(f.name, f.number) for f in response.fields] == [("error", 1), ("result", 2)]
    status = rpc_status_pb2.Status.DESCRIPTOR
    assert [(f.name, f.number) for f in status.fields] == [
        ("code", 1),
        ("message", 2),
        ("details", 3),
    ]
