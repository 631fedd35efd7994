"""Turning a decoded claims object into typed values, rejecting any claim of the wrong type.

The resulting value types (``ConnectTokenClaims``, ``SubscribeTokenClaims``, ``SubOptions``)
live in :mod:`relay.protocol.claims`; JSON ``null`` always counts as an absent claim.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from relay.auth.errors import TokenInvalid
from relay.protocol.channels import Override
from relay.protocol.claims import SubOptions

SubscriptionOverride = Override  # the one override type (relay/protocol/channels.py)

_OVERRIDE_KEYS = (
    "presence",
    "join_leave",
    "force_push_join_leave",
    "force_recovery",
    "force_positioning",
)


def _text(value: str, name: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise TokenInvalid(f"claim {name} is not valid UTF-8") from exc
    return value


def _opt_str(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TokenInvalid(f"claim {name} is not a string")
    return _text(value, name)


def _numeric_date(obj: dict[str, Any], name: str) -> float | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenInvalid(f"claim {name} is not a number")
    try:
        result = float(value)
    except OverflowError as exc:
        raise TokenInvalid(f"claim {name} out of range") from exc
    if not math.isfinite(result):
        raise TokenInvalid(f"claim {name} out of range")
    if not -(2**63) <= math.trunc(result) < 2**63:
        # Go (cristalhq/jwt) converts the seconds to int64; out of range that gives the
        # smallest int64 on amd64: a date long past (an ``exp`` of 1e30 has expired).
        return float(-(2**63))
    return result


def _opt_int(obj: dict[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TokenInvalid(f"claim {name} is not an integer")
    if not -(2**63) <= value < 2**63:
        raise TokenInvalid(f"claim {name} out of range")
    return value


def _raw_json(obj: dict[str, Any], name: str) -> bytes | None:
    value = obj.get(name)
    if value is None:
        return None
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError) as exc:
        raise TokenInvalid(f"claim {name} cannot be re-encoded") from exc


def _b64_or_json(obj: dict[str, Any], b64_name: str, json_name: str) -> bytes | None:
    encoded = _opt_str(obj, b64_name)
    if encoded:
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise TokenInvalid(f"claim {b64_name} is not base64") from exc
    return _raw_json(obj, json_name)


def _str_list(obj: dict[str, Any], name: str) -> tuple[str, ...]:
    value = obj.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenInvalid(f"claim {name} is not a list of strings")
    return tuple(_text(v, name) for v in value)


def _audience(obj: dict[str, Any]) -> tuple[str, ...]:
    value = obj.get("aud")
    if isinstance(value, str):
        return (_text(value, "aud"),)
    return _str_list(obj, "aud")


def _object(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TokenInvalid(f"claim {name} is not an object")
    return value


def _bool_value(obj: dict[str, Any], name: str) -> bool | None:
    value = obj.get(name)
    if value is None:
        return None
    inner = _object(value, f"override.{name}").get("value")
    if inner is None:
        return False
    if not isinstance(inner, bool):
        raise TokenInvalid(f"claim override.{name}.value is not a boolean")
    return inner


def _override(obj: dict[str, Any]) -> SubscriptionOverride | None:
    value = obj.get("override")
    if value is None:
        return None
    raw = _object(value, "override")
    return SubscriptionOverride(**{key: _bool_value(raw, key) for key in _OVERRIDE_KEYS})


def _subs(obj: dict[str, Any]) -> dict[str, SubOptions]:
    value = obj.get("subs")
    if value is None:
        return {}
    result: dict[str, SubOptions] = {}
    for channel, options in _object(value, "subs").items():
        entry = {} if options is None else _object(options, "subs entry")
        result[_text(channel, "subs")] = SubOptions(
            info=_b64_or_json(entry, "b64info", "info"),
            data=_b64_or_json(entry, "b64data", "data"),
            override=_override(entry),
        )
    return result


def _user(obj: dict[str, Any], user_id_claim: str) -> str:
    if not user_id_claim:
        return _opt_str(obj, "sub")
    value = obj.get(user_id_claim)
    if value is None:
        return ""
    if isinstance(value, str):
        return _text(value, user_id_claim)
    if isinstance(value, bool):
        raise TokenInvalid(f"claim {user_id_claim} is not a user id")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    raise TokenInvalid(f"claim {user_id_claim} is not a user id")


def _truncate(value: float | None) -> int | None:
    return None if value is None else int(value)
