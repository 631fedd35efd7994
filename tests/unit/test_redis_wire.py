"""The Redis engine's pure payload functions (relay.engines.redis.wire); no Redis needed."""

from __future__ import annotations

import hashlib
import math

import pytest

from relay.engines.redis import scripts
from relay.engines.redis.wire import (
    JOIN,
    LEAVE,
    P1,
    decode_info,
    decode_pub,
    encode_pub,
    entry_to_pub,
    ms,
    publish_result,
    range_ids,
    shard_index,
    split_p1,
    text,
)
from relay.protocol.messages import ClientInfo, HistoryFilter, Publication, StreamPosition
from relay.protocol.protobuf_codec import decode_message, encode_message


def _full_pub() -> Publication:
    return Publication(
        data=b'{"text":"hi"}',
        info=ClientInfo("u1", "c1", conn_info=b'{"a":1}', chan_info=b'{"b":2}'),
        offset=7,
        tags={"k": "v", "x": "y"},
        time=1_700_000_000_123,
    )


# ---- publications and client infos ------------------------------------------------------
def test_publication_round_trip_keeps_everything_but_the_offset_and_time() -> None:
    pub = _full_pub()
    body = encode_pub(pub)
    assert decode_pub(body) == Publication(
        data=pub.data, info=pub.info, offset=0, tags=pub.tags, time=0, data_json=True
    )
    # the offset travels outside the protobuf (stream id or __p1 prefix); the time a
    # Centrifugo broker stamps is read but not passed on (centrifuge's pubToProto drops it)
    assert "offset" not in decode_message("Publication", body)
    assert decode_message("Publication", body)["time"] == pub.time
    assert decode_pub(body, 7) == Publication(pub.data, pub.info, 7, pub.tags, 0)
    assert pub.offset == 7  # encoding does not touch the publication


def test_minimal_publication_and_binary_data() -> None:
    plain = Publication(data=b"[1,2]")
    assert decode_pub(encode_pub(plain)) == plain
    binary = decode_pub(encode_pub(Publication(data=b"\xff\x00 not json", data_json=False)))
    assert binary.data == b"\xff\x00 not json"
    assert binary.data_json is False
    assert binary.info is None and binary.tags is None and binary.time == 0


def test_client_info_round_trip_and_empty_infos() -> None:
    info = ClientInfo("user", "client", conn_info=b'{"c":1}', chan_info=b'"x"')
    assert decode_info(encode_message("ClientInfo", info.to_dict())) == info
    bare = decode_info(encode_message("ClientInfo", ClientInfo("u", "").to_dict()))
    assert bare == ClientInfo("u", "", conn_info=None, chan_info=None)


def test_join_leave_and_p1_markers_are_centrifugo_s() -> None:
    assert (P1, JOIN, LEAVE) == (b"__p1:", b"__j__", b"__l__")


# ---- __p1 prefix ------------------------------------------------------------------------
def test_split_p1_as_the_publish_script_builds_it() -> None:
    body = encode_pub(Publication(data=b'"a__b__c"'))  # "__" inside the body too
    payload = P1 + b"42:AbCdEfGh__" + body  # '__p1:' .. offset .. ':' .. epoch .. '__' .. pub
    offset, epoch, rest = split_p1(payload)
    assert (offset, epoch, rest) == (42, "AbCdEfGh", body)
    assert decode_pub(rest, offset).data == b'"a__b__c"'


def test_split_p1_without_history_epoch() -> None:
    assert split_p1(b"__p1:1:__xyz") == (1, "", b"xyz")


def test_split_p1_rejects_a_payload_without_the_closing_marker() -> None:
    with pytest.raises(ValueError):
        split_p1(b"__p1:5:epoch")


# ---- history ranges ---------------------------------------------------------------------
def _bound(stream_id: str) -> float:
    return {"-": -math.inf, "+": math.inf}.get(stream_id) or float(stream_id)


def _redis_range(offsets: list[int], flt: HistoryFilter) -> list[int]:
    """What the history script reads with ``range_ids(flt)`` from a stream of ``offsets``."""
    start, end = range_ids(flt)
    if end == "":  # the script skips the read
        return []
    if flt.reverse:  # XREVRANGE high low
        high, low = _bound(start), _bound(end)
        found = [o for o in reversed(offsets) if low <= o <= high]
    else:  # XRANGE low high
        low, high = _bound(start), _bound(end)
        found = [o for o in offsets if low <= o <= high]
    return found[: flt.limit] if flt.limit > 0 else found


def _expected(offsets: list[int], flt: HistoryFilter) -> list[int]:
    """The MemoryEngine's filtering: after ``since`` forward, before it in reverse."""
    items = list(offsets)
    if flt.since is not None:
        cut = flt.since.offset
        items = [o for o in items if (o < cut if flt.reverse else o > cut)]
    if flt.reverse:
        items.reverse()
    return items[: flt.limit] if flt.limit > 0 else items


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("limit", [-1, 2])
@pytest.mark.parametrize("since", [None, 1, 2, 5, 9, 10, 11, 30])
def test_range_ids_select_what_the_engine_contract_wants(
    reverse: bool, limit: int, since: int | None
) -> None:
    offsets = list(range(3, 11))  # trimmed stream: offsets 1 and 2 are gone
    pos = None if since is None else StreamPosition(since, "e")
    flt = HistoryFilter(since=pos, limit=limit, reverse=reverse)
    assert _redis_range(offsets, flt) == _expected(offsets, flt)


def test_range_ids_values() -> None:
    assert range_ids(HistoryFilter(limit=-1)) == ("-", "+")
    assert range_ids(HistoryFilter(limit=-1, reverse=True)) == ("+", "-")
    assert range_ids(HistoryFilter(StreamPosition(4, "e"), limit=-1)) == ("5", "+")
    assert range_ids(HistoryFilter(StreamPosition(4, "e"), -1, reverse=True)) == ("3", "-")
    # nothing lies before offset 1: an empty range, not XREVRANGE 0 -
    assert range_ids(HistoryFilter(StreamPosition(1, "e"), -1, reverse=True)) == ("+", "")


# ---- script replies ---------------------------------------------------------------------
def test_publish_result_sets_the_offset_unless_suppressed() -> None:
    pub = Publication(data=b"1")
    assert publish_result([3, b"ep", 0, 0], pub) == (StreamPosition(3, "ep"), "")
    assert pub.offset == 3
    again = Publication(data=b"1")
    assert publish_result([3, b"ep", b"1", 0], again) == (StreamPosition(3, "ep"), "idempotency")
    assert again.offset == 0
    stale = Publication(data=b"1")
    assert publish_result([3, b"ep", 0, b"1"], stale) == (StreamPosition(3, "ep"), "version")
    assert stale.offset == 0


def test_entry_to_pub_reads_offset_from_the_stream_id() -> None:
    pub = _full_pub()
    entry = (b"12-0", [b"x", b"ignored", b"d", encode_pub(pub)])
    got = entry_to_pub(entry)
    assert got.offset == 12
    assert got.data == pub.data and got.info == pub.info and got.tags == pub.tags


def test_text_and_ms() -> None:
    assert text(b"abc") == "abc" and text("abc") == "abc" and text(5) == "5"
    assert ms(2.5) == 2500
    assert ms(0.0001) == 1  # never 0: PEXPIRE 0 would delete the key


# ---- sharding ---------------------------------------------------------------------------
def test_shard_index_single_shard_is_zero() -> None:
    assert shard_index("news", 1) == 0
    assert shard_index("news", 0) == 0


def test_shard_index_is_stable_in_range_and_spread() -> None:
    channels = [f"chan:{i}" for i in range(2000)]
    first = [shard_index(c, 5) for c in channels]
    assert first == [shard_index(c, 5) for c in channels]
    assert set(first) == set(range(5))
    assert min(first.count(s) for s in range(5)) > 300  # roughly 400 each


def test_shard_index_moves_channels_only_to_a_new_shard() -> None:
    """Jump hash: going from n to n + 1 shards, a channel stays or moves to shard n."""
    channels = [f"user#{i}" for i in range(1000)]
    for n in range(1, 8):
        for c in channels:
            before, after = shard_index(c, n), shard_index(c, n + 1)
            assert after in (before, n)


# ---- Lua scripts ------------------------------------------------------------------------
def test_scripts_load_from_the_package_with_their_docs() -> None:
    assert len({s.sha for s in scripts.ALL_SCRIPTS}) == 5
    for script in scripts.ALL_SCRIPTS:
        assert script.source.startswith("-- ") and "KEYS" in script.source
        assert script.sha == hashlib.sha1(script.source.encode()).hexdigest()
        assert scripts.source_of(script.sha) == script.source
    assert "'xadd'" in scripts.PUBLISH.source and "'publish'" in scripts.PUBLISH.source
    assert scripts.source_of("0" * 40) == ""
