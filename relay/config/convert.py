"""Conversion of raw file, env and flag values into typed leaf values (Go semantics)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from relay.config.durations import parse_duration
from relay.config.schema import _Kind
from relay.errors import ConfigError

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_GO_OCTAL = re.compile(r"[+-]?0[0-7_]+")


def _parse_bool(text: str) -> bool:
    """Go ``strconv.ParseBool``."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def _parse_int(text: str) -> int:
    """Go ``strconv.ParseInt(text, 0, 64)``: decimal, ``0x``, ``0o``, ``0b``, leading-0 octal."""
    try:
        if text != text.strip() or not text:
            raise ValueError
        if _GO_OCTAL.fullmatch(text):
            return int(text.replace("0", "0o", 1) if text[0] == "0" else text, 8)
        return int(text, 0)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


@dataclass(frozen=True)
class _Typed:
    """A value already converted (env var or flag); bypasses file decoding and defaults."""

    value: object


def _convert_file_value(kind: _Kind, value: object, path: str) -> object:
    """Weakly decode one file value (viper/mapstructure style) into the leaf's type."""
    try:
        return _convert_weak(kind, value)
    except (ValueError, TypeError, ConfigError) as exc:
        raise ConfigError(f'error decoding config key "{path}": {exc}') from None


def _convert_weak(kind: _Kind, value: object) -> object:
    if kind == "dur":
        return parse_duration(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value != 0
        if isinstance(value, str):
            return _parse_bool(value) if value else False
    elif kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return _parse_int(value) if value else 0
    elif kind == "str":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int | float):
            return str(value)
    elif kind == "map":
        if isinstance(value, str):  # an env var or flag: a JSON object
            value = json.loads(value) if value else {}
        if isinstance(value, dict):
            return tuple(sorted((str(k), str(_convert_weak("str", v))) for k, v in value.items()))
    elif kind == "strs":
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple):
            return tuple(str(_convert_weak("str", item)) for item in value)
    raise TypeError(f"cannot decode {type(value).__name__} {value!r} as {kind}")


def _convert_env_value(kind: _Kind, var: str, value: str, path: str) -> object:
    """Parse one env var value with envconfig semantics."""
    try:
        if kind == "bool":
            return _parse_bool(value)
        if kind == "int":
            return _parse_int(value)
        if kind == "dur":
            return parse_duration(value)
        if kind == "strs":
            return tuple(value.split())
        if kind == "map":
            return _convert_weak(kind, value)
        return value
    except (ValueError, TypeError, ConfigError) as exc:
        raise ConfigError(
            f"envconfig.Process: assigning {var} to {path}: converting '{value}' to type "
            f"{kind}. details: {exc}"
        ) from None


def _is_zero(value: object) -> bool:
    return value in (0, "", (), False)
