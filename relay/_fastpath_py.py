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
    "FossilError",
    "fossil_create",
    "fossil_apply",
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
    b0 = 0x80 | (opcode & 0x4F)  # 0x40: RSV1, a compressed message (RFC 7692)
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


def _check_header(b0: int, b1: int, fragmented: bool, rsv1: bool) -> None:
    """Validate the first two header bytes (RFC 6455 §5.2) or raise ``FrameError``.

    ``rsv1``: permessage-deflate was negotiated, RSV1 may mark a message's first frame
    (RFC 7692 §6)."""
    opcode = b0 & 0x0F
    if b0 & 0x70 and not (rsv1 and (b0 & 0x70) == 0x40 and 1 <= opcode <= 2):
        raise FrameError(1002, "reserved bits set")
    if not b1 & 0x80:
        raise FrameError(1002, "unmasked client frame")
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
        #: permessage-deflate negotiated: RSV1 marks compressed messages (0x40 in opcode)
        self.deflate = False
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
            _check_header(b0, b1, self._frag_opcode != 0, self.deflate)
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
            self._deliver(b0 & 0x80, opcode, b0 & 0x40, payload, out)
        return pos

    def _deliver(
        self, fin: int, opcode: int, rsv1: int, payload: bytes, out: list[tuple[int, bytes]]
    ) -> None:
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


# ---- fossil delta ------------------------------------------------------------------------
# The delta format of Fossil SCM (www/delta_format.wiki) as Centrifugo produces it with
# github.com/shadowspore/fossil-delta (centrifuge hub.go ``getDeltaPub``): "<target
# length>\n", then "<n>@<offset>," copies from the source and "<n>:<bytes>" literals,
# then "<checksum>;". Integers are base-64 digits, most significant first.

_NHASH = 16
_DIGITS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
_DIGIT_VALUE = {c: i for i, c in enumerate(_DIGITS)}


class FossilError(ValueError):
    """A fossil delta that does not apply to the given source."""


def _put_int(out: bytearray, v: int) -> None:
    if v == 0:
        out.append(48)
        return
    digits = bytearray()
    while v > 0:
        digits.append(_DIGITS[v & 0x3F])
        v >>= 6
    digits.reverse()
    out += digits


def _digit_count(v: int) -> int:
    i = 1
    x = 64
    while v >= x:
        i += 1
        x <<= 6
    return i


def _checksum(data: bytes) -> int:
    """Sum of the big-endian 32-bit words of ``data`` (the tail padded with zeros)."""
    n = len(data)
    whole = n - n % 4
    total = sum(int.from_bytes(data[i : i + 4], "big") for i in range(0, whole, 4))
    if whole < n:
        total += int.from_bytes(data[whole:] + b"\0" * (4 - (n - whole)), "big")
    return total & 0xFFFFFFFF


def _hash_at(z: bytes, pos: int) -> tuple[int, int]:
    a = b = 0
    for i in range(_NHASH):
        x = z[pos + i]
        a = (a + x) & 0xFFFF
        b = (b + (_NHASH - i) * x) & 0xFFFF
    return a, b


def fossil_create(source: bytes, target: bytes) -> bytes:
    """The fossil delta that turns ``source`` into ``target``."""
    len_out = len(target)
    len_src = len(source)
    out = bytearray()
    _put_int(out, len_out)
    out.append(10)
    if len_src <= _NHASH:
        _put_int(out, len_out)
        out.append(58)
        out += target
        _put_int(out, _checksum(target))
        out.append(59)
        return bytes(out)
    n_hash = len_src // _NHASH
    collide = [-1] * n_hash
    landmark = [-1] * n_hash
    for i in range(0, len_src - _NHASH, _NHASH):
        a, b = _hash_at(source, i)
        hv = (a | b << 16) % n_hash
        collide[i // _NHASH] = landmark[hv]
        landmark[hv] = i // _NHASH
    base = 0
    while base + _NHASH < len_out:
        best_ofst = best_litsz = best_cnt = 0
        a, b = _hash_at(target, base)
        window = bytearray(target[base : base + _NHASH])
        wi = 0
        i = 0
        while True:
            limit = 250
            hv = (a | b << 16) % n_hash
            block = landmark[hv]
            while block >= 0:
                limit -= 1
                if limit <= 0:
                    break
                src = block * _NHASH
                x = src
                y = base + i
                j = 0
                while x < len_src and y < len_out and source[x] == target[y]:
                    x += 1
                    y += 1
                    j += 1
                j -= 1
                k = 1
                while k < src and k <= i and source[src - k] == target[base + i - k]:
                    k += 1
                k -= 1
                ofst = src - k
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
                    _put_int(out, best_litsz)
                    out.append(58)
                    out += target[base : base + best_litsz]
                    base += best_litsz
                base += best_cnt
                _put_int(out, best_cnt)
                out.append(64)
                _put_int(out, best_ofst)
                out.append(44)
                break
            if base + i + _NHASH >= len_out:
                _put_int(out, len_out - base)
                out.append(58)
                out += target[base:len_out]
                base = len_out
                break
            # roll the hash one byte forward
            c = target[base + i + _NHASH]
            old = window[wi]
            window[wi] = c
            wi = (wi + 1) & (_NHASH - 1)
            a = (a - old + c) & 0xFFFF
            b = (b - _NHASH * old + a) & 0xFFFF
            i += 1
    if base < len_out:
        _put_int(out, len_out - base)
        out.append(58)
        out += target[base:len_out]
    _put_int(out, _checksum(target))
    out.append(59)
    return bytes(out)


def _get_int(delta: bytes, pos: int) -> tuple[int, int]:
    v = 0
    n = len(delta)
    start = pos
    while pos < n:
        d = _DIGIT_VALUE.get(delta[pos])
        if d is None:
            break
        v = (v << 6) + d
        pos += 1
    if pos == start:
        raise FossilError("bad delta integer")
    return v & 0xFFFFFFFF, pos


def fossil_apply(source: bytes, delta: bytes) -> bytes:
    """Apply a fossil ``delta`` to ``source`` (FossilError when it does not fit)."""
    limit, pos = _get_int(delta, 0)
    n = len(delta)
    if pos >= n or delta[pos] != 10:
        raise FossilError("size integer not terminated by '\\n'")
    pos += 1
    out = bytearray()
    total = 0
    while pos < n:
        cnt, pos = _get_int(delta, pos)
        if pos >= n:
            raise FossilError("unterminated delta")
        op = delta[pos]
        pos += 1
        if op == 64:  # '@'
            ofst, pos = _get_int(delta, pos)
            if pos >= n or delta[pos] != 44:
                raise FossilError("copy command not terminated by ','")
            pos += 1
            total += cnt
            if total > limit:
                raise FossilError("copy exceeds output file size")
            if ofst + cnt > len(source):
                raise FossilError("copy extends past end of input")
            out += source[ofst : ofst + cnt]
        elif op == 58:  # ':'
            total += cnt
            if total > limit:
                raise FossilError("insert command gives an output larger than predicted")
            if pos + cnt > n:
                raise FossilError("insert count exceeds size of delta")
            out += delta[pos : pos + cnt]
            pos += cnt
        elif op == 59:  # ';'
            result = bytes(out)
            if cnt != _checksum(result):
                raise FossilError("bad checksum")
            if total != limit:
                raise FossilError("generated size does not match predicted size")
            return result
        else:
            raise FossilError("unknown delta operator")
    raise FossilError("unterminated delta")
