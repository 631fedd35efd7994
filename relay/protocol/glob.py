"""Glob patterns as gobwas/glob compiles them without separators.

``*`` any run of characters (dots and slashes included), ``?`` one character,
``[abc]`` / ``[a-z]`` / ``[!abc]`` a class, ``{a,b}`` alternatives, ``\\`` escapes.
Used for ``client.allowed_origins`` and the ``channels`` API pattern.
"""

from __future__ import annotations

import re

__all__ = ["compile_glob", "OriginChecker"]


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate ``pattern`` to an anchored regex; raise ValueError if malformed."""
    out: list[str] = []
    i, n, depth = 0, len(pattern), 0
    while i < n:
        c = pattern[i]
        i += 1
        if c == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"unclosed class in {pattern!r}")
            body = pattern[i:end]
            body = body.replace("\\", "\\\\")
            if body.startswith("!"):
                body = "^" + body[1:].replace("^", "\\^")
            else:
                body = body.replace("^", "\\^")  # gobwas: only "!" negates
            out.append("[" + body + "]")
            i = end + 1
        elif c == "{":
            depth += 1
            out.append("(?:")
        elif c == "}" and depth:
            depth -= 1
            out.append(")")
        elif c == "," and depth:
            out.append("|")
        else:
            out.append(re.escape(c))
    if depth:
        raise ValueError(f"unclosed alternatives in {pattern!r}")
    return re.compile("".join(out), re.DOTALL)


class OriginChecker:
    """Centrifugo's origin rule (spec server-surface §2.8).

    No ``Origin`` header passes. With an empty list every ``Origin`` is refused.
    Otherwise the lower-cased origin must match one of the patterns.
    """

    def __init__(self, patterns: tuple[str, ...] | list[str]) -> None:
        self.patterns = list(patterns)
        self._compiled = [compile_glob(p) for p in self.patterns]

    def allowed(self, origin: str | None) -> bool:
        if not origin:  # absent or empty header (Go's Header.Get gives "")
            return True
        if not self._compiled:
            return False
        lowered = origin.lower()
        return any(rx.fullmatch(lowered) for rx in self._compiled)
