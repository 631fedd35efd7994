"""The batch path's shortcuts give what the general code gives: the one-call decoder of a
batch of publishes and the template encoder of its replies."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from relay.api import decode_body
from relay.protocol import json_codec
from relay.protocol.api_requests import PublishRequest, decode_publish_batch_fast
from relay.transports.http_api import encode_batch_result

# positions as the executor builds them: offset, then epoch (Go's field order)
_positions = st.builds(
    lambda offset, epoch: {"offset": offset, "epoch": epoch},
    st.integers(0, 2**64 - 1) | st.booleans(),
    st.text(max_size=12),
)
_replies = st.one_of(
    st.fixed_dictionaries({"publish": _positions}),
    st.fixed_dictionaries({"publish": st.just({})}),
    st.fixed_dictionaries({"error": st.fixed_dictionaries({"code": st.integers(0, 200)})}),
    st.fixed_dictionaries({"publish": _positions, "error": st.just({})}),
)


@given(st.lists(_replies, max_size=20))
def test_encode_batch_result_is_the_general_encoding(replies: list[dict[str, Any]]) -> None:
    result = {"replies": replies}
    assert encode_batch_result(result) == json_codec.dumps(result)


def test_one_call_decoder_matches_element_by_element() -> None:
    body = (
        b'{"commands":[{"publish":{"channel":"a","data":{"x": 1}}},'
        b'{"publish":{"channel":"b","data":"s","tags":{"k":"v"},"delta":true}}],"parallel":true}'
    )
    fast = decode_publish_batch_fast(body)
    assert fast is not None
    reqs, parallel = fast
    assert parallel is True
    assert [(r.channel, bytes(r.data), r.tags, r.delta) for r in reqs] == [
        ("a", b'{"x": 1}', None, False),
        ("b", b'"s"', {"k": "v"}, True),
    ]
    assert decode_body("batch", body) == {"commands": reqs, "parallel": True}


def test_one_call_decoder_leaves_other_batches_to_the_general_path() -> None:
    mixed = b'{"commands":[{"publish":{"channel":"a","data":1}},{"presence":{"channel":"a"}}]}'
    assert decode_publish_batch_fast(mixed) is None
    commands = decode_body("batch", mixed)["commands"]
    assert isinstance(commands[0], PublishRequest) and commands[1] == {"presence": {"channel": "a"}}
    too_big = b'{"commands":[{"publish":{"channel":"a","data":1,"version":18446744073709551616}}]}'
    assert decode_publish_batch_fast(too_big) is None
    assert decode_publish_batch_fast(b'{"commands":[{"publish":{"channel":"\xff"}}]}') is None
