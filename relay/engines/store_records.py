"""The records of the history log (``engines/store.py``) and their replay: pure code.

A record is ``[u32 length][u32 crc32(payload)][payload]`` (little endian), ``payload``
one msgpack array of entries.

Entries (msgpack arrays, first element the kind):

* ``[PUB, channel, offset, data, info, tags, time, data_json, delta]`` a publication
  (``info``: ``[user, client, conn_info, chan_info]`` or nil);
* ``[STATE, channel, epoch, top, kept, items_expire, meta_expire, version,
  version_epoch]`` the stream's position after the entries before it; ``kept``: how many
  of its latest publications are retained (older ones are dropped at replay), expiries
  as Unix seconds; the last publication's version (logs written before versions were
  kept end at ``meta_expire`` and read as version 0);
* ``[IDEM, channel, key, offset, epoch, expire]`` an idempotent publish's result;
* ``[SNAPSHOT]`` first entry of a snapshot: everything before it is superseded.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from relay.protocol.messages import ClientInfo, Publication

__all__ = [
    "PUB",
    "STATE",
    "IDEM",
    "SNAPSHOT",
    "LoadedStream",
    "Loaded",
    "encode_record",
    "scan_records",
    "pub_entry",
    "replay",
    "prune",
]

PUB, STATE, IDEM, SNAPSHOT = 0, 1, 2, 3

_HEADER = struct.Struct("<II")
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(list[list[Any]])


def encode_record(entries: list[Any]) -> bytes:
    """One record: header (length, CRC-32 of the payload) + msgpack payload."""
    payload = _ENCODER.encode(entries)
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def scan_records(buf: bytes | memoryview) -> tuple[list[list[list[Any]]], int]:
    """Decode every valid record from the start of ``buf``.

    Returns the records' entry lists and the end of the last valid record: bytes after
    it are a torn or corrupt tail.
    """
    out: list[list[list[Any]]] = []
    pos, size, header = 0, len(buf), _HEADER.size
    view = memoryview(buf)
    while pos + header <= size:
        length, crc = _HEADER.unpack_from(view, pos)
        end = pos + header + length
        if end > size:
            break
        payload = view[pos + header : end]
        if zlib.crc32(payload) != crc:
            break
        try:
            out.append(_DECODER.decode(payload))
        except msgspec.DecodeError:
            break
        pos = end
    return out, pos


def pub_entry(channel: str, pub: Publication) -> tuple[Any, ...]:
    """The log entry of a publication (a tuple: msgspec writes it as an array)."""
    info = pub.info
    return (
        PUB,
        channel,
        pub.offset,
        pub.data,
        None if info is None else (info.user, info.client, info.conn_info, info.chan_info),
        pub.tags,
        pub.time,
        pub.data_json,
        pub.delta,
    )


@dataclass(slots=True)
class LoadedStream:
    """A stream as the log describes it (expiries in Unix seconds)."""

    epoch: str
    top: int = 0
    items: list[Publication] = field(default_factory=list)
    items_expire: float = 0.0
    meta_expire: float = 0.0
    version: int = 0
    version_epoch: str = ""


@dataclass(slots=True)
class Loaded:
    """What a directory replays to: streams and idempotency results still alive."""

    streams: dict[str, LoadedStream] = field(default_factory=dict)
    #: (channel, key) -> (offset, epoch, expire as Unix seconds)
    idempotency: dict[tuple[str, str], tuple[int, str, float]] = field(default_factory=dict)
    records: int = 0
    publications: int = 0


def replay(records: Iterable[list[list[Any]]], into: Loaded | None = None) -> Loaded:
    """Apply records in order (pure). Expired state is kept; ``Loaded.prune`` drops it."""
    state = into if into is not None else Loaded()
    streams = state.streams
    pending: dict[str, list[Publication]] = {}
    for entries in records:
        state.records += 1
        for e in entries:
            kind = e[0]
            if kind == PUB:
                info = e[4]
                ci = None if info is None else ClientInfo(info[0], info[1], info[2], info[3])
                delta = len(e) > 8 and bool(e[8])
                pub = Publication(e[3], ci, e[2], e[5], e[6], e[7], delta)
                items = pending.get(e[1])
                if items is None:
                    items = pending[e[1]] = []
                items.append(pub)
                state.publications += 1
            elif kind == STATE:
                channel, epoch, top, kept = e[1], e[2], e[3], e[4]
                stream = streams.get(channel)
                if stream is None or stream.epoch != epoch:
                    stream = streams[channel] = LoadedStream(epoch)
                new = pending.pop(channel, None)
                if new:
                    stream.items.extend(p for p in new if p.offset <= top)
                stream.top = top
                if kept <= 0:
                    stream.items.clear()
                elif len(stream.items) > kept:
                    del stream.items[: len(stream.items) - kept]
                stream.items_expire, stream.meta_expire = e[5], e[6]
                if len(e) > 8:  # written since publish versions are kept
                    stream.version, stream.version_epoch = e[7], e[8]
            elif kind == IDEM:
                state.idempotency[(e[1], e[2])] = (e[3], e[4], e[5])
            elif kind == SNAPSHOT:
                streams.clear()
                state.idempotency.clear()
                pending.clear()
    return state


def prune(state: Loaded, now: float) -> Loaded:
    """Drop streams whose meta expired, items whose TTL passed, expired idempotency."""
    for channel in [c for c, s in state.streams.items() if s.meta_expire <= now]:
        del state.streams[channel]
    for stream in state.streams.values():
        if stream.items_expire <= now:
            stream.items.clear()
    for key in [k for k, v in state.idempotency.items() if v[2] <= now]:
        del state.idempotency[key]
    return state


# ---- the directory ---------------------------------------------------------------------
