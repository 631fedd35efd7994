"""Fossil delta compression of publications, as centrifuge encodes it.

A subscription that negotiated ``delta: "fossil"`` (centrifuge client.go
``handleSubscribe``) gets each publication in one of two forms (hub.go ``getDeltaPub``):

* *full*: the publication's data as is, except that a JSON-protocol client gets it as a
  JSON string (the data's bytes escaped, as segmentio/encoding ``json.Escape`` does);
* *delta*: ``delta: true`` and the fossil delta from the previous publication of the
  stream to this one (a JSON string again for JSON clients); when the delta is not
  smaller than the data the full data goes instead, ``delta`` unset.

Both are encoded once per codec for all subscribers (``Hub``); each subscriber picks one
(``Client.deliver_delta``): its first publication is full, the later ones are deltas.
"""

from __future__ import annotations

from json.encoder import encode_basestring
from typing import Any

from relay.fastpath import fossil_create
from relay.protocol.messages import Publication
from relay.protocol.push import encode_pub_push_json, encode_pub_push_protobuf

__all__ = ["json_string", "delta_payloads", "recovered_chain"]

# Go's encoder escapes these for HTML safety (its EscapeHTML flag), plus U+2028/U+2029;
# each byte that is not UTF-8 becomes the six characters ``\ufffd`` (decoded here with
# ``surrogateescape``, which gives one surrogate per such byte, as Go's DecodeRune does).
_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_ESCAPES.update({chr(0xDC80 + i): "\\ufffd" for i in range(128)})
_TABLE = str.maketrans(_ESCAPES)


def json_string(data: bytes) -> bytes:
    """``data`` as a JSON string literal, byte for byte as centrifuge writes it."""
    text = data.decode("utf-8", "surrogateescape")
    return encode_basestring(text).translate(_TABLE).encode("utf-8")


def _form(pub: Publication, data: bytes) -> Publication:
    return Publication(data, pub.info, pub.offset, pub.tags, pub.time, True)


def delta_payloads(
    codec: str, channel: str, pub: Publication, prev: Publication | None
) -> tuple[bytes, bytes]:
    """(full push, delta push) of ``pub`` for ``codec`` ("json" or "protobuf").

    ``prev`` is the stream's previous publication when ``pub`` was published with
    ``delta`` and the subscriber side holds it; without it both pushes are the full one.
    """
    json = codec == "json"
    encode = encode_pub_push_json if json else encode_pub_push_protobuf
    full = encode(channel, _form(pub, json_string(pub.data)) if json else pub)
    if prev is None:
        return full, full
    patch = fossil_create(prev.data, pub.data)
    if len(patch) >= len(pub.data):
        return full, full
    return full, encode(channel, _form(pub, json_string(patch) if json else patch), True)


def recovered_chain(pubs: list[Publication], json: bool) -> list[dict[str, Any]]:
    """Recovered publications for a delta subscription: the first full, then each one a
    delta against the one before (centrifuge client.go ``makeRecoveredPubsDeltaFossil``)."""
    out: list[dict[str, Any]] = []
    prev: Publication | None = None
    for pub in pubs:
        d = pub.to_dict()
        data = pub.data
        if prev is not None:
            patch = fossil_create(prev.data, pub.data)
            if len(patch) < len(pub.data):
                data = patch
                d["delta"] = True
        if json or prev is not None:
            d["data"] = json_string(data) if json else data
            d.pop("time", None)  # rebuilt copies carry offset, info, tags and data only
        out.append(d)
        prev = pub
    return out
