"""centrifuge's broker payloads, shared by the Redis and NATS brokers: protobuf
``Publication`` and ``ClientInfo`` (pure encode/decode, no I/O).

A publication crosses without its offset (the Redis engine carries it beside, NATS has
none) and with ``delta`` set when it was published with delta on
(centrifuge ``broker_redis.go``: ``protoPub.Delta = opts.UseDelta``). The ``time`` a
Centrifugo node stamps on what it publishes is not read back: centrifuge passes it on
neither to clients nor in history (``pubToProto`` leaves it out).
"""

from __future__ import annotations

from typing import Any

from relay.protocol import json_codec
from relay.protocol.messages import ClientInfo, Publication
from relay.protocol.protobuf_codec import decode_message, encode_message

__all__ = [
    "pub_to_dict",
    "pub_from_dict",
    "encode_pub",
    "decode_pub",
    "info_from_dict",
    "decode_info",
]


def pub_to_dict(pub: Publication) -> dict[str, Any]:
    """The protobuf ``Publication`` fields of ``pub`` as a broker sends them."""
    d = pub.to_dict()
    d.pop("offset", None)
    if pub.delta:
        d["delta"] = True
    return d


def encode_pub(pub: Publication) -> bytes:
    return encode_message("Publication", pub_to_dict(pub))


def info_from_dict(d: dict[str, Any]) -> ClientInfo:
    return ClientInfo(
        user=d.get("user", ""),
        client=d.get("client", ""),
        conn_info=d.get("conn_info") or None,
        chan_info=d.get("chan_info") or None,
    )


def decode_info(data: bytes) -> ClientInfo:
    return info_from_dict(decode_message("ClientInfo", data))


def pub_from_dict(d: dict[str, Any], offset: int = 0) -> Publication:
    info = d.get("info")
    payload = bytes(d.get("data", b""))
    return Publication(
        data=payload,
        info=info_from_dict(info) if info is not None else None,
        offset=offset,
        tags=d.get("tags") or None,
        data_json=json_codec.is_json(payload),
        delta=bool(d.get("delta", False)),
    )


def decode_pub(data: bytes, offset: int = 0) -> Publication:
    return pub_from_dict(decode_message("Publication", data), offset)
