"""The byte-level fast path: both twins, and Cython vs Python parity byte for byte."""

from __future__ import annotations

import importlib
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay import _fastpath_py

try:
    _cython: ModuleType | None = importlib.import_module("relay._fastpath")
except ImportError:  # extension not built
    _cython = None

MASK = b"\x37\xfa\x21\x3d"


@pytest.fixture(params=["python", "cython"])
def fastpath(request: pytest.FixtureRequest) -> ModuleType:
    """Each implementation in turn; the Cython one is skipped when not built."""
    if request.param == "python":
        return _fastpath_py
    if _cython is None:
        pytest.skip("relay._fastpath is not built")
    return _cython


def masked(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bytes = MASK
) -> bytes:
    """A client frame as a browser sends it."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv | opcode
    if n < 126:
        head = bytes((b0, 0x80 | n))
    elif n < 0x10000:
        head = bytes((b0, 0x80 | 126)) + struct.pack("!H", n)
    else:
        head = bytes((b0, 0x80 | 127)) + struct.pack("!Q", n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


# ---- build_frame / build_close_frame ----------------------------------------------------


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_build_frame_lengths(fastpath: ModuleType, size: int, header: bytes) -> None:
    payload = b"x" * size
    assert fastpath.build_frame(1, payload) == header + payload


def test_build_frame_binary_and_bytearray(fastpath: ModuleType) -> None:
    assert fastpath.build_frame(2, bytearray(b"\x00\x01")) == b"\x82\x02\x00\x01"


def test_build_close_frame(fastpath: ModuleType) -> None:
    assert fastpath.build_close_frame(3501, "bad request") == b"\x88\x0d\x0d\xadbad request"
    assert fastpath.build_close_frame(1000, "") == b"\x88\x02\x03\xe8"


def test_build_close_frame_truncates_on_character_boundary(fastpath: ModuleType) -> None:
    frame = fastpath.build_close_frame(3000, "é" * 100)  # 200 bytes of UTF-8
    body = frame[4:]
    assert frame[1] == 2 + 122 and len(body) == 122
    assert body.decode("utf-8") == "é" * 61
    frame = fastpath.build_close_frame(3000, "a" * 200)
    assert len(frame) == 2 + 2 + 123


def test_build_close_frame_rejects_bad_code(fastpath: ModuleType) -> None:
    with pytest.raises(ValueError):
        fastpath.build_close_frame(70000, "x")


# ---- FrameParser ------------------------------------------------------------------------


def test_parser_single_frames(fastpath: ModuleType) -> None:
    p = fastpath.FrameParser(1 << 20)
    for size in (0, 1, 7, 8, 9, 125, 126, 1000, 65535, 65536, 100_000):
        payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        assert p.feed(masked(2, payload)) == [(2, payload)]


def _stream() -> tuple[bytes, list[tuple[int, bytes]]]:
    """Frames covering every path: fragments with a control frame between them."""
    big = b"B" * 70_000
    frames = [
        masked(1, b'{"id":1}'),
        masked(1, b"frag-", fin=False),
        masked(9, b"ping!"),
        masked(0, b"x" * 300, fin=False),
        masked(10, b""),
        masked(0, b"-end"),
        masked(2, big),
        masked(8, b"\x03\xe8bye"),
    ]
    expected = [
        (1, b'{"id":1}'),
        (9, b"ping!"),
        (10, b""),
        (1, b"frag-" + b"x" * 300 + b"-end"),
        (2, big),
        (8, b"\x03\xe8bye"),
    ]
    return b"".join(frames), expected


def test_parser_every_split_offset(fastpath: ModuleType) -> None:
    data, expected = _stream()
    data = data[: len(data) - 70_000 - 16]  # drop the big and close frames: keep it quick
    expected = expected[:4]
    for cut in range(len(data) + 1):
        p = fastpath.FrameParser(1 << 20)
        assert p.feed(data[:cut]) + p.feed(data[cut:]) == expected, cut


def test_parser_byte_at_a_time(fastpath: ModuleType) -> None:
    data, expected = _stream()
    p = fastpath.FrameParser(1 << 20)
    got: list[tuple[int, bytes]] = []
    for i in range(len(data)):
        got += p.feed(data[i : i + 1])
    assert got == expected


def test_parser_whole_stream_and_memoryview(fastpath: ModuleType) -> None:
    data, expected = _stream()
    assert fastpath.FrameParser(1 << 20).feed(memoryview(data)) == expected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (bytes((0x81, 0x02)) + b"hi", 1002),  # unmasked
        (masked(1, b"x", rsv=0x40), 1002),
        (masked(1, b"x", rsv=0x20), 1002),
        (masked(1, b"x", rsv=0x10), 1002),
        *[(masked(op, b"x"), 1002) for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15)],
        (masked(9, b"x", fin=False), 1002),  # fragmented control
        (masked(8, b"x" * 126), 1002),  # control too long
        (masked(0, b"x"), 1002),  # continuation without start
        (masked(1, b"a", fin=False) + masked(1, b"b"), 1002),  # new message while open
        (masked(1, b"a", fin=False) + masked(2, b"b", fin=False), 1002),
        (masked(1, b"x" * 101), 1009),
        (masked(1, b"x" * 60, fin=False) + masked(0, b"y" * 41), 1009),
        (bytes((0x82, 0xFF)) + b"\x80" + b"\x00" * 7 + MASK, 1002),  # 64-bit length, MSB set
    ],
)
def test_parser_errors(fastpath: ModuleType, frame: bytes, code: int) -> None:
    with pytest.raises(fastpath.FrameError) as info:
        fastpath.FrameParser(100).feed(frame)
    assert info.value.code == code
    assert info.value.reason


def test_parser_rejects_oversize_from_header_alone(fastpath: ModuleType) -> None:
    header = masked(2, b"x" * 70_000)[:14]
    p = fastpath.FrameParser(65_536)
    with pytest.raises(fastpath.FrameError) as info:
        p.feed(header)
    assert info.value.code == 1009


def test_parser_error_on_header_bytes_only(fastpath: ModuleType) -> None:
    with pytest.raises(fastpath.FrameError):
        fastpath.FrameParser(100).feed(b"\x81\x05")  # unmasked, payload not yet there


def test_parser_exact_limit_passes(fastpath: ModuleType) -> None:
    p = fastpath.FrameParser(100)
    data = masked(1, b"x" * 50, fin=False) + masked(0, b"y" * 50)
    assert p.feed(data) == [(1, b"x" * 50 + b"y" * 50)]


# ---- varints ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "raw"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (2**64 - 1, b"\xff" * 9 + b"\x01"),
    ],
)
def test_encode_varint(fastpath: ModuleType, n: int, raw: bytes) -> None:
    assert fastpath.encode_varint(n) == raw


@pytest.mark.parametrize("n", [-1, 2**64])
def test_encode_varint_range(fastpath: ModuleType, n: int) -> None:
    with pytest.raises(ValueError):
        fastpath.encode_varint(n)


def test_delimited_round_trip(fastpath: ModuleType) -> None:
    messages = [b"", b"a", b"x" * 127, b"y" * 128, b"z" * 70_000]
    joined = fastpath.join_delimited(messages)
    assert joined[:3] == b"\x00\x01a"
    assert fastpath.split_delimited(joined) == messages
    assert fastpath.join_delimited([]) == b""
    assert fastpath.split_delimited(b"") == []


@pytest.mark.parametrize(
    "data",
    [b"\x05abc", b"\x80", b"\xff" * 10 + b"\x01", b"\x01a\x02b", b"\xff" * 9 + b"\x7f"],
)
def test_split_delimited_errors(fastpath: ModuleType, data: bytes) -> None:
    with pytest.raises(ValueError):
        fastpath.split_delimited(data)


# ---- Cython vs Python parity ------------------------------------------------------------

needs_cython = pytest.mark.skipif(_cython is None, reason="relay._fastpath is not built")


def _outcome(fn: object, *args: object) -> object:
    """The result, or the exception's type, args and code (for comparisons)."""
    try:
        return fn(*args)  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - compared, not swallowed
        return (type(exc).__name__, getattr(exc, "code", None), str(exc))


@needs_cython
@given(st.integers(0, 15), st.binary(max_size=70_000))
@settings(max_examples=60, deadline=None)
def test_parity_build_frame(opcode: int, payload: bytes) -> None:
    assert _cython is not None
    assert _cython.build_frame(opcode, payload) == _fastpath_py.build_frame(opcode, payload)


@needs_cython
@given(st.integers(-5, 70_000), st.text(max_size=200))
def test_parity_build_close_frame(code: int, reason: str) -> None:
    assert _cython is not None
    c = _outcome(_cython.build_close_frame, code, reason)
    p = _outcome(_fastpath_py.build_close_frame, code, reason)
    assert c == p


@needs_cython
@given(st.integers(-10, 2**65))
def test_parity_encode_varint(n: int) -> None:
    assert _cython is not None
    assert _outcome(_cython.encode_varint, n) == _outcome(_fastpath_py.encode_varint, n)


@needs_cython
@given(
    st.sampled_from([1, 2]),
    st.lists(st.binary(max_size=300), max_size=8)
    | st.lists(st.binary(max_size=40_000), max_size=3),
    st.booleans(),
)
@settings(deadline=None)
def test_parity_frame_messages(opcode: int, messages: list[bytes], delimited: bool) -> None:
    assert _cython is not None
    framed = _cython.frame_messages(opcode, messages, delimited)
    assert framed == _fastpath_py.frame_messages(opcode, messages, delimited)


def test_frame_messages_is_one_frame_of_the_joined_messages(fastpath: ModuleType) -> None:
    parser = fastpath.FrameParser(1 << 20)
    framed = fastpath.frame_messages(1, [b'{"a":1}', b"{}"], False)
    assert framed == fastpath.build_frame(1, b'{"a":1}\n{}')
    framed = fastpath.frame_messages(2, [b"ab", b""], True)
    assert framed == fastpath.build_frame(2, b"\x02ab\x00")
    assert parser.max_message_size == 1 << 20


@needs_cython
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_parity_join_delimited(messages: list[bytes]) -> None:
    assert _cython is not None
    joined = _cython.join_delimited(messages)
    assert joined == _fastpath_py.join_delimited(messages)
    assert _cython.split_delimited(joined) == messages


@needs_cython
@given(st.binary(max_size=40))
def test_parity_split_delimited_arbitrary(data: bytes) -> None:
    assert _cython is not None
    c = _outcome(_cython.split_delimited, data)
    p = _outcome(_fastpath_py.split_delimited, data)
    assert c == p


_frames = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 2, 8, 9, 10, 3]),
        st.binary(max_size=300),
        st.booleans(),
        st.binary(min_size=4, max_size=4),
    ),
    max_size=6,
)


def _run_parser(module: ModuleType, data: bytes, cuts: list[int]) -> object:
    parser = module.FrameParser(600)
    got: list[object] = []
    prev = 0
    for cut in [*sorted(cuts), len(data)]:
        out = _outcome(parser.feed, data[prev:cut])
        got.append(out)
        if isinstance(out, tuple):
            break
        prev = cut
    return got


@needs_cython
@given(_frames, st.lists(st.integers(0, 2000), max_size=5))
@settings(max_examples=150, deadline=None)
def test_parity_frame_parser(frames: list[tuple[int, bytes, bool, bytes]], cuts: list[int]) -> None:
    assert _cython is not None
    data = b"".join(masked(op, body, fin=fin, mask=mask) for op, body, fin, mask in frames)
    cuts = [min(c, len(data)) for c in cuts]
    assert _run_parser(_cython, data, cuts) == _run_parser(_fastpath_py, data, cuts)


@needs_cython
@given(st.binary(max_size=200), st.lists(st.integers(0, 200), max_size=4))
def test_parity_frame_parser_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    assert _cython is not None
    cuts = [min(c, len(data)) for c in cuts]
    assert _run_parser(_cython, data, cuts) == _run_parser(_fastpath_py, data, cuts)


# ---- the selector -----------------------------------------------------------------------


def test_selector_reports_implementation() -> None:
    from relay import fastpath

    expected = "python" if _cython is None or os.environ.get("RELAY_NO_EXTENSIONS") else "cython"
    assert fastpath.IMPLEMENTATION == expected
    source = _cython if expected == "cython" else _fastpath_py
    assert fastpath.FrameParser is source.FrameParser  # type: ignore[union-attr]


def test_selector_honours_no_extensions() -> None:
    env = {**os.environ, "RELAY_NO_EXTENSIONS": "1"}
    code = "import relay.fastpath as f; print(f.IMPLEMENTATION, f.FrameParser.__module__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["python", "relay._fastpath_py"]
