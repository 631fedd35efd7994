"""Fossil delta publications: the encodings (relay.protocol.delta) and the hub's fan-out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from relay.fastpath import fossil_apply
from relay.hub import Hub
from relay.protocol.codecs import JSON, PROTOBUF, Codec
from relay.protocol.delta import delta_payloads, json_string, recovered_chain
from relay.protocol.messages import Publication
from relay.protocol.protobuf_codec import decode_message

BIG = json.dumps({"items": [{"id": i, "v": "x" * 20} for i in range(50)]}).encode()
BIG2 = BIG.replace(b'"id": 7,', b'"id": 77,')


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (b'{"a":1}', b'"{\\"a\\":1}"'),
        (b"", b'""'),
        (b"<a&b>", b'"\\u003ca\\u0026b\\u003e"'),  # Go's HTML escaping
        (b"\n\t\x01\x7f", b'"\\n\\t\\u0001\x7f"'),
        (b"\xe2\x80\xa8\xe2\x80\xa9", b'"\\u2028\\u2029"'),
        (b"\xff\xe2\x82z", b'"\\ufffd\\ufffd\\ufffdz"'),  # one \ufffd per invalid byte
        ("é€".encode(), '"é€"'.encode()),  # valid UTF-8 stays as is
    ],
)
def test_json_string_as_go_escapes(raw: bytes, want: bytes) -> None:
    assert json_string(raw) == want
    if b"\xff" not in raw:
        assert json.loads(want).encode() == raw


def test_payloads_json_full_is_a_string_and_delta_applies() -> None:
    prev = Publication(BIG, offset=1)
    pub = Publication(BIG2, offset=2, delta=True)
    full, delta = delta_payloads("json", "ch", pub, prev)
    f = json.loads(full)["push"]["pub"]
    assert f == {"data": BIG2.decode(), "offset": 2}
    d = json.loads(delta)["push"]["pub"]
    assert d["delta"] is True and d["offset"] == 2
    assert fossil_apply(BIG, d["data"].encode()) == BIG2
    assert list(d) == ["data", "offset", "delta"]  # protocol field order


def test_payloads_protobuf() -> None:
    prev = Publication(BIG, offset=1)
    full, delta = delta_payloads("protobuf", "ch", Publication(BIG2, offset=2), prev)
    f = decode_message("Reply", full)["push"]["pub"]
    assert bytes(f["data"]) == BIG2 and not f.get("delta")
    d = decode_message("Reply", delta)["push"]["pub"]
    assert d["delta"] is True
    assert fossil_apply(BIG, bytes(d["data"])) == BIG2


def test_no_base_or_no_gain_means_full() -> None:
    pub = Publication(b'{"a":1}', offset=2)
    full, delta = delta_payloads("json", "ch", pub, None)
    assert full is delta
    # a delta that is not smaller than the data: the full data goes (hub.go getDeltaPub)
    full, delta = delta_payloads("json", "ch", pub, Publication(b'{"zzzzzzzzzzzzzzzz":2}'))
    assert full is delta


def test_recovered_chain() -> None:
    pubs = [Publication(BIG, offset=1), Publication(BIG2, offset=2), Publication(BIG, offset=3)]
    chain = recovered_chain(pubs, json=True)
    assert [bool(p.get("delta")) for p in chain] == [False, True, True]
    base = json.loads(chain[0]["data"]).encode()
    assert base == BIG
    for pub, item in zip(pubs[1:], chain[1:], strict=True):
        base = fossil_apply(base, json.loads(item["data"]).encode())
        assert base == pub.data
    proto = recovered_chain(pubs, json=False)
    assert proto[0]["data"] == BIG and fossil_apply(BIG, proto[1]["data"]) == BIG2


# ---- the hub ---------------------------------------------------------------------------------
@dataclass
class DeltaSub:
    uid: str
    codec: Codec = JSON
    transport_name: str = "websocket"
    plain: list[bytes | None] = field(default_factory=list)
    pairs: list[tuple[bytes, bytes]] = field(default_factory=list)

    def deliver_publication(
        self, channel: str, pub: Publication, payload: bytes | None, epoch: str = ""
    ) -> None:
        self.plain.append(payload)

    def deliver_delta(
        self, channel: str, pub: Publication, full: bytes, delta: bytes, epoch: str
    ) -> None:
        self.pairs.append((full, delta))

    def deliver_join_leave(
        self, channel: str, payload: bytes, client_id: str = "", kind: str = "join"
    ) -> None:
        return None


def _hub(n_json: int, n_proto: int, n_plain: int) -> tuple[Hub, list[DeltaSub], list[DeltaSub]]:
    hub = Hub()
    delta = [DeltaSub(f"j{i}") for i in range(n_json)]
    delta += [DeltaSub(f"p{i}", PROTOBUF) for i in range(n_proto)]
    plain = [DeltaSub(f"x{i}") for i in range(n_plain)]
    for sub in delta + plain:
        hub.add("ch", sub)
    for sub in delta:
        hub.set_delta("ch", sub, True)
    return hub, delta, plain


def test_hub_encodes_once_per_codec_and_base() -> None:
    hub, delta, plain = _hub(3, 2, 2)
    hub.broadcast_publication("ch", Publication(BIG, offset=1, delta=True), "e")
    hub.broadcast_publication("ch", Publication(BIG2, offset=2, delta=True), "e")
    json_pairs = [s.pairs[1] for s in delta if s.codec is JSON]
    proto_pairs = [s.pairs[1] for s in delta if s.codec is PROTOBUF]
    # the very same bytes objects for every subscriber of a codec: encoded once
    assert all(p[0] is json_pairs[0][0] and p[1] is json_pairs[0][1] for p in json_pairs)
    assert all(p[1] is proto_pairs[0][1] for p in proto_pairs)
    assert json_pairs[0][1] is not json_pairs[0][0]  # a real delta against offset 1
    d = json.loads(json_pairs[0][1])["push"]["pub"]
    assert fossil_apply(BIG, d["data"].encode()) == BIG2
    # the others get the plain push, data as raw JSON
    assert json.loads(plain[0].plain[1])["push"]["pub"]["data"] == json.loads(BIG2)


@pytest.mark.parametrize(
    ("second", "epoch"),
    [
        (Publication(BIG2, offset=3, delta=True), "e"),  # offset gap: no base
        (Publication(BIG2, offset=2, delta=True), "other"),  # another epoch
        (Publication(BIG2, offset=2), "e"),  # published without delta
    ],
)
def test_hub_sends_full_without_a_valid_base(second: Publication, epoch: str) -> None:
    hub, delta, _ = _hub(1, 0, 0)
    hub.broadcast_publication("ch", Publication(BIG, offset=1, delta=True), "e")
    hub.broadcast_publication("ch", second, epoch)
    full, d = delta[0].pairs[1]
    assert full is d


def test_hub_forgets_the_base_with_the_last_delta_subscriber() -> None:
    hub, delta, plain = _hub(1, 0, 1)
    hub.broadcast_publication("ch", Publication(BIG, offset=1, delta=True), "e")
    hub.remove("ch", delta[0])
    hub.broadcast_publication("ch", Publication(BIG2, offset=2, delta=True), "e")
    assert len(plain[0].plain) == 2 and len(delta[0].pairs) == 1
    hub.add("ch", delta[0])
    hub.set_delta("ch", delta[0], True)
    hub.broadcast_publication("ch", Publication(BIG, offset=3, delta=True), "e")
    full, d = delta[0].pairs[1]
    assert full is d  # offset 2 went by without a delta subscriber: no base kept
    hub.seed_delta_base("ch", Publication(BIG, offset=3), "e")
    hub.broadcast_publication("ch", Publication(BIG2, offset=4, delta=True), "e")
    assert delta[0].pairs[2][0] is not delta[0].pairs[2][1]


def test_the_delta_flag_crosses_the_bus_and_redis() -> None:
    """Publish ``delta`` travels with the publication (centrifuge broker_redis.go puts it
    in ``Publication.delta``), and plain publications stay plain."""
    from relay.engines.redis.wire import decode_pub, encode_pub
    from relay.engines.wire import pub_from_wire, pub_to_wire

    for flag in (True, False):
        pub = Publication(BIG, offset=4, delta=flag)
        assert pub_from_wire(pub_to_wire(pub)).delta is flag
        assert decode_pub(encode_pub(pub), 4).delta is flag
