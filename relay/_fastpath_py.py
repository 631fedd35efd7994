"""Byte-level hot path, pure-Python twin of ``_fastpath.pyx`` (the reference).

Server-side RFC 6455 framing (build unmasked frames, parse masked client frames) and
varint-delimited message framing. ``relay.fastpath`` picks the Cython build when it is
available; both twins must return the same bytes and raise the same errors.
"""

from __future__ import annotations

__all__ = [
    "FrameError",
    "FrameParser",
    "build_frame",
    "build_close_frame",
    "frame_messages",
    "encode_varint",
    "join_delimited",
    "split_delimited",
]

_MAX_CONTROL = 125
_MAX_REASON = 123
_U64 = 1 << 64
_ONE_BYTE = tuple(bytes((i,)) for i in range(128))


class FrameError(Exception):
    """A WebSocket protocol violation; the connection is closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


def build_frame(opcode: int, payload: bytes) -> bytes:
    """Return one unmasked server frame (FIN set) carrying ``payload``."""
    n = len(payload)
    b0 = 0x80 | (opcode & 0x0F)
    if n < 126:
        return bytes((b0, n)) + payload
    if n < 0x10000:
        return bytes((b0, 126)) + n.to_bytes(2, "big") + payload
    return bytes((b0, 127)) + n.to_bytes(8, "big") + payload


def frame_messages(opcode: int, messages: list[bytes], delimited: bool) -> bytes:
    """One server frame holding ``messages``: ``\\n``-joined, or varint-delimited."""
    payload = join_delimited(messages) if delimited else b"\n".join(messages)
    return build_frame(opcode, payload)


def build_close_frame(code: int, reason: str) -> bytes:
    """Return a close frame; ``reason`` is cut to 123 UTF-8 bytes on a character boundary."""
    if not 0 <= code <= 0xFFFF:
        raise ValueError("close code out of range")
    raw = reason.encode("utf-8", "replace")
    if len(raw) > _MAX_REASON:
        raw = raw[:_MAX_REASON].decode("utf-8", "ignore").encode("utf-8")
    return build_frame(8, code.to_bytes(2, "big") + raw)


def _unmask(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` using one big-integer operation."""
    n = len(data)
    if n == 0:
        return b""
    key = (mask * ((n >> 2) + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def _check_header(b0: int, b1: int, fragmented: bool) -> None:
    """Validate the first two header bytes (RFC 6455 §5.2) or raise ``FrameError``."""
    if b0 & 0x70:
        raise FrameError(1002, "reserved bits set")
    if not b1 & 0x80:
        raise FrameError(1002, "unmasked client frame")
    opcode = b0 & 0x0F
    if opcode >= 8:
        if opcode > 10:
            raise FrameError(1002, "unknown opcode")
        if not b0 & 0x80:
            raise FrameError(1002, "fragmented control frame")
        if b1 & 0x7F > _MAX_CONTROL:
            raise FrameError(1002, "control frame too long")
    elif opcode == 0:
        if not fragmented:
            raise FrameError(1002, "unexpected continuation frame")
    elif opcode <= 2:
        if fragmented:
            raise FrameError(1002, "expected continuation frame")
    else:
        raise FrameError(1002, "unknown opcode")


class FrameParser:
    """Incremental parser of masked client frames; reassembles fragmented messages."""

    def __init__(self, max_message_size: int) -> None:
        self.max_message_size = max_message_size
        self._buf = bytearray()
        self._frag_opcode = 0
        self._frag_parts: list[bytes] = []
        self._frag_size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Consume ``data``; return the complete messages as ``(opcode, payload)``."""
        out: list[tuple[int, bytes]] = []
        buf = self._buf
        if not buf:
            used = self._parse(data, out)
            if used < len(data):
                buf += data[used:]
        else:
            buf += data
            used = self._parse(buf, out)
            del buf[:used]
        return out

    def _parse(self, buf: bytes | bytearray, out: list[tuple[int, bytes]]) -> int:
        """Parse whole frames from ``buf``; return the number of bytes consumed."""
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            _check_header(b0, b1, self._frag_opcode != 0)
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                if end - head < 2:
                    break
                length = int.from_bytes(buf[head : head + 2], "big")
                head += 2
            elif length == 127:
                if end - head < 8:
                    break
                length = int.from_bytes(buf[head : head + 8], "big")
                if length >> 63:
                    raise FrameError(1002, "invalid frame length")
                head += 8
            opcode = b0 & 0x0F
            if opcode < 8 and self._frag_size + length > self.max_message_size:
                raise FrameError(1009, "message too big")
            if end - head < 4 + length:
                break
            payload = _unmask(bytes(buf[head + 4 : head + 4 + length]), bytes(buf[head : head + 4]))
            pos = head + 4 + length
            self._deliver(b0 & 0x80, opcode, payload, out)
        return pos

    def _deliver(self, fin: int, opcode: int, payload: bytes, out: list[tuple[int, bytes]]) -> None:
        """Route one unmasked frame: control, whole message or fragment."""
        if opcode >= 8:
            out.append((opcode, payload))
        elif opcode:
            if fin:
                out.append((opcode, payload))
            else:
                self._frag_opcode = opcode
                self._frag_parts = [payload]
                self._frag_size = len(payload)
        else:
            self._frag_parts.append(payload)
            self._frag_size += len(payload)
            if fin:
                out.append((self._frag_opcode, b"".join(self._frag_parts)))
                self._frag_opcode = 0
                self._frag_parts = []
                self._frag_size = 0


def encode_varint(n: int) -> bytes:
    """Encode an unsigned integer below 2**64 as a protobuf varint."""
    if 0 <= n < 128:
        return _ONE_BYTE[n]
    if not 0 <= n < _U64:
        raise ValueError("varint out of range")
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def join_delimited(messages: list[bytes]) -> bytes:
    """Concatenate ``messages``, each preceded by its varint length."""
    parts: list[bytes] = []
    for m in messages:
        parts.append(encode_varint(len(m)))
        parts.append(m)
    return b"".join(parts)


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    """Read a varint length at ``pos``; return ``(value, new_pos)``."""
    value = 0
    shift = 0
    end = len(data)
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        if shift >= 70:
            raise ValueError("varint too long")
        b = data[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def split_delimited(data: bytes) -> list[bytes]:
    """Split varint-length-delimited messages; ``ValueError`` on truncated input."""
    out: list[bytes] = []
    pos = 0
    end = len(data)
    while pos < end:
        n, pos = _read_length(data, pos)
        if n > end - pos:
            raise ValueError("truncated message")
        out.append(bytes(data[pos : pos + n]))
        pos += n
    return out
