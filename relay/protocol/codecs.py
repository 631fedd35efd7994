"""The two client-protocol codecs behind one interface (JSON and Protobuf)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from relay.protocol import json_codec, protobuf_codec
from relay.protocol.messages import Publication
from relay.protocol.push import encode_pub_push_json, encode_pub_push_protobuf

__all__ = ["Codec", "JSON", "PROTOBUF"]


class Codec(NamedTuple):
    """What a transport needs from a codec.

    ``iter_commands(frame)`` lazily yields normalized ``Command`` dicts (``DecodeError``
    where the frame goes bad); ``encode_reply(reply)`` gives one encoded ``Reply``;
    ``join_frame(messages)`` coalesces encoded replies into one frame; ``binary`` says
    whether frames are binary (Protobuf) or text (JSON); ``encode_pub_push(channel, pub)``
    is the fan-out's specialised publication push.
    """

    name: str
    binary: bool
    iter_commands: Callable[[bytes], Iterator[dict[str, Any]]]
    encode_reply: Callable[[dict[str, Any]], bytes]
    join_frame: Callable[[list[bytes]], bytes]
    encode_pub_push: Callable[[str, Publication], bytes]


JSON = Codec(
    "json",
    json_codec.BINARY,
    json_codec.iter_commands,
    json_codec.encode_reply,
    json_codec.join_frame,
    encode_pub_push_json,
)
PROTOBUF = Codec(
    "protobuf",
    protobuf_codec.BINARY,
    protobuf_codec.iter_commands,
    protobuf_codec.encode_reply,
    protobuf_codec.join_frame,
    encode_pub_push_protobuf,
)
