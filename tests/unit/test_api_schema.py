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


def test_decoder_tables_follow_the_schema() -> None:
    assert set(SCHEMAS) == set(API_METHODS)
    for method, ref in API_METHODS.items():
        assert list(SCHEMAS[method]) == [f.name for f in API_MESSAGES[ref]], method
        assert SCHEMAS[method].folded == {name.lower(): name for name in SCHEMAS[method]}
    assert SCHEMAS["info"] == {}


def test_batch_lookup_order_is_the_command_message() -> None:
    assert METHODS[:3] == ("publish", "broadcast", "subscribe")
    assert METHODS == tuple(f.name for f in API_MESSAGES["Command"])


def test_typed_publish_request_has_the_tables_fields() -> None:
    names = [f.name for f in msgspec.structs.fields(PublishRequest)]
    assert names == [f.name for f in API_MESSAGES["PublishRequest"]]
