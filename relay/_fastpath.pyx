# cython: language_level=3, boundscheck=False, wraparound=False
"""Byte-level hot path in Cython; ``_fastpath_py.py`` is the reference twin.

Server-side RFC 6455 framing (build unmasked frames, parse masked client frames) and
varint-delimited message framing. No asyncio in here: bytes in, bytes out.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy

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

cdef enum:
    MAX_CONTROL = 125
    MAX_REASON = 123

cdef tuple _ONE_BYTE = tuple(bytes((i,)) for i in range(128))


class FrameError(Exception):
    """A WebSocket protocol violation; the connection is closed with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


cdef bytes _frame(int opcode, const uint8_t* payload, Py_ssize_t n):
    """Allocate and fill one unmasked FIN frame."""
    cdef Py_ssize_t head = 2 if n < 126 else (4 if n < 0x10000 else 10)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, head + n)
    cdef uint8_t* p = <uint8_t*>PyBytes_AS_STRING(out)
    cdef int i
    cdef uint64_t length = <uint64_t>n
    p[0] = 0x80 | (opcode & 0x0F)
    if head == 2:
        p[1] = <uint8_t>n
    elif head == 4:
        p[1] = 126
        p[2] = <uint8_t>(n >> 8)
        p[3] = <uint8_t>n
    else:
        p[1] = 127
        for i in range(8):
            p[9 - i] = <uint8_t>(length >> (8 * i))
    if n:
        memcpy(p + head, payload, n)
    return out


def build_frame(int opcode, payload) -> bytes:
    """Return one unmasked server frame (FIN set) carrying ``payload``."""
    cdef bytes body = payload if type(payload) is bytes else bytes(payload)
    return _frame(opcode, <const uint8_t*>PyBytes_AS_STRING(body), len(body))


cdef inline Py_ssize_t _varint_size(uint64_t n) noexcept:
    cdef Py_ssize_t size = 1
    while n > 0x7F:
        n >>= 7
        size += 1
    return size


cdef inline uint8_t* _put_varint(uint8_t* p, uint64_t n) noexcept:
    while n > 0x7F:
        p[0] = <uint8_t>((n & 0x7F) | 0x80)
        p += 1
        n >>= 7
    p[0] = <uint8_t>n
    return p + 1


cdef inline Py_ssize_t _header_size(Py_ssize_t n) noexcept:
    return 2 if n < 126 else (4 if n < 0x10000 else 10)


cdef uint8_t* _put_header(uint8_t* p, int opcode, Py_ssize_t n) noexcept:
    cdef int i
    cdef uint64_t length = <uint64_t>n
    p[0] = 0x80 | (opcode & 0x0F)
    if n < 126:
        p[1] = <uint8_t>n
        return p + 2
    if n < 0x10000:
        p[1] = 126
        p[2] = <uint8_t>(n >> 8)
        p[3] = <uint8_t>n
        return p + 4
    p[1] = 127
    for i in range(8):
        p[9 - i] = <uint8_t>(length >> (8 * i))
    return p + 10


def frame_messages(int opcode, list messages, bint delimited) -> bytes:
    """One server frame holding ``messages``: ``\\n``-joined, or varint-delimited.

    This is a connection's flush: everything queued in one loop turn leaves as one
    frame, built with a single allocation and one copy of each message.
    """
    cdef Py_ssize_t count = len(messages), n, payload = 0, i
    cdef bytes chunk, out
    cdef uint8_t* p
    for i in range(count):
        chunk = <bytes>messages[i]
        n = len(chunk)
        payload += n + (_varint_size(<uint64_t>n) if delimited else (1 if i else 0))
    out = PyBytes_FromStringAndSize(NULL, _header_size(payload) + payload)
    p = _put_header(<uint8_t*>PyBytes_AS_STRING(out), opcode, payload)
    for i in range(count):
        chunk = <bytes>messages[i]
        n = len(chunk)
        if delimited:
            p = _put_varint(p, <uint64_t>n)
        elif i:
            p[0] = 10
            p += 1
        memcpy(p, PyBytes_AS_STRING(chunk), n)
        p += n
    return out


def build_close_frame(int code, str reason) -> bytes:
    """Return a close frame; ``reason`` is cut to 123 UTF-8 bytes on a character boundary."""
    if not 0 <= code <= 0xFFFF:
        raise ValueError("close code out of range")
    cdef bytes raw = reason.encode("utf-8", "replace")
    if len(raw) > MAX_REASON:
        raw = raw[:MAX_REASON].decode("utf-8", "ignore").encode("utf-8")
    cdef bytes body = bytes((code >> 8, code & 0xFF)) + raw
    return _frame(8, <const uint8_t*>PyBytes_AS_STRING(body), len(body))


cdef inline void _unmask_into(uint8_t* dst, const uint8_t* src, Py_ssize_t n,
                              const uint8_t* mask) noexcept nogil:
    """XOR ``src`` into ``dst`` with the 4-byte mask, eight bytes at a time."""
    cdef uint8_t key[8]
    cdef uint64_t word, key64
    cdef Py_ssize_t i = 0
    memcpy(key, mask, 4)
    memcpy(key + 4, mask, 4)
    memcpy(&key64, key, 8)
    while i + 8 <= n:
        memcpy(&word, src + i, 8)
        word ^= key64
        memcpy(dst + i, &word, 8)
        i += 8
    while i < n:
        dst[i] = src[i] ^ mask[i & 3]
        i += 1


cdef int _check_header(uint8_t b0, uint8_t b1, bint fragmented) except -1:
    """Validate the first two header bytes (RFC 6455 §5.2) or raise ``FrameError``."""
    cdef uint8_t opcode = b0 & 0x0F
    if b0 & 0x70:
        raise FrameError(1002, "reserved bits set")
    if not b1 & 0x80:
        raise FrameError(1002, "unmasked client frame")
    if opcode >= 8:
        if opcode > 10:
            raise FrameError(1002, "unknown opcode")
        if not b0 & 0x80:
            raise FrameError(1002, "fragmented control frame")
        if (b1 & 0x7F) > MAX_CONTROL:
            raise FrameError(1002, "control frame too long")
    elif opcode == 0:
        if not fragmented:
            raise FrameError(1002, "unexpected continuation frame")
    elif opcode <= 2:
        if fragmented:
            raise FrameError(1002, "expected continuation frame")
    else:
        raise FrameError(1002, "unknown opcode")
    return 0


cdef class FrameParser:
    """Incremental parser of masked client frames; reassembles fragmented messages."""

    cdef readonly Py_ssize_t max_message_size
    cdef bytearray _buf
    cdef int _frag_opcode
    cdef list _frag_parts
    cdef Py_ssize_t _frag_size

    def __init__(self, Py_ssize_t max_message_size) -> None:
        self.max_message_size = max_message_size
        self._buf = bytearray()
        self._frag_opcode = 0
        self._frag_parts = []
        self._frag_size = 0

    def feed(self, data) -> list:
        """Consume ``data``; return the complete messages as ``(opcode, payload)``."""
        cdef list out = []
        cdef Py_ssize_t used
        cdef bytes chunk
        if type(data) is not bytes:
            data = bytes(data)
        chunk = <bytes>data
        if not self._buf:
            used = self._parse(<const uint8_t*>PyBytes_AS_STRING(chunk), len(chunk), out)
            if used < len(chunk):
                self._buf += chunk[used:]
        else:
            self._buf += chunk
            used = self._parse(<const uint8_t*>PyByteArray_AS_STRING(self._buf),
                               len(self._buf), out)
            del self._buf[:used]
        return out

    cdef Py_ssize_t _parse(self, const uint8_t* buf, Py_ssize_t end, list out) except -1:
        """Parse whole frames from ``buf``; return the number of bytes consumed."""
        cdef Py_ssize_t pos = 0, head
        cdef uint64_t length
        cdef uint8_t b0, b1, opcode
        cdef int i
        cdef bytes payload
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            _check_header(b0, b1, self._frag_opcode != 0)
            length = b1 & 0x7F
            head = pos + 2
            if length == 126:
                if end - head < 2:
                    break
                length = (<uint64_t>buf[head] << 8) | buf[head + 1]
                head += 2
            elif length == 127:
                if end - head < 8:
                    break
                length = 0
                for i in range(8):
                    length = (length << 8) | buf[head + i]
                if length >> 63:
                    raise FrameError(1002, "invalid frame length")
                head += 8
            opcode = b0 & 0x0F
            if opcode < 8 and <uint64_t>self._frag_size + length > <uint64_t>self.max_message_size:
                raise FrameError(1009, "message too big")
            if <uint64_t>(end - head) < 4 + length:
                break
            payload = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>length)
            _unmask_into(<uint8_t*>PyBytes_AS_STRING(payload), buf + head + 4,
                         <Py_ssize_t>length, buf + head)
            pos = head + 4 + <Py_ssize_t>length
            self._deliver(b0 & 0x80, opcode, payload, out)
        return pos

    cdef int _deliver(self, int fin, int opcode, bytes payload, list out) except -1:
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
        return 0


def encode_varint(n) -> bytes:
    """Encode an unsigned integer below 2**64 as a protobuf varint."""
    cdef uint64_t v
    cdef bytes out
    if type(n) is int and 0 <= n < 128:
        return <bytes>_ONE_BYTE[n]
    if not 0 <= n < 2 ** 64:
        raise ValueError("varint out of range")
    v = n
    out = PyBytes_FromStringAndSize(NULL, _varint_size(v))
    _put_varint(<uint8_t*>PyBytes_AS_STRING(out), v)
    return out


def join_delimited(list messages) -> bytes:
    """Concatenate ``messages``, each preceded by its varint length."""
    cdef Py_ssize_t total = 0, n
    cdef object m
    cdef bytes chunk, out
    cdef uint8_t* p
    cdef list parts = [m if type(m) is bytes else bytes(m) for m in messages]
    for chunk in parts:
        n = len(chunk)
        total += _varint_size(<uint64_t>n) + n
    out = PyBytes_FromStringAndSize(NULL, total)
    p = <uint8_t*>PyBytes_AS_STRING(out)
    for chunk in parts:
        n = len(chunk)
        p = _put_varint(p, <uint64_t>n)
        memcpy(p, PyBytes_AS_STRING(chunk), n)
        p += n
    return out


def split_delimited(const uint8_t[::1] data) -> list:
    """Split varint-length-delimited messages; ``ValueError`` on truncated input."""
    cdef list out = []
    cdef Py_ssize_t pos = 0, end = data.shape[0]
    cdef uint64_t value
    cdef int shift
    cdef uint8_t b
    cdef bint overflow
    while pos < end:
        value = 0
        shift = 0
        overflow = False
        while True:
            if pos >= end:
                raise ValueError("truncated varint")
            if shift >= 70:
                raise ValueError("varint too long")
            b = data[pos]
            pos += 1
            if shift < 63:
                value |= (<uint64_t>(b & 0x7F)) << shift
            elif b & 0x7F:
                overflow = True
            if not b & 0x80:
                break
            shift += 7
        if overflow or value > <uint64_t>(end - pos):
            raise ValueError("truncated message")
        out.append(PyBytes_FromStringAndSize(<char*>&data[pos], <Py_ssize_t>value))
        pos += <Py_ssize_t>value
    return out
