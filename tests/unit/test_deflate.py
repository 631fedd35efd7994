"""permessage-deflate pieces: the offer, the compressor, the inflate limit, RSV1 frames."""

from __future__ import annotations

import importlib
import zlib
from types import ModuleType

import pytest

from relay import _fastpath_py
from relay.transports.deflate import Deflater, TooBig, inflate, offered

try:
    _cython: ModuleType | None = importlib.import_module("relay._fastpath")
except ImportError:
    _cython = None

MASK = b"\x11\x22\x33\x44"


@pytest.fixture(params=["python", "cython"])
def fp(request: pytest.FixtureRequest) -> ModuleType:
    if request.param == "python":
        return _fastpath_py
    if _cython is None:
        pytest.skip("relay._fastpath is not built")
    return _cython


def frame(b0: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([b0, 0x80 | len(payload)]) + MASK + masked


@pytest.mark.parametrize(
    ("header", "want"),
    [
        ("permessage-deflate", True),
        ("permessage-deflate; client_max_window_bits", True),
        ("x-webkit-deflate-frame, Permessage-Deflate ;server_no_context_takeover", True),
        ("x-webkit-deflate-frame", False),
        ("", False),
    ],
)
def test_offer(header: str, want: bool) -> None:
    assert offered(header) is want


def test_compress_round_trips_without_tail() -> None:
    d = Deflater(1, 0, 65536, 0)
    data = b'{"push":{"channel":"c","pub":{"data":{"x":"' + b"y" * 500 + b'"}}}}'
    out = d.compress(data)
    assert not out.endswith(b"\x00\x00\xff\xff") and len(out) < len(data) // 5
    assert inflate(out, 0) == data
    assert d.compress(data) == out  # no context: the same bytes every time (the cache)


def test_levels_and_defaults() -> None:
    assert Deflater(42, 0, 100, 0).level == 1  # invalid: the default stays
    assert Deflater(-2, 0, 100, 0).level == -2
    assert inflate(Deflater(-2, 0, 100, 0).compress(b"abc" * 50), 0) == b"abc" * 50
    assert inflate(Deflater(0, 0, 100, 0).compress(b"abc"), 0) == b"abc"
    assert Deflater(1, 0, 100, 0).decompressed_limit == 1000  # 10 x message_size_limit
    assert Deflater(1, 0, 100, 5).decompressed_limit == 5
    d = Deflater(1, 10, 100, 0)
    assert not d.wanted(10) and d.wanted(11)
    assert Deflater(1, 0, 100, 0).wanted(1)


def test_inflate_limit() -> None:
    data = zlib.compressobj(6, zlib.DEFLATED, -15)
    packed = data.compress(b"a" * 1001) + data.flush(zlib.Z_SYNC_FLUSH)
    assert inflate(packed[:-4], 1001) == b"a" * 1001
    with pytest.raises(TooBig):
        inflate(packed[:-4], 1000)
    with pytest.raises(zlib.error):
        inflate(b"\xff\xff\xff\xff", 100)


def test_rsv1_refused_without_deflate(fp: ModuleType) -> None:
    parser = fp.FrameParser(1000)
    with pytest.raises(fp.FrameError) as err:
        parser.feed(frame(0xC1, b"x"))
    assert err.value.code == 1002


def test_rsv1_marks_compressed_messages(fp: ModuleType) -> None:
    parser = fp.FrameParser(1000)
    parser.deflate = True
    assert parser.feed(frame(0xC1, b"a") + frame(0x81, b"b")) == [(0x41, b"a"), (1, b"b")]
    # fragmented: RSV1 on the first frame only, the message keeps it
    assert parser.feed(frame(0x42, b"x") + frame(0x80, b"y")) == [(0x42, b"xy")]
    for bad in (frame(0xC9, b""), frame(0xA1, b"x"), frame(0x41, b"x") + frame(0xC0, b"y")):
        p = fp.FrameParser(1000)
        p.deflate = True
        with pytest.raises(fp.FrameError):
            p.feed(bad)


def test_build_frame_keeps_rsv1(fp: ModuleType) -> None:
    assert fp.build_frame(0x41, b"ab") == b"\xc1\x02ab"
    assert fp.build_frame(0x01, b"ab") == b"\x81\x02ab"
