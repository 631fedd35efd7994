"""The specialised publication-push encoders equal the generic schema walkers."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.protocol import json_codec, protobuf_codec
from relay.protocol.messages import ClientInfo, Publication
from relay.protocol.push import encode_pub_push_json, encode_pub_push_protobuf

texts = st.text(max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
infos = st.none() | st.builds(
    ClientInfo,
    user=texts,
    client=texts,
    conn_info=st.none() | json_values.map(json_codec.dumps),
    chan_info=st.none() | json_values.map(json_codec.dumps),
)


@st.composite
def publications(draw: st.DrawFn) -> Publication:
    return Publication(
        data=draw(json_values.map(json_codec.dumps)),
        info=draw(infos),
        offset=draw(st.integers(0, 2**64 - 1)),
        tags=draw(st.none() | st.dictionaries(texts, texts, max_size=3)),
        time=draw(st.integers(0, 2**62)),
        channel=draw(st.just("") | texts),  # a wildcard subscription's concrete channel
    )


def generic(codec: object, channel: str, pub: Publication) -> bytes:
    return codec.encode_reply({"push": {"channel": channel, "pub": pub.to_dict()}})  # type: ignore[attr-defined,no-any-return]


@given(texts, publications())
@settings(max_examples=300, deadline=None)
def test_json_push_matches_generic(channel: str, pub: Publication) -> None:
    fast = encode_pub_push_json(channel, pub)
    assert fast == generic(json_codec, channel, pub)
    assert json.loads(fast)["push"].get("channel", "") == channel


@given(texts, publications())
@settings(max_examples=300, deadline=None)
def test_protobuf_push_matches_generic(channel: str, pub: Publication) -> None:
    assert encode_pub_push_protobuf(channel, pub) == generic(protobuf_codec, channel, pub)


def test_binary_payload_goes_raw_in_protobuf() -> None:
    pub = Publication(b"\xff\x00", offset=3, data_json=False)
    decoded = protobuf_codec.decode_message("Reply", encode_pub_push_protobuf("ch", pub))
    assert decoded["push"]["pub"] == {"data": b"\xff\x00", "offset": 3}
