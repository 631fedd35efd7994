"""Both fast-path twins, the selector and the ``.pyi`` contract name the same API."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

from relay import _fastpath_py, fastpath

STUB = Path(__file__).resolve().parents[2] / "relay" / "_fastpath.pyi"
FUNCTIONS = [
    "build_frame",
    "build_close_frame",
    "encode_varint",
    "join_delimited",
    "split_delimited",
    "fossil_create",
    "fossil_apply",
]

try:
    _cython: ModuleType | None = importlib.import_module("relay._fastpath")
except ImportError:
    _cython = None

needs_cython = pytest.mark.skipif(_cython is None, reason="relay._fastpath is not built")


def _params(fn: object) -> list[tuple[str, object]]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.kind) for p in sig.parameters.values()]


def _stub() -> dict[str, list[str]]:
    """Names in the stub -> parameter names (classes: ``Class.method``)."""
    tree = ast.parse(STUB.read_text())
    out: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = [a.arg for a in node.args.args]
        elif isinstance(node, ast.ClassDef):
            out[node.name] = []
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    out[f"{node.name}.{item.name}"] = [a.arg for a in item.args.args]
    return out


def test_pure_twin_all_matches_stub() -> None:
    stub = _stub()
    names = {n for n in stub if "." not in n}
    assert set(_fastpath_py.__all__) == names
    for name in FUNCTIONS:
        assert [p for p, _ in _params(getattr(_fastpath_py, name))] == stub[name]
    assert [p for p, _ in _params(_fastpath_py.FrameParser.feed)] == stub["FrameParser.feed"]
    init = _params(_fastpath_py.FrameParser.__init__)
    assert [p for p, _ in init] == stub["FrameParser.__init__"]


@needs_cython
def test_twins_export_the_same_names() -> None:
    assert _cython is not None
    assert sorted(_cython.__all__) == sorted(_fastpath_py.__all__)
    public = {n for n in dir(_cython) if not n.startswith("_")}
    assert set(_fastpath_py.__all__) <= public


@needs_cython
@pytest.mark.parametrize("name", FUNCTIONS)
def test_twins_have_the_same_signatures(name: str) -> None:
    assert _cython is not None
    assert _params(getattr(_cython, name)) == _params(getattr(_fastpath_py, name))


@needs_cython
def test_frame_parser_signatures() -> None:
    assert _cython is not None
    assert _params(_cython.FrameParser.feed) == _params(_fastpath_py.FrameParser.feed)
    for module in (_cython, _fastpath_py):  # __init__ of a cdef class is not introspectable
        parser = module.FrameParser(max_message_size=10)
        assert parser.max_message_size == 10
        assert parser.feed(data=b"") == []


@needs_cython
def test_frame_error_is_compatible() -> None:
    assert _cython is not None
    for module in (_cython, _fastpath_py):
        err = module.FrameError(code=1002, reason="x")
        assert isinstance(err, Exception)
        assert (err.code, err.reason) == (1002, "x")


def test_selector_reexports_everything() -> None:
    assert set(fastpath.__all__) == {*_fastpath_py.__all__, "IMPLEMENTATION"}
    for name in _fastpath_py.__all__:
        assert getattr(fastpath, name) is not None
    assert fastpath.IMPLEMENTATION in ("cython", "python")
