"""Dumping a :class:`Config` as a dict or env var list (``defaultconfig``, ``defaultenv``)."""

from __future__ import annotations

import json

from relay.config.durations import format_duration
from relay.config.schema import _Kind, _leaves, _namespace_env_prefix, _schema, env_var_name
from relay.config.tree import ChannelOptions, Config


def _dump(obj: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, (kind, _sub) in _schema(type(obj)).items():
        value = getattr(obj, name)
        if kind == "obj":
            out[name] = _dump(value)
        elif kind == "objlist":
            out[name] = [_dump(item) for item in value]
        elif kind == "map":
            out[name] = dict(value)
        elif kind == "dur":
            out[name] = format_duration(value)
        elif kind == "strs":
            out[name] = list(value)
        else:
            out[name] = value
    return out


def config_to_dict(config: Config) -> dict[str, object]:
    """The whole tree as a JSON-able dict; durations as Go duration strings."""
    return _dump(config)


def _env_value(kind: _Kind, value: object) -> str:
    if kind == "bool":
        return "true" if value else "false"
    if kind == "dur":
        assert isinstance(value, float | int)
        return format_duration(value)
    if kind == "strs":
        assert isinstance(value, tuple)
        return " ".join(value)
    if kind == "map":
        assert isinstance(value, tuple)
        return json.dumps(dict(value))
    return str(value)


def _get_path(obj: object, path: str) -> object:
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def known_env_vars(config: Config) -> list[tuple[str, str]]:
    """Every env var relay understands for ``config`` with its current value, sorted."""
    out = [
        (env_var_name(path), _env_value(kind, _get_path(config, path)))
        for path, kind in _leaves(Config, "")
    ]
    names = [ns.name for ns in config.channel.namespaces]
    out.append((env_var_name("channel.namespaces"), " ".join(names)))
    for ns in config.channel.namespaces:
        prefix = _namespace_env_prefix(ns.name)
        for option, kind in _leaves(ChannelOptions, ""):
            out.append((prefix + option.upper(), _env_value(kind, getattr(ns, option))))
    return sorted(out)
