"""Loading the config: file, env vars and flags merged into a :class:`Config`."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from relay.config.convert import _convert_env_value, _convert_file_value, _is_zero, _Typed
from relay.config.schema import (
    _ENV_PREFIX,
    _extra_keys,
    _ignored_env_prefixes,
    _Kind,
    _leaves,
    _namespace_env_prefix,
    _schema,
    env_var_name,
    not_implemented,
    refused,
    refused_var,
)
from relay.config.tree import ChannelOptions, Config
from relay.errors import ConfigError


@dataclass(frozen=True)
class LoadResult:
    """The outcome of :func:`load_config`."""

    config: Config
    warnings: list[tuple[str, dict[str, object]]]
    """(message, fields) pairs to log as WARN after logging is set up."""
    file_found: bool
    refused: list[str] = dataclasses.field(default_factory=list)
    """Not-implemented keys (or env vars) set so that relay must not start
    (``schema.refused``)."""


def _lower_keys(value: object) -> object:
    """Lower-case every mapping key, recursively (keys are case-insensitive)."""
    if isinstance(value, Mapping):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(item) for item in value]
    return value


def _read_file(path: str) -> dict[str, object]:
    """Read and parse a config file; the format follows the extension."""
    ext = os.path.splitext(path)[1].lower()
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        if ext == ".json":
            parsed: object = json.loads(data.decode("utf-8"))
        elif ext in (".yaml", ".yml"):
            import yaml  # type: ignore[import-untyped]

            parsed = yaml.safe_load(data.decode("utf-8"))
        elif ext == ".toml":
            import tomllib  # lazily, like yaml: JSON configs never need a parser module

            parsed = tomllib.loads(data.decode("utf-8"))
        else:
            raise ConfigError(f'unsupported config file extension "{ext}"')
    except ConfigError:
        raise
    except Exception as exc:  # parse errors of three libraries, I/O errors
        raise ConfigError(f"error reading config file {path}: {exc}") from None
    if parsed is None:
        parsed = {}
    if not isinstance(parsed, Mapping):
        raise ConfigError(f"error reading config file {path}: top level must be an object")
    lowered = _lower_keys(parsed)
    assert isinstance(lowered, dict)
    return lowered


def _set_path(raw: dict[str, object], path: str, value: object) -> None:
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _leaf_kind(path: str) -> _Kind | None:
    for leaf, kind in _leaves(Config, ""):
        if leaf == path:
            return kind
    return None


def _flag_root(path: str) -> str:
    return path.split(".", 1)[0]


def _apply_flags(raw: dict[str, object], flags: Mapping[str, object]) -> None:
    """Put explicitly given flags over the file values."""
    for path, value in flags.items():
        kind = _leaf_kind(path)
        if kind is None:
            if _flag_root(path) in _extra_keys(Config):
                _set_path(raw, path, value)  # recognised, not implemented: the builder warns
                continue
            raise ConfigError(f"unknown flag --{path}")
        _set_path(raw, path, _Typed(_convert_file_value(kind, value, path)))


def _apply_env(
    raw: dict[str, object], environ: Mapping[str, str], flagged: frozenset[str]
) -> set[str]:
    """Overlay env vars on ``raw``; return the set of known env var names."""
    known: set[str] = set()
    for path, kind in _leaves(Config, ""):
        var = env_var_name(path)
        known.add(var)
        value = environ.get(var, "")
        if value and path not in flagged:
            _set_path(raw, path, _Typed(_convert_env_value(kind, var, value, path)))
    known |= _apply_namespace_env(raw, environ)
    for path in _OBJECT_LIST_VARS:
        var = env_var_name(path)
        known.add(var)
        value = environ.get(var, "")
        if value and path not in flagged:
            _set_path(raw, path, _objects_from_env(var, value))
    return known


#: object lists set by one env var holding a JSON array (``channel.namespaces`` has its
#: own rules below: names alone, and per-namespace option vars)
_OBJECT_LIST_VARS = (
    "proxies",
    "consumers",
    "rpc.namespaces",
    "client.connect_code_to_unidirectional_disconnect.transforms",
    "uni_sse.connect_code_to_http_response.transforms",
    "uni_http_stream.connect_code_to_http_response.transforms",
)


def _objects_from_env(var: str, value: str) -> list[object]:
    try:
        items = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"envconfig.Process: assigning {var}: {exc}") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError(f"envconfig.Process: assigning {var}: expected a JSON array of objects")
    lowered = _lower_keys(items)
    assert isinstance(lowered, list)
    return lowered


def _namespaces_from_env(var: str, value: str) -> list[object]:
    text = value.strip()
    if not (text.startswith("[") and text.endswith("]")):
        return [{"name": name} for name in value.split()]
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"envconfig.Process: assigning {var}: {exc}") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError(f"envconfig.Process: assigning {var}: expected a JSON array of objects")
    lowered = _lower_keys(items)
    assert isinstance(lowered, list)
    return lowered


def _apply_namespace_env(raw: dict[str, object], environ: Mapping[str, str]) -> set[str]:
    """``CENTRIFUGO_CHANNEL_NAMESPACES`` and the per-namespace option vars."""
    var = env_var_name("channel.namespaces")
    known = {var}
    value = environ.get(var, "")
    if value:
        _set_path(raw, "channel.namespaces", _namespaces_from_env(var, value))
    channel = raw.get("channel")
    items = channel.get("namespaces") if isinstance(channel, dict) else None
    if not isinstance(items, list):
        return known
    for item in items:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(item, dict) or not isinstance(name, str):
            continue
        prefix = _namespace_env_prefix(name)
        for option, kind in _leaves(ChannelOptions, ""):
            opt_var = prefix + option.upper()
            known.add(opt_var)
            opt_value = environ.get(opt_var, "")
            if opt_value:
                path = f"channel.namespaces.{name}.{option}"
                item[option] = _Typed(_convert_env_value(kind, opt_var, opt_value, path))
    return known


_K8S_VAR = re.compile(r"^CENTRIFUGO(?:_[A-Z0-9_]+)?_(PORT|SERVICE_)")


def _unknown_env_warnings(
    environ: Mapping[str, str], known: set[str]
) -> list[tuple[str, dict[str, object]]]:
    ignored = tuple(_ignored_env_prefixes(Config, ""))
    out: list[tuple[str, dict[str, object]]] = []
    for var in sorted(environ):
        if not var.startswith(_ENV_PREFIX) or var in known:
            continue
        if _K8S_VAR.match(var) or var.startswith(_ENV_PREFIX + "VAR_"):
            continue
        if var.startswith(ignored) or _is_ignored_namespace_var(var, known):
            if environ[var].strip().lower() not in ("", "0", "false", "[]", "{}"):
                out.append((NOT_IMPLEMENTED_WARNING, {"var": var}))
            continue
        out.append(("unknown var in environment", {"var": var}))
    return out


def _is_ignored_namespace_var(var: str, known: set[str]) -> bool:
    """Per-namespace vars of accepted-but-unmodelled options (e.g. ``..._SUBSCRIBE_PROXY_NAME``)."""
    suffixes = tuple("_" + key.upper() for key in _extra_keys(ChannelOptions))
    if not var.startswith(_ENV_PREFIX + "CHANNEL_NAMESPACES_") or not var.endswith(suffixes):
        return False
    for suffix in suffixes:
        if var.endswith(suffix):
            option_probe = var[: -len(suffix)] + "_PRESENCE"
            if option_probe in known:
                return True
    return False


#: The warning for a recognised key that relay does not implement (``schema.py`` lists them).
NOT_IMPLEMENTED_WARNING = "config key is not implemented by relay and has no effect"


def _is_set(value: object) -> bool:
    """Whether an untyped value asks for anything: a true leaf somewhere inside it."""
    if isinstance(value, Mapping):
        return any(_is_set(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_is_set(v) for v in value)
    return bool(value)


class _Builder:
    """Turns the merged raw tree into dataclasses, noting unknown keys."""

    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, object]]] = []
        self.refused: list[str] = []

    def build(self, cls: type, raw: object, path: str, default: object) -> object:
        if raw is None:
            return default
        if not isinstance(raw, Mapping):
            raise ConfigError(f'error decoding config key "{path}": expected an object')
        schema = _schema(cls)
        extra = _extra_keys(cls)
        missing = not_implemented(cls)
        for key in raw:
            full = f"{path}.{key}" if path else key
            if key not in schema and key not in extra:
                self.warnings.append(("unknown key in configuration file", {"key": full}))
            elif key in extra and _is_set(raw[key]):
                self.warnings.append((NOT_IMPLEMENTED_WARNING, {"key": full}))
                if refused(full, raw[key]):
                    self.refused.append(full)
        changes: dict[str, object] = {}
        for name, (kind, sub) in schema.items():
            if name in raw:
                sub_path = f"{path}.{name}" if path else name
                value = self.field(kind, sub, raw[name], sub_path, getattr(default, name))
                if name in missing and value != getattr(default, name):
                    self.warnings.append((NOT_IMPLEMENTED_WARNING, {"key": sub_path}))
                    if refused(sub_path, value):
                        self.refused.append(sub_path)
                changes[name] = value
        return dataclasses.replace(typing.cast(typing.Any, default), **changes)

    def field(
        self, kind: _Kind, sub: type | None, value: object, path: str, dflt: object
    ) -> object:
        if isinstance(value, _Typed):
            return value.value
        if kind == "obj":
            assert sub is not None
            return self.build(sub, value, path, dflt)
        if kind == "objlist":
            assert sub is not None
            return self.objects(sub, value, path)
        if value is None:
            return dflt
        converted = _convert_file_value(kind, value, path)
        # Defaults quirk (spec §2.1): an explicit zero is replaced by a non-zero default.
        if _is_zero(converted) and not _is_zero(dflt):
            return dflt
        return converted

    def objects(self, cls: type, value: object, path: str) -> tuple[object, ...]:
        """A list of ``cls`` objects (namespaces, named proxies, RPC namespaces...)."""
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise ConfigError(f'error decoding config key "{path}": expected a list')
        return tuple(self.build(cls, item, f"{path}.[{i}]", cls()) for i, item in enumerate(value))


def load_config(
    path: str | None,
    environ: Mapping[str, str],
    flags: Mapping[str, object] | None = None,
) -> LoadResult:
    """Load the configuration: explicit flag > non-empty env var > file > default.

    ``path`` may be ``None`` or point at a missing file (``file_found`` is then False).
    ``flags`` holds only the flags given explicitly, keyed by dotted config path.
    Raises :class:`ConfigError` on unreadable files or unparsable values; does not
    validate (see :func:`validate`).
    """
    raw: dict[str, object] = {}
    file_found = bool(path) and os.path.isfile(path or "")
    if file_found:
        assert path is not None
        raw = _read_file(path)
    flags = flags or {}
    _apply_flags(raw, flags)
    known = _apply_env(raw, environ, frozenset(flags))
    builder = _Builder()
    config = builder.build(Config, raw, "", Config())
    assert isinstance(config, Config)
    env_warnings = _unknown_env_warnings(environ, known)
    refused_vars = [
        str(f["var"])
        for m, f in env_warnings
        if m == NOT_IMPLEMENTED_WARNING and refused_var(str(f["var"]), environ[str(f["var"])])
    ]
    return LoadResult(
        config, builder.warnings + env_warnings, file_found, builder.refused + refused_vars
    )
