"""Fossil delta on the fast path: both twins, and both against the npm ``fossil-delta``.

The npm package is the fossil implementation the centrifuge JS SDK applies deltas with;
it runs under Node.js from ``tests/node`` (installed by ``.ci/run``). relay follows the Go
package Centrifugo encodes with (github.com/shadowspore/fossil-delta), which differs from
the JS one in two details: its hash table has ``len(source) // 16`` buckets (JS: rounded
up) and it tries 249 candidates per bucket (JS: 250). So the deltas are byte-equal when
the source length is a multiple of 16 and under 250 blocks; otherwise each side still
applies the other's delta.
"""

from __future__ import annotations

import importlib
import json
import random
import shutil
import subprocess
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

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture(params=["python", "cython"])
def fp(request: pytest.FixtureRequest) -> ModuleType:
    if request.param == "python":
        return _fastpath_py
    if _cython is None:
        pytest.skip("relay._fastpath is not built")
    return _cython


def _edited(rng: random.Random, source: bytes, edits: int) -> bytes:
    """``source`` with a few insertions, deletions and replacements."""
    out = bytearray(source)
    for _ in range(edits):
        at = rng.randint(0, len(out))
        cut = rng.randint(0, 12)
        out[at : at + cut] = bytes(
            rng.choice(b'abcxyz0189{}":,') for _ in range(rng.randint(0, 12))
        )
    return bytes(out)


def _state(rng: random.Random, size: int) -> bytes:
    """A JSON-ish document of about ``size`` bytes."""
    items = []
    while sum(map(len, items)) < size:
        items.append(
            b'"k%d":"%s"'
            % (rng.randint(0, 10**6), bytes(rng.choices(b"abcdefghij", k=rng.randint(1, 30))))
        )
    return b"{" + b",".join(items) + b"}"


def _cases(seed: int, n: int) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    cases: list[tuple[bytes, bytes]] = [
        (b"", b""),
        (b"", b"abc"),
        (b"abc", b""),
        (b"0123456789abcdef", b"0123456789abcdefX"),
        (b"0123456789abcdefg", b"0123456789abcdefg"),
        (b"a" * 100, b"a" * 101),
    ]
    for _ in range(n):
        source = _state(rng, rng.choice([10, 40, 300, 3000]))
        if rng.random() < 0.5:
            source = source[: len(source) // 16 * 16]
        cases.append((source, _edited(rng, source, rng.randint(0, 20))))
        cases.append((source, bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200)))))
    return cases


def test_known_delta(fp: ModuleType) -> None:
    """A copy and a literal, with the checksum (checked by hand against fossil's format)."""
    source = b"0123456789abcdefghijklmnop" * 3
    target = b"0123456789abcdefghijklmnop" * 2 + b"XX"
    delta = fp.fossil_create(source, target)
    assert delta == b"r\np@0,2:XX2WgKXH;"
    assert fp.fossil_apply(source, delta) == target


def test_small_source_is_one_literal(fp: ModuleType) -> None:
    assert (
        fp.fossil_create(b"short", b"hello")
        == b"5\n5:hello" + _fastpath_py.fossil_create(b"", b"hello").split(b"hello", 1)[1]
    )


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600), st.binary(max_size=600), st.data())
def test_round_trip_and_twins_agree(source: bytes, tail: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(source)))
    target = source[:cut] + tail + source[cut:][: data.draw(st.integers(0, 600))]
    delta = _fastpath_py.fossil_create(source, target)
    assert _fastpath_py.fossil_apply(source, delta) == target
    if _cython is not None:
        assert _cython.fossil_create(source, target) == delta
        assert _cython.fossil_apply(source, delta) == target


@pytest.mark.parametrize(
    "delta",
    [b"", b"5", b"5\n", b"5\n5:hel", b"5\n2@0,3:llo0;", b"3\n9@0,", b"3\n3:abcZ;", b"3\n3?abc0;"],
)
def test_bad_deltas_are_refused(fp: ModuleType, delta: bytes) -> None:
    with pytest.raises(fp.FossilError):
        fp.fossil_apply(b"hello world", delta)
    assert issubclass(fp.FossilError, ValueError)


def test_wrong_checksum_is_refused(fp: ModuleType) -> None:
    delta = fp.fossil_create(b"x" * 40, b"x" * 39 + b"y")
    good = fp.fossil_apply(b"x" * 40, delta)
    assert good == b"x" * 39 + b"y"
    with pytest.raises(fp.FossilError):
        fp.fossil_apply(b"x" * 40, delta[:-2] + b"0;")


def _node_fossil(cases: list[tuple[bytes, bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """(JS delta of source -> target, JS applying our delta) for each case."""
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "fossil-delta").is_dir():
        pytest.skip(
            "node or tests/node/node_modules/fossil-delta missing (npm --prefix tests/node ci)"
        )
    payload = json.dumps([[s.hex(), t.hex(), d.hex()] for s, t, d in cases])
    proc = subprocess.run(
        [node, str(NODE_DIR / "fossil.mjs")],
        input=payload.encode(),
        capture_output=True,
        check=True,
        cwd=NODE_DIR,
        timeout=120,
    )
    return [(bytes.fromhex(d), bytes.fromhex(a)) for d, a in json.loads(proc.stdout)]


def test_against_npm_fossil_delta(fp: ModuleType) -> None:
    pairs = _cases(seed=12, n=150)
    rng = random.Random(7)
    big = _state(rng, 10_000)  # the bench's state: 10 KB changing by about 1 %
    pairs.append((big, _edited(rng, big, 10)))
    ours = [fp.fossil_create(s, t) for s, t in pairs]
    results = _node_fossil([(s, t, d) for (s, t), d in zip(pairs, ours, strict=True)])
    for (source, target), delta, (js_delta, js_applied) in zip(pairs, ours, results, strict=True):
        assert js_applied == target  # the SDK's decoder reads our delta
        assert fp.fossil_apply(source, js_delta) == target  # ours reads the SDK's
        if len(source) % 16 == 0 and len(source) < 249 * 16:
            assert delta == js_delta, (source, target)
