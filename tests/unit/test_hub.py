"""Pure unit tests for the per-worker subscriber index and fan-out (relay.hub)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from relay.hub import Hub
from relay.protocol.codecs import JSON, PROTOBUF, Codec
from relay.protocol.messages import ClientInfo, Publication
from relay.protocol.protobuf_codec import decode_message


@dataclass
class FakeSub:
    uid: str
    codec: Codec = JSON
    transport_name: str = "websocket"
    pubs: list[tuple[str, Publication, bytes | None]] = field(default_factory=list)
    join_leave: list[tuple[str, bytes]] = field(default_factory=list)

    def deliver_publication(
        self, channel: str, pub: Publication, payload: bytes | None, epoch: str = ""
    ) -> None:
        self.pubs.append((channel, pub, payload))

    def deliver_join_leave(
        self, channel: str, payload: bytes, client_id: str = "", kind: str = "join"
    ) -> None:
        self.join_leave.append((channel, payload))


def counting(codec: Codec) -> tuple[Codec, list[dict[str, Any]]]:
    """The same codec with a recorder on its encoders (calls logged as Reply dicts)."""
    calls: list[dict[str, Any]] = []
    inner = codec.encode_reply
    inner_push = codec.encode_pub_push

    def encode(reply: dict[str, Any]) -> bytes:
        calls.append(reply)
        return inner(reply)

    def encode_push(channel: str, pub: Publication) -> bytes:
        calls.append({"push": {"channel": channel, "pub": pub.to_dict()}})
        return inner_push(channel, pub)

    return codec._replace(encode_reply=encode, encode_pub_push=encode_push), calls


# ---- index ------------------------------------------------------------------------------
def test_empty_hub() -> None:
    hub = Hub()
    assert hub.num_channels == 0
    assert hub.num_subscriptions == 0
    assert hub.channels() == []
    assert not hub.has("a")
    assert tuple(hub.subscribers("a")) == ()
    assert hub.num_subscribers("a") == 0


def test_add_returns_true_only_for_first() -> None:
    hub = Hub()
    a, b = FakeSub("a"), FakeSub("b")
    assert hub.add("ch", a) is True
    assert hub.add("ch", b) is False
    assert hub.add("ch", a) is False  # re-adding the same client
    assert hub.num_subscribers("ch") == 2
    assert hub.add("other", a) is True
    assert hub.num_channels == 2
    assert hub.num_subscriptions == 3
    assert sorted(hub.channels()) == ["ch", "other"]
    assert hub.has("ch") and hub.has("other")


def test_add_same_uid_replaces_entry() -> None:
    hub = Hub()
    old, new = FakeSub("a"), FakeSub("a")
    hub.add("ch", old)
    hub.add("ch", new)
    assert hub.num_subscribers("ch") == 1
    assert list(hub.subscribers("ch")) == [new]


def test_remove_returns_true_when_last_leaves() -> None:
    hub = Hub()
    a, b = FakeSub("a"), FakeSub("b")
    hub.add("ch", a)
    hub.add("ch", b)
    assert hub.remove("ch", a) is False
    assert hub.has("ch")
    assert hub.remove("ch", b) is True
    assert not hub.has("ch")
    assert hub.num_channels == 0
    assert hub.channels() == []


@pytest.mark.parametrize("setup", [[], ["x"], ["a"]])
def test_remove_unknown_returns_false(setup: list[str]) -> None:
    hub = Hub()
    for uid in setup:
        hub.add("ch" if uid != "a" else "other", FakeSub(uid))
    before = (hub.num_channels, hub.num_subscriptions)
    assert hub.remove("ch", FakeSub("a")) is False
    assert (hub.num_channels, hub.num_subscriptions) == before


def test_remove_twice() -> None:
    hub = Hub()
    a = FakeSub("a")
    hub.add("ch", a)
    assert hub.remove("ch", a) is True
    assert hub.remove("ch", a) is False


def test_subscribers_is_a_snapshot() -> None:
    hub = Hub()
    a, b = FakeSub("a"), FakeSub("b")
    hub.add("ch", a)
    snap = hub.subscribers("ch")
    hub.add("ch", b)
    assert list(snap) == [a]
    assert set(s.uid for s in hub.subscribers("ch")) == {"a", "b"}


# ---- publications -----------------------------------------------------------------------
def test_broadcast_to_empty_channel() -> None:
    hub = Hub()
    assert hub.broadcast_publication("ch", Publication(b"{}")) == 0


def test_broadcast_encodes_once_per_codec_and_shares_bytes() -> None:
    json_codec, json_calls = counting(JSON)
    pb_codec, pb_calls = counting(PROTOBUF)
    hub = Hub()
    jsubs = [FakeSub(f"j{i}", json_codec) for i in range(4)]
    psubs = [FakeSub(f"p{i}", pb_codec) for i in range(3)]
    for s in (*jsubs, *psubs):
        hub.add("ch", s)
    pub = Publication(b'{"x":1}', info=ClientInfo("u", "c"), offset=5)
    assert hub.broadcast_publication("ch", pub) == 7
    assert len(json_calls) == 1
    assert len(pb_calls) == 1

    jpayload = jsubs[0].pubs[0][2]
    assert isinstance(jpayload, bytes)
    for s in jsubs:
        assert len(s.pubs) == 1
        ch, p, payload = s.pubs[0]
        assert ch == "ch" and p is pub
        assert payload is jpayload
    assert json.loads(jpayload) == {
        "push": {
            "channel": "ch",
            "pub": {"data": {"x": 1}, "info": {"user": "u", "client": "c"}, "offset": 5},
        }
    }

    ppayload = psubs[0].pubs[0][2]
    assert isinstance(ppayload, bytes)
    for s in psubs:
        assert s.pubs[0][2] is ppayload
    assert ppayload != jpayload
    # the Protobuf bytes are one length-less Reply carrying the push
    reply = decode_message("Reply", ppayload)
    assert reply["push"]["channel"] == "ch"
    assert reply["push"]["pub"]["data"] == b'{"x":1}'
    assert reply["push"]["pub"]["offset"] == 5


def test_broadcast_encodes_again_for_next_publication() -> None:
    codec, calls = counting(JSON)
    hub = Hub()
    s = FakeSub("a", codec)
    hub.add("ch", s)
    hub.broadcast_publication("ch", Publication(b"1"))
    hub.broadcast_publication("ch", Publication(b"2"))
    assert len(calls) == 2
    assert [json.loads(p)["push"]["pub"]["data"] for _, _, p in s.pubs] == [1, 2]  # type: ignore[arg-type]


def test_broadcast_only_to_its_channel() -> None:
    hub = Hub()
    a, b = FakeSub("a"), FakeSub("b")
    hub.add("one", a)
    hub.add("two", b)
    assert hub.broadcast_publication("one", Publication(b"{}")) == 1
    assert len(a.pubs) == 1 and b.pubs == []


def test_binary_publication_not_encoded_for_json() -> None:
    json_codec, json_calls = counting(JSON)
    hub = Hub()
    j1, j2 = FakeSub("j1", json_codec), FakeSub("j2", json_codec)
    p1 = FakeSub("p1", PROTOBUF)
    for s in (j1, p1, j2):
        hub.add("ch", s)
    pub = Publication(b"\xff\x00binary", data_json=False)
    assert hub.broadcast_publication("ch", pub) == 3
    assert json_calls == []
    assert j1.pubs == [("ch", pub, None)]
    assert j2.pubs == [("ch", pub, None)]
    payload = p1.pubs[0][2]
    assert isinstance(payload, bytes)
    assert decode_message("Reply", payload)["push"]["pub"]["data"] == b"\xff\x00binary"


def test_broadcast_survives_subscriber_removed_during_delivery() -> None:
    hub = Hub()

    class Leaver(FakeSub):
        def deliver_publication(
            self, channel: str, pub: Publication, payload: bytes | None, epoch: str = ""
        ) -> None:
            super().deliver_publication(channel, pub, payload, epoch)
            hub.remove(channel, self)

    a, b = Leaver("a"), FakeSub("b")
    hub.add("ch", a)
    hub.add("ch", b)
    hub.broadcast_publication("ch", Publication(b"{}"))
    assert len(a.pubs) == 1 and len(b.pubs) == 1
    assert hub.num_subscribers("ch") == 1


# ---- join / leave -----------------------------------------------------------------------
def test_join_leave_to_empty_channel_is_noop() -> None:
    Hub().broadcast_join_leave("ch", "join", ClientInfo("u", "c"))


@pytest.mark.parametrize("kind", ["join", "leave"])
def test_join_leave_broadcast(kind: str) -> None:
    json_codec, json_calls = counting(JSON)
    pb_codec, pb_calls = counting(PROTOBUF)
    hub = Hub()
    jsubs = [FakeSub(f"j{i}", json_codec) for i in range(3)]
    psubs = [FakeSub(f"p{i}", pb_codec) for i in range(2)]
    for s in (*jsubs, *psubs):
        hub.add("ch", s)
    hub.add("other", FakeSub("x"))
    info = ClientInfo("u", "c", conn_info=b'{"a":1}')
    hub.broadcast_join_leave("ch", kind, info)
    assert len(json_calls) == 1 and len(pb_calls) == 1
    jp = jsubs[0].join_leave[0][1]
    for s in jsubs:
        assert s.join_leave == [("ch", jp)]
        assert s.join_leave[0][1] is jp
        assert s.pubs == []
    assert json.loads(jp) == {
        "push": {
            "channel": "ch",
            kind: {"info": {"user": "u", "client": "c", "conn_info": {"a": 1}}},
        }
    }
    pp = psubs[0].join_leave[0][1]
    for s in psubs:
        assert s.join_leave[0][1] is pp
    reply = decode_message("Reply", pp)
    assert reply["push"]["channel"] == "ch"
    assert reply["push"][kind]["info"]["user"] == "u"
    assert reply["push"][kind]["info"]["client"] == "c"
