"""Go-compatible durations: ``time.ParseDuration`` and ``Duration.String``."""

from __future__ import annotations

import re

from relay.errors import ConfigError

_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")
_NS_PER_SECOND = 1_000_000_000


def _parse_duration_ns(text: str) -> int:
    """Parse a Go duration string into integer nanoseconds."""
    rest = text
    negative = False
    if rest[:1] in ("-", "+"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise ConfigError(f'time: invalid duration "{text}"')
    total = 0
    while rest:
        match = _DURATION_PART.match(rest)
        assert match is not None  # the pattern can match the empty string
        whole, frac, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not frac:
            raise ConfigError(f'time: invalid duration "{text}"')
        if not unit:
            raise ConfigError(f'time: missing unit in duration "{text}"')
        scale = _NS_PER_UNIT.get(unit)
        if scale is None:
            raise ConfigError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += int(whole or "0") * scale
        if frac:
            total += int(frac) * scale // 10 ** len(frac)
        rest = rest[match.end() :]
    return -total if negative else total


def parse_duration(value: object) -> float:
    """Parse a duration into float seconds with Go ``time.ParseDuration`` semantics.

    Strings use Go units (``ns us µs ms s m h``, decimals, compounds such as ``"1h30m"``,
    a bare ``"0"``, a sign). A bare number (int or float, as found in JSON) is taken as
    **nanoseconds**, like Go does when decoding into ``time.Duration``.
    """
    if isinstance(value, bool):
        raise ConfigError(f"time: invalid duration {value!r}")
    if isinstance(value, int | float):
        return float(value) / _NS_PER_SECOND
    if not isinstance(value, str):
        raise ConfigError(f"time: invalid duration {value!r}")
    return _parse_duration_ns(value) / _NS_PER_SECOND


def _decimal(value: int, unit: int) -> str:
    """``value/unit`` as a decimal string without trailing zeros."""
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def format_duration(seconds: float) -> str:
    """Float seconds as Go's ``Duration.String()`` (``"25s"``, ``"720h0m0s"``, ``"1.5ms"``)."""
    ns = round(seconds * _NS_PER_SECOND)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_decimal(u, 1_000)}µs"
    if u < _NS_PER_SECOND:
        return f"{sign}{_decimal(u, 1_000_000)}ms"
    hours, rem = divmod(u, 3600 * _NS_PER_SECOND)
    minutes, rem = divmod(rem, 60 * _NS_PER_SECOND)
    secs = _decimal(rem, _NS_PER_SECOND)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"
