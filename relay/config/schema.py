"""Introspection of the config dataclasses: field kinds, leaf paths, env var names."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator

from relay.config.tree import (
    ChannelConfig,
    ChannelOptions,
    ClientConfig,
    Config,
    EndpointConfig,
    HTTPServerConfig,
    Namespace,
    RedisConfig,
    WebsocketConfig,
)

# Leaf kinds: "bool", "int", "dur" (float seconds), "str", "strs" (tuple of str);
# containers: "obj" (nested dataclass) and "nslist" (tuple of Namespace).
_Kind = str
_ENV_PREFIX = "CENTRIFUGO_"

# Centrifugo keys relay accepts silently but does not model (no warning, no effect).
_EXTRA_KEYS: dict[type, frozenset[str]] = {
    ChannelOptions: frozenset(
        {
            "auto_cache_recover",
            "subscribe_proxy_name",
            "publish_proxy_name",
            "sub_refresh_proxy_name",
            "subscribe_stream_proxy_name",
            "subscribe_stream_bidirectional",
            "subscription_type",
            "map",
            "shared_poll",
        }
    ),
    ChannelConfig: frozenset({"proxy"}),
    ClientConfig: frozenset({"proxy", "connect_code_to_unidirectional_disconnect"}),
    HTTPServerConfig: frozenset(
        {"tls", "internal_tls", "tls_autocert", "tls_external", "http3", "h2c_external"}
    ),
    EndpointConfig: frozenset(
        {"instrument_http_handlers", "recovered_publications_histogram", "native_histograms"}
    ),
    WebsocketConfig: frozenset({"decompressed_message_size_limit"}),
    RedisConfig: frozenset(
        {
            "tls",
            "replica_client",
            "sentinel_user",
            "sentinel_password",
            "sentinel_client_name",
            "sentinel_tls",
        }
    ),
    Config: frozenset(
        {
            "broker",
            "presence_manager",
            "map_broker",
            "controller",
            "shared_poll",
            "rpc",
            "proxies",
            "grpc_api",
            "consumers",
            "sse",
            "http_stream",
            "webtransport",
            "uni_sse",
            "uni_http_stream",
            "uni_websocket",
            "uni_grpc",
            "emulation",
            "init",
            "opentelemetry",
            "graphite",
            "usage_stats",
            "enable_unreleased_features",
        }
    ),
}


def _extra_keys(cls: type) -> frozenset[str]:
    out: frozenset[str] = frozenset()
    for base in cls.__mro__:
        out |= _EXTRA_KEYS.get(base, frozenset())
    return out


def _kind_of(hint: object) -> tuple[_Kind, type | None]:
    if hint is bool:
        return "bool", None
    if hint is int:
        return "int", None
    if hint is float:
        return "dur", None
    if hint is str:
        return "str", None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return "obj", hint
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and args and args[0] is str:
        return "strs", None
    if typing.get_origin(hint) is tuple and args and args[0] is Namespace:
        return "nslist", Namespace
    raise TypeError(f"unsupported config field type {hint!r}")


_SCHEMA_CACHE: dict[type, dict[str, tuple[_Kind, type | None]]] = {}


def _schema(cls: type) -> dict[str, tuple[_Kind, type | None]]:
    """Field name -> (kind, nested class) for a config dataclass."""
    cached = _SCHEMA_CACHE.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = {f.name: _kind_of(hints[f.name]) for f in dataclasses.fields(cls)}
        _SCHEMA_CACHE[cls] = cached
    return cached


def _leaves(cls: type, path: str) -> Iterator[tuple[str, _Kind]]:
    """Every leaf option below ``cls`` as (dotted path, kind); object lists excluded."""
    for name, (kind, sub) in _schema(cls).items():
        sub_path = f"{path}.{name}" if path else name
        if kind == "obj":
            assert sub is not None
            yield from _leaves(sub, sub_path)
        elif kind != "nslist":
            yield sub_path, kind


def env_var_name(path: str) -> str:
    """``client.token.hmac_secret_key`` -> ``CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY``."""
    return _ENV_PREFIX + path.replace(".", "_").upper()


def _namespace_env_prefix(name: str) -> str:
    token = name.upper().replace(".", "_").replace("-", "_")
    return f"{_ENV_PREFIX}CHANNEL_NAMESPACES_{token}_"


def _ignored_env_prefixes(cls: type, path: str) -> Iterator[str]:
    """Env prefixes of the silently accepted extra keys below ``cls``."""
    for key in sorted(_extra_keys(cls)):
        yield env_var_name(f"{path}.{key}" if path else key)
    for name, (kind, sub) in _schema(cls).items():
        if kind == "obj":
            assert sub is not None
            yield from _ignored_env_prefixes(sub, f"{path}.{name}" if path else name)
