"""The server API's request tables (protocol/schema.py) and what is built from them."""

from __future__ import annotations

import msgspec

from relay.api import METHODS, SCHEMAS
from relay.protocol.api_requests import PublishRequest
from relay.protocol.schema import API_MESSAGES, API_METHODS, SCALAR_KINDS


def test_every_reference_resolves_and_kinds_are_known() -> None:
    for name, fields in API_MESSAGES.items():
        numbers = [f.number for f in fields]
        assert len(set(numbers)) == len(numbers), name
        for f in fields:
            assert f.kind in SCALAR_KINDS or f.kind == "msg", (name, f)
            if f.kind == "msg":
                assert f.ref in API_MESSAGES, (name, f)


def test_decoder_schemas_follow_the_tables() -> None:
    assert set(SCHEMAS) == set(API_METHODS)
    assert SCHEMAS["publish"] == {
        "channel": "str",
        "data": "json",
        "b64data": "str",
        "skip_history": "bool",
        "tags": "map_str",
        "idempotency_key": "str",
        "delta": "bool",
        "version": "uint64",
        "version_epoch": "str",
    }
    assert SCHEMAS["disconnect"]["disconnect"] == {"code": "uint32", "reason": "str"}
    assert SCHEMAS["subscribe"]["recover_since"] == {"offset": "uint64", "epoch": "str"}
    assert SCHEMAS["batch"] == {"commands": "commands", "parallel": "bool"}
    assert SCHEMAS["info"] == {}


def test_batch_lookup_order_is_the_command_message() -> None:
    assert METHODS[:3] == ("publish", "broadcast", "subscribe")
    assert METHODS == tuple(f.name for f in API_MESSAGES["Command"])


def test_typed_publish_request_has_the_tables_fields() -> None:
    names = [f.name for f in msgspec.structs.fields(PublishRequest)]
    assert names == [f.name for f in API_MESSAGES["PublishRequest"]]
