"""The OpenAPI (Swagger 2.0) document of the HTTP API (relay/api/openapi.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from openapi_spec_validator import validate

from relay.api import Executor
from relay.api.openapi import SECURITY_SCHEMES, document
from relay.api.results import ERROR_MESSAGE, RESULT_MESSAGES, RESULTS
from relay.protocol.json_decode import _INT_RANGES
from relay.protocol.schema import API_MESSAGES, API_METHODS, SCALAR_KINDS


def _executor_methods() -> set[str]:
    node: Any = SimpleNamespace(control_handlers={})
    return set(Executor(node).methods)


def _target(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[1]


def test_every_executor_method_has_a_post_path() -> None:
    doc = document()
    methods = _executor_methods()
    assert set(doc["paths"]) == {f"/{m}" for m in methods}
    assert set(RESULTS) == methods == set(API_METHODS)
    for method in methods:
        assert set(doc["paths"][f"/{method}"]) == {"post"}


def test_document_is_valid_swagger_2() -> None:
    validate(document())
    validate(document("", insecure=True, error_statuses=()))


def test_schemathesis_loads_every_operation() -> None:
    schema = schemathesis.openapi.from_dict(document())
    labels = sorted(op.ok().label for op in schema.get_all_operations())
    assert labels == sorted(f"POST /{m}" for m in API_METHODS)


def test_layout_matches_centrifugo() -> None:
    doc = document()
    assert doc["swagger"] == "2.0"
    assert doc["basePath"] == "/api"
    assert doc["consumes"] == doc["produces"] == ["application/json"]
    publish = doc["paths"]["/publish"]["post"]
    assert publish["operationId"] == "CentrifugoApi_Publish"
    assert doc["paths"]["/presence_stats"]["post"]["operationId"] == "CentrifugoApi_PresenceStats"
    assert doc["paths"]["/rpc"]["post"]["operationId"] == "CentrifugoApi_RPC"
    (body,) = publish["parameters"]
    assert body["in"] == "body" and body["required"] is True
    assert _target(body["schema"]) == "PublishRequest"
    assert _target(publish["responses"]["200"]["schema"]) == "PublishResponse"
    assert {"200", "400", "401"} <= set(publish["responses"])


def test_api_prefix_becomes_base_path() -> None:
    assert document("/custom/")["basePath"] == "/custom"
    assert document("")["basePath"] == "/"


def test_security_is_any_of_the_key_schemes() -> None:
    doc = document()
    assert doc["securityDefinitions"]["ApiKeyAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
    }
    where = {(s["in"], s["name"]) for s in SECURITY_SCHEMES.values()}
    assert where == {("header", "X-API-Key"), ("header", "Authorization"), ("query", "api_key")}
    assert doc["security"] == [{name: []} for name in SECURITY_SCHEMES]
    assert document(insecure=True)["security"] == []


def test_error_object_and_transport_statuses() -> None:
    doc = document(error_statuses=(500, 400, 404))
    error = doc["definitions"][ERROR_MESSAGE]
    assert set(error["properties"]) == {"code", "message"}
    assert error["additionalProperties"] is False
    responses = doc["paths"]["/history"]["post"]["responses"]
    assert set(responses) == {"200", "400", "401", "404", "500"}
    assert _target(responses["500"]["schema"]) == ERROR_MESSAGE
    assert "schema" not in responses["401"]
    # batch reports errors per reply, in either error mode
    assert set(doc["paths"]["/batch"]["post"]["responses"]) == {"200", "400", "401"}


def test_request_definitions_are_the_decoder_tables() -> None:
    defs = document()["definitions"]
    for method, ref in API_METHODS.items():
        fields = API_MESSAGES[ref]
        assert list(defs[ref].get("properties", {})) == [f.name for f in fields], method
        assert defs[ref]["x-nullable"] is True  # Go reads a null body as an empty request
        assert "additionalProperties" not in defs[ref]  # unknown keys are skipped
    history = defs["HistoryRequest"]["properties"]
    low, high = _INT_RANGES["int32"]
    assert (history["limit"]["minimum"], history["limit"]["maximum"]) == (low, high)
    assert _target(history["since"]) == "StreamPosition"
    position = defs["StreamPosition"]["properties"]["offset"]
    assert (position["minimum"], position["maximum"]) == _INT_RANGES["uint64"]
    tags = defs["PublishRequest"]["properties"]["tags"]
    assert tags["type"] == "object" and tags["additionalProperties"]["type"] == "string"
    channels = defs["BroadcastRequest"]["properties"]["channels"]
    assert channels["type"] == "array" and channels["items"]["x-nullable"] is True
    assert "type" not in defs["PublishRequest"]["properties"]["data"]  # any JSON value
    commands = defs["BatchRequest"]["properties"]["commands"]
    assert _target(commands["items"]) == "Command"


def test_response_definitions_are_the_result_tables() -> None:
    doc = document()
    defs = doc["definitions"]
    for method, result in RESULTS.items():
        answer = _target(doc["paths"][f"/{method}"]["post"]["responses"]["200"]["schema"])
        if method == "batch":
            assert answer == result
            continue
        wrapper = defs[answer]["properties"]
        assert _target(wrapper["result"]) == result
        assert _target(wrapper["error"]) == ERROR_MESSAGE
    for name, fields in RESULT_MESSAGES.items():
        assert defs[name]["additionalProperties"] is False, name
        assert list(defs[name].get("properties", {})) == [f.name for f in fields], name
    reply = defs["Reply"]["properties"]
    assert set(reply) == {"error", *RESULTS} - {"batch"}
    presence = defs["PresenceResult"]["properties"]["presence"]
    assert _target(presence["additionalProperties"]) == "ClientInfo"


def test_result_table_is_well_formed() -> None:
    kinds = SCALAR_KINDS | {"msg", "double"}
    for name, fields in RESULT_MESSAGES.items():
        numbers = [f.number for f in fields]
        assert len(set(numbers)) == len(numbers), name
        for f in fields:
            assert f.kind in kinds, (name, f)
            if f.kind == "msg":
                assert f.ref in RESULT_MESSAGES, (name, f)
    assert not set(RESULT_MESSAGES) & set(API_MESSAGES)


def test_every_reference_resolves() -> None:
    doc = document()
    refs: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "$ref" in value:
                refs.append(_target(value))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(doc)
    assert set(refs) <= set(doc["definitions"])
    assert set(doc["definitions"]) <= set(refs)  # nothing unused


@pytest.mark.parametrize("prefix", ["/api", "/x/y", ""])
def test_document_is_deterministic(prefix: str) -> None:
    assert document(prefix) == document(prefix)
