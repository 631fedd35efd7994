"""permessage-deflate (RFC 7692) for the WebSocket transport, as Centrifugo offers it.

Centrifugo (centrifuge ``handler_websocket.go`` on its gorilla/websocket fork,
``internal/websocket/server.go`` and ``compression.go``) with ``websocket.compression``:

* accepts the extension whenever the client offers ``permessage-deflate``, whatever
  the parameters, and always answers ``permessage-deflate; server_no_context_takeover;
  client_no_context_takeover``: every message is compressed and decompressed alone;
* compresses every text/binary message it writes at ``websocket.compression_level``
  (an invalid level leaves the default, 1), or with ``compression_min_size`` > 0 only
  the ones longer than that;
* bounds a received message twice: ``message_size_limit`` on the compressed bytes (close
  1009) and ``decompressed_message_size_limit`` (default ten times the former) on the
  inflated ones (close 1009 "message too big after decompression").

With no context takeover the compressed bytes of a message depend only on the message
and the level, so a fan-out compresses each pushed message once for all connections
(``Deflater.cache``, cleared after every flush turn), where gorilla compresses per
connection unless its prepared-message cache is on.
"""

from __future__ import annotations

import zlib

__all__ = ["EXTENSION_RESPONSE", "offered", "Deflater", "TooBig", "inflate"]

EXTENSION_RESPONSE = (
    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
    "client_no_context_takeover\r\n"
)
_TAIL = b"\x00\x00\xff\xff"
_DEFAULT_LEVEL = 1
DECOMPRESSED_LIMIT_FACTOR = 10  # centrifuge defaultWebsocketDecompressedMessageSizeLimitMultiplier


def offered(header: str) -> bool:
    """Whether a ``Sec-WebSocket-Extensions`` header offers permessage-deflate (gorilla
    ``parseExtensions``: comma-separated extensions, each a token then parameters)."""
    for ext in header.split(","):
        if ext.split(";", 1)[0].strip().lower() == "permessage-deflate":
            return True
    return False


class TooBig(Exception):
    """The inflated message passes the decompressed size limit."""


class Deflater:
    """One listener's compression settings and the per-turn cache of compressed bytes."""

    def __init__(self, level: int, min_size: int, message_size_limit: int, limit: int) -> None:
        if not -2 <= level <= 9:  # gorilla isValidCompressionLevel; Centrifugo logs, keeps 1
            level = _DEFAULT_LEVEL
        self.level = level
        self.min_size = min_size
        if limit == 0:
            limit = message_size_limit * DECOMPRESSED_LIMIT_FACTOR
        self.decompressed_limit = limit
        #: uncompressed message -> compressed payload, for one flush turn
        self.cache: dict[bytes, bytes] = {}

    def wanted(self, size: int) -> bool:
        """Whether a message of ``size`` bytes goes compressed (centrifuge ``writeData``)."""
        return self.min_size <= 0 or size > self.min_size

    def compress(self, payload: bytes) -> bytes:
        """Raw DEFLATE of one message, flushed, without the final empty block's tail."""
        if self.level == -2:  # Go's HuffmanOnly
            c = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_HUFFMAN_ONLY)
        else:
            c = zlib.compressobj(self.level, zlib.DEFLATED, -15)
        out = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(_TAIL) else out


def inflate(payload: bytes, limit: int) -> bytes:
    """Inflate one received message (``zlib.error`` if it is not DEFLATE data)."""
    d = zlib.decompressobj(-15)
    if limit > 0:
        out = d.decompress(payload + _TAIL, limit + 1)
        if len(out) > limit:
            raise TooBig
        return out
    return d.decompress(payload + _TAIL)
