"""Payload formats of the Redis engine: pure encode/decode functions, no I/O.

* PUB/SUB message: protobuf ``Publication`` (no history), ``__p1:<offset>:<epoch>__`` +
  protobuf ``Publication`` (history), ``__j__`` / ``__l__`` + protobuf ``ClientInfo``.
* Stream entry: id ``<offset>-0``, field ``d`` = protobuf ``Publication`` (no offset).

The protobuf payloads themselves are ``engines/broker_wire.py`` (re-exported here).
"""

from __future__ import annotations

from typing import Any

from relay.cluster.shards import fnv1a_64, jump_hash
from relay.engines.base import SUPPRESSED_IDEMPOTENCY, SUPPRESSED_VERSION
from relay.engines.broker_wire import decode_info, decode_pub, encode_pub
from relay.protocol.messages import HistoryFilter, Publication, StreamPosition

__all__ = [
    "P1",
    "JOIN",
    "LEAVE",
    "shard_index",
    "encode_pub",
    "decode_pub",
    "decode_info",
    "split_p1",
    "ms",
    "range_ids",
    "text",
    "publish_result",
    "entry_to_pub",
]

P1 = b"__p1:"
JOIN = b"__j__"
LEAVE = b"__l__"


# ---- sharding ---------------------------------------------------------------------------
def shard_index(channel: str, shards: int) -> int:
    """The shard of ``channel`` among ``shards``, as Centrifugo picks it."""
    if shards <= 1:
        return 0
    return jump_hash(fnv1a_64(channel.encode()), shards)


def split_p1(data: bytes) -> tuple[int, str, bytes]:
    """``__p1:<offset>:<epoch>__<protobuf>`` -> offset, epoch, protobuf."""
    end = data.index(b"__", len(P1))
    offset, _, epoch = data[len(P1) : end].partition(b":")
    return int(offset), epoch.decode(), data[end + 2 :]


def ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def range_ids(flt: HistoryFilter) -> tuple[str, str]:
    """XRANGE/XREVRANGE bounds for a filter (end "" = nothing to read)."""
    since = flt.since
    if flt.reverse:
        if since is None:
            return "+", "-"
        high = since.offset - 1
        return (str(high), "-") if high >= 1 else ("+", "")
    if since is None:
        return "-", "+"
    return str(since.offset + 1), "+"


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def publish_result(reply: Any, pub: Publication) -> tuple[StreamPosition, str]:
    offset, epoch = int(reply[0]), text(reply[1])
    suppressed = ""
    if int(reply[2]):
        suppressed = SUPPRESSED_IDEMPOTENCY
    elif len(reply) > 3 and int(reply[3]):
        suppressed = SUPPRESSED_VERSION
    if not suppressed:
        pub.offset = offset
    return StreamPosition(offset, epoch), suppressed


def entry_to_pub(entry: Any) -> Publication:
    entry_id, fields = entry
    offset = int(text(entry_id).partition("-")[0])
    values = dict(zip(fields[::2], fields[1::2], strict=True))
    return decode_pub(values[b"d"], offset)
