"""Pure unit tests for gobwas-style globs and the origin rule (relay.protocol.glob)."""

from __future__ import annotations

import re

import pytest

from relay.protocol.glob import OriginChecker, compile_glob


def _match(pattern: str, text: str) -> bool:
    return compile_glob(pattern).fullmatch(text) is not None


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        # literals
        ("abc", "abc", True),
        ("abc", "abcd", False),
        ("abc", "ab", False),
        ("", "", True),
        ("", "a", False),
        ("a.b", "a.b", True),
        ("a.b", "axb", False),  # '.' is literal
        ("a+b", "a+b", True),
        ("a+b", "aab", False),
        ("(x)|y", "(x)|y", True),
        ("^a$", "^a$", True),
        # '*' crosses dots and slashes (no separators)
        ("*", "", True),
        ("*", "anything.at/all", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", ".example.com", True),
        ("*.example.com", "example.com", False),
        ("https://*.example.com", "https://app.example.com", True),
        ("https://*.example.com", "https://a.b.example.com", True),
        ("https://*.example.com", "http://app.example.com", False),
        ("https://*.example.com", "https://app.example.com.evil.io", False),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "abc", True),
        ("a*b*c", "acb", False),
        ("*\n*", "x\ny", True),  # DOTALL
        # '?' exactly one character
        ("?", "a", True),
        ("?", ".", True),
        ("?", "", False),
        ("?", "ab", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("localhost:????", "localhost:3000", True),
        ("localhost:????", "localhost:300", False),
        # classes
        ("[abc]", "b", True),
        ("[abc]", "d", False),
        ("[abc]", "ab", False),
        ("[a-z]", "m", True),
        ("[a-z]", "M", False),
        ("[a-z0-9]x", "5x", True),
        ("[!abc]", "d", True),
        ("[!abc]", "a", False),
        ("[!a-z]", "5", True),
        ("[!a-z]", "q", False),
        ("[.]", ".", True),
        ("[.]", "x", False),
        # alternatives
        ("{a,b}", "a", True),
        ("{a,b}", "b", True),
        ("{a,b}", "c", False),
        ("{a,b}", "a,b", False),
        ("{}", "", True),
        ("{a,}", "", True),
        ("x{a,bc}y", "xbcy", True),
        ("https://{app,admin}.example.com", "https://admin.example.com", True),
        ("https://{app,admin}.example.com", "https://api.example.com", False),
        ("{http,https}://*.example.com", "http://x.example.com", True),
        ("{a*,b?}", "azzz", True),
        ("{a*,b?}", "bz", True),
        ("{a*,b?}", "bzz", False),
        ("{a,{b,c}}", "c", True),  # nested
        # ',' and '}' outside braces are literals
        ("a,b", "a,b", True),
        ("a}b", "a}b", True),
        # escapes
        (r"\*", "*", True),
        (r"\*", "a", False),
        (r"\?", "?", True),
        (r"\?", "a", False),
        (r"\[a]", "[a]", True),
        (r"\{a,b\}", "{a,b}", True),
        (r"\\", "\\", True),
        (r"a\.b", "a.b", True),
        (r"a\.b", "axb", False),
        (r"{a\,b,c}", "a,b", True),
        (r"{a\,b,c}", "c", True),
    ],
)
def test_glob_match(pattern: str, text: str, expected: bool) -> None:
    assert _match(pattern, text) is expected


@pytest.mark.parametrize("pattern", ["[abc", "a[", "[!", "{a,b", "{", "x{a,{b,c}", "{{a}"])
def test_malformed_raises_value_error(pattern: str) -> None:
    with pytest.raises(ValueError):
        compile_glob(pattern)


def test_compile_returns_pattern() -> None:
    rx = compile_glob("a*")
    assert isinstance(rx, re.Pattern)
    assert rx.fullmatch("abc")


def test_caret_in_class_is_literal() -> None:
    assert _match("[^a]", "^")
    assert not _match("[^a]", "b")


# ---- OriginChecker ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("patterns", "origin", "expected"),
    [
        # no Origin header passes, whatever the list
        ((), None, True),
        (("https://app.example",), None, True),
        # an empty list refuses every Origin
        ((), "https://app.example", False),
        ((), "null", False),
        # exact and glob matches
        (("https://app.example",), "https://app.example", True),
        (("https://app.example",), "https://app.example:443", False),
        (("https://app.example",), "http://app.example", False),
        (("https://app.example",), "https://evil.example", False),
        (("https://*.example.com",), "https://a.example.com", True),
        (("https://*.example.com",), "https://example.com", False),
        (("http://localhost:*",), "http://localhost:3000", True),
        (("https://a.example", "https://b.example"), "https://b.example", True),
        # the origin is lower-cased before matching
        (("https://app.example",), "HTTPS://APP.EXAMPLE", True),
        (("https://app.example",), "https://App.Example", True),
        # patterns are not lower-cased (Centrifugo compiles them as given)
        (("https://App.example",), "https://App.example", False),
        # homoglyph: Cyrillic 'а' (U+0430) is not Latin 'a'
        (("https://app.example",), "https://\u0430pp.example", False),
        (("https://*.example",), "https://x.ex\u0430mple", False),
        # 'null' only when listed
        (("https://app.example",), "null", False),
        (("null",), "null", True),
        (("null",), "NULL", True),
        (("null",), "https://app.example", False),
        # '*' allows every origin
        (("*",), "https://anything.example", True),
        (("*",), "null", True),
        (("*",), "https://\u0430pp.example", True),
    ],
)
def test_origin_checker(patterns: tuple[str, ...], origin: str | None, expected: bool) -> None:
    assert OriginChecker(patterns).allowed(origin) is expected


def test_origin_checker_accepts_list_and_keeps_patterns() -> None:
    oc = OriginChecker(["https://a.example", "https://b.example"])
    assert oc.patterns == ["https://a.example", "https://b.example"]
    assert oc.allowed("https://a.example")


def test_origin_checker_malformed_pattern_raises() -> None:
    with pytest.raises(ValueError):
        OriginChecker(["https://[app.example"])


def test_empty_origin_header_passes() -> None:
    assert OriginChecker(["https://app.example"]).allowed("")
