"""The two client-protocol codecs behind one interface (JSON and Protobuf)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from relay.protocol import json_codec, protobuf_codec

__all__ = ["Codec", "JSON", "PROTOBUF"]


class Codec(NamedTuple):
    """What a transport needs from a codec.

    ``iter_commands(frame)`` lazily yields normalized ``Command`` dicts (``DecodeError``
    where the frame goes bad); ``encode_reply(reply)`` gives one encoded ``Reply``;
    ``join_frame(messages)`` coalesces encoded replies into one frame; ``binary`` says
    whether frames are binary (Protobuf) or text (JSON).
    """

    name: str
    binary: bool
    iter_commands: Callable[[bytes], Iterator[dict[str, Any]]]
    encode_reply: Callable[[dict[str, Any]], bytes]
    join_frame: Callable[[list[bytes]], bytes]


JSON = Codec(
    "json",
    json_codec.BINARY,
    json_codec.iter_commands,
    json_codec.encode_reply,
    json_codec.join_frame,
)
PROTOBUF = Codec(
    "protobuf",
    protobuf_codec.BINARY,
    protobuf_codec.iter_commands,
    protobuf_codec.encode_reply,
    protobuf_codec.join_frame,
)
