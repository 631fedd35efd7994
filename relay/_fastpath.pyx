# cython: language_level=3, boundscheck=False, wraparound=False
"""Byte-level hot path in Cython; ``_fastpath_py.py`` is the reference twin.

Server-side RFC 6455 framing (build unmasked frames, parse masked client frames) and
varint-delimited message framing. No asyncio in here: bytes in, bytes out.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
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
    "FossilError",
    "fossil_create",
    "fossil_apply",
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
    p[0] = 0x80 | (opcode & 0x4F)  # 0x40: RSV1, a compressed message (RFC 7692)
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


cdef int _check_header(uint8_t b0, uint8_t b1, bint fragmented, bint rsv1) except -1:
    """Validate the first two header bytes (RFC 6455 §5.2) or raise ``FrameError``.

    ``rsv1``: permessage-deflate was negotiated, RSV1 may mark a message's first frame
    (RFC 7692 §6)."""
    cdef uint8_t opcode = b0 & 0x0F
    if b0 & 0x70:
        if not (rsv1 and (b0 & 0x70) == 0x40 and 1 <= opcode <= 2):
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
    cdef public bint deflate
    cdef bytearray _buf
    cdef int _frag_opcode
    cdef list _frag_parts
    cdef Py_ssize_t _frag_size

    def __init__(self, Py_ssize_t max_message_size) -> None:
        self.max_message_size = max_message_size
        self.deflate = False
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
            _check_header(b0, b1, self._frag_opcode != 0, self.deflate)
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
            self._deliver(b0 & 0x80, opcode, b0 & 0x40, payload, out)
        return pos

    cdef int _deliver(self, int fin, int opcode, int rsv1, bytes payload, list out) except -1:
        """Route one unmasked frame: control, whole message or fragment (a compressed
        message's opcode carries RSV1, 0x40)."""
        if opcode >= 8:
            out.append((opcode, payload))
        elif opcode:
            if fin:
                out.append((opcode | rsv1, payload))
            else:
                self._frag_opcode = opcode | rsv1
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


# ---- fossil delta ------------------------------------------------------------------------
# Fossil SCM's delta format as Centrifugo writes it (github.com/shadowspore/fossil-delta,
# used by centrifuge hub.go ``getDeltaPub``); ``_fastpath_py.py`` documents it.

cdef enum:
    NHASH = 16

cdef bytes _DIGITS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
cdef int _DIGIT_VALUE[256]
cdef int _dv_i
for _dv_i in range(256):
    _DIGIT_VALUE[_dv_i] = -1
for _dv_i in range(64):
    _DIGIT_VALUE[<uint8_t>_DIGITS[_dv_i]] = _dv_i


class FossilError(ValueError):
    """A fossil delta that does not apply to the given source."""


cdef inline Py_ssize_t _put_int(uint8_t* p, uint32_t v) noexcept:
    """Write ``v`` in base-64 digits at ``p``; returns the count (at most 6)."""
    cdef uint8_t buf[8]
    cdef Py_ssize_t n = 0, i
    cdef const char* digits = _DIGITS
    if v == 0:
        p[0] = 48
        return 1
    while v > 0:
        buf[n] = <uint8_t>digits[v & 0x3F]
        v >>= 6
        n += 1
    for i in range(n):
        p[i] = buf[n - 1 - i]
    return n


cdef inline int _digit_count(Py_ssize_t v) noexcept:
    cdef int i = 1
    cdef Py_ssize_t x = 64
    while v >= x:
        i += 1
        x <<= 6
    return i


cdef uint32_t _checksum(const uint8_t* z, Py_ssize_t n) noexcept:
    cdef uint32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0
    while n >= 16:
        s0 += <uint32_t>z[0] + z[4] + z[8] + z[12]
        s1 += <uint32_t>z[1] + z[5] + z[9] + z[13]
        s2 += <uint32_t>z[2] + z[6] + z[10] + z[14]
        s3 += <uint32_t>z[3] + z[7] + z[11] + z[15]
        z += 16
        n -= 16
    while n >= 4:
        s0 += z[0]
        s1 += z[1]
        s2 += z[2]
        s3 += z[3]
        z += 4
        n -= 4
    s3 += (s2 << 8) + (s1 << 16) + (s0 << 24)
    if n == 3:
        s3 += (<uint32_t>z[2] << 8) + (<uint32_t>z[1] << 16) + (<uint32_t>z[0] << 24)
    elif n == 2:
        s3 += (<uint32_t>z[1] << 16) + (<uint32_t>z[0] << 24)
    elif n == 1:
        s3 += <uint32_t>z[0] << 24
    return s3


cdef inline uint32_t _hash_init(const uint8_t* z, uint16_t* a, uint16_t* b) noexcept:
    cdef uint16_t ha = 0, hb = 0, x
    cdef int i
    for i in range(NHASH):
        x = z[i]
        ha = ha + x
        hb = hb + <uint16_t>((NHASH - i) * x)
    a[0] = ha
    b[0] = hb
    return <uint32_t>ha | (<uint32_t>hb << 16)


cdef Py_ssize_t _literal(uint8_t* p, const uint8_t* z, Py_ssize_t n) noexcept:
    cdef Py_ssize_t k = _put_int(p, <uint32_t>n)
    p[k] = 58  # ':'
    memcpy(p + k + 1, z, n)
    return k + 1 + n


def fossil_create(const uint8_t[::1] source, const uint8_t[::1] target) -> bytes:
    """The fossil delta that turns ``source`` into ``target``."""
    cdef Py_ssize_t len_src = source.shape[0], len_out = target.shape[0]
    cdef const uint8_t* src = &source[0] if len_src else NULL
    cdef const uint8_t* tgt = &target[0] if len_out else NULL
    # worst case: the header, one literal of the whole target, the checksum
    cdef Py_ssize_t cap = len_out + 32
    cdef uint8_t* out = <uint8_t*>PyMem_Malloc(cap)
    cdef int* collide = NULL
    cdef int* landmark = NULL
    cdef Py_ssize_t n = 0, n_hash, i, base, j, k, x, y, iSrc, cnt, ofst, litsz, sz
    cdef Py_ssize_t best_cnt, best_ofst, best_litsz
    cdef int block, limit
    cdef uint16_t a, b, old, c
    cdef uint32_t hv
    if out == NULL:
        raise MemoryError()
    try:
        n += _put_int(out + n, <uint32_t>len_out)
        out[n] = 10
        n += 1
        if len_src <= NHASH:
            n += _literal(out + n, tgt, len_out)
            n += _put_int(out + n, _checksum(tgt, len_out))
            out[n] = 59
            n += 1
            return PyBytes_FromStringAndSize(<char*>out, n)
        n_hash = len_src // NHASH
        collide = <int*>PyMem_Malloc(n_hash * sizeof(int))
        landmark = <int*>PyMem_Malloc(n_hash * sizeof(int))
        if collide == NULL or landmark == NULL:
            raise MemoryError()
        for i in range(n_hash):
            collide[i] = -1
            landmark[i] = -1
        i = 0
        while i < len_src - NHASH:
            hv = _hash_init(src + i, &a, &b) % <uint32_t>n_hash
            collide[i // NHASH] = landmark[hv]
            landmark[hv] = <int>(i // NHASH)
            i += NHASH
        base = 0
        while base + NHASH < len_out:
            best_ofst = 0
            best_litsz = 0
            best_cnt = 0
            hv = _hash_init(tgt + base, &a, &b)
            i = 0
            while True:
                limit = 250
                block = landmark[hv % <uint32_t>n_hash]
                while block >= 0:
                    limit -= 1
                    if limit <= 0:
                        break
                    iSrc = <Py_ssize_t>block * NHASH
                    x = iSrc
                    y = base + i
                    j = 0
                    while x < len_src and y < len_out and src[x] == tgt[y]:
                        x += 1
                        y += 1
                        j += 1
                    j -= 1
                    k = 1
                    while k < iSrc and k <= i and src[iSrc - k] == tgt[base + i - k]:
                        k += 1
                    k -= 1
                    ofst = iSrc - k
                    cnt = j + k + 1
                    litsz = i - k
                    sz = _digit_count(i - k) + _digit_count(cnt) + _digit_count(ofst) + 3
                    if cnt >= sz and cnt > best_cnt:
                        best_cnt = cnt
                        best_ofst = ofst
                        best_litsz = litsz
                    block = collide[block]
                if best_cnt > 0:
                    if best_litsz > 0:
                        n += _literal(out + n, tgt + base, best_litsz)
                        base += best_litsz
                    base += best_cnt
                    n += _put_int(out + n, <uint32_t>best_cnt)
                    out[n] = 64
                    n += 1
                    n += _put_int(out + n, <uint32_t>best_ofst)
                    out[n] = 44
                    n += 1
                    break
                if base + i + NHASH >= len_out:
                    n += _literal(out + n, tgt + base, len_out - base)
                    base = len_out
                    break
                c = tgt[base + i + NHASH]
                old = tgt[base + i]
                a = a - old + c
                b = b - <uint16_t>(NHASH * old) + a
                hv = <uint32_t>a | (<uint32_t>b << 16)
                i += 1
        if base < len_out:
            n += _literal(out + n, tgt + base, len_out - base)
        n += _put_int(out + n, _checksum(tgt, len_out))
        out[n] = 59
        n += 1
        return PyBytes_FromStringAndSize(<char*>out, n)
    finally:
        PyMem_Free(out)
        PyMem_Free(collide)
        PyMem_Free(landmark)


cdef inline Py_ssize_t _get_int(const uint8_t* d, Py_ssize_t pos, Py_ssize_t n, uint32_t* v) except -1:
    cdef uint32_t acc = 0
    cdef Py_ssize_t start = pos
    cdef int dv
    while pos < n:
        dv = _DIGIT_VALUE[d[pos]]
        if dv < 0:
            break
        acc = (acc << 6) + <uint32_t>dv
        pos += 1
    if pos == start:
        raise FossilError("bad delta integer")
    v[0] = acc
    return pos


def fossil_apply(const uint8_t[::1] source, const uint8_t[::1] delta) -> bytes:
    """Apply a fossil ``delta`` to ``source`` (FossilError when it does not fit)."""
    cdef Py_ssize_t n = delta.shape[0], len_src = source.shape[0], pos = 0
    cdef const uint8_t* d = &delta[0] if n else NULL
    cdef const uint8_t* src = &source[0] if len_src else NULL
    cdef uint32_t limit = 0, cnt = 0, ofst = 0
    cdef uint64_t total = 0
    cdef uint8_t op
    cdef bytearray out = bytearray()
    if n == 0:
        raise FossilError("bad delta integer")
    pos = _get_int(d, 0, n, &limit)
    if pos >= n or d[pos] != 10:
        raise FossilError("size integer not terminated by '\\n'")
    pos += 1
    while pos < n:
        pos = _get_int(d, pos, n, &cnt)
        if pos >= n:
            raise FossilError("unterminated delta")
        op = d[pos]
        pos += 1
        if op == 64:
            pos = _get_int(d, pos, n, &ofst)
            if pos >= n or d[pos] != 44:
                raise FossilError("copy command not terminated by ','")
            pos += 1
            total += cnt
            if total > limit:
                raise FossilError("copy exceeds output file size")
            if <uint64_t>ofst + cnt > <uint64_t>len_src:
                raise FossilError("copy extends past end of input")
            out += (<const char*>src)[ofst:ofst + cnt] if cnt else b""
        elif op == 58:
            total += cnt
            if total > limit:
                raise FossilError("insert command gives an output larger than predicted")
            if pos + <Py_ssize_t>cnt > n:
                raise FossilError("insert count exceeds size of delta")
            out += (<const char*>d)[pos:pos + cnt] if cnt else b""
            pos += cnt
        elif op == 59:
            result = bytes(out)
            if cnt != _checksum(<const uint8_t*>PyBytes_AS_STRING(result), len(result)):
                raise FossilError("bad checksum")
            if total != limit:
                raise FossilError("generated size does not match predicted size")
            return result
        else:
            raise FossilError("unknown delta operator")
    raise FossilError("unterminated delta")
