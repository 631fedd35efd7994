"""Introspection of the config dataclasses: field kinds, leaf paths, env var names."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterator

from relay.config.tree import (
    AdminConfig,
    ChannelConfig,
    ChannelOptions,
    ClientConfig,
    Config,
    EndpointConfig,
    HTTPServerConfig,
    Namespace,
    PersonalChannelConfig,
    RedisConfig,
    TokenConfig,
    WebsocketConfig,
)

# Leaf kinds: "bool", "int", "dur" (float seconds), "str" (also a ``Literal`` of strings,
# whose values ``validate`` checks), "strs" (tuple of str);
# containers: "obj" (nested dataclass) and "nslist" (tuple of Namespace).
_Kind = str
_ENV_PREFIX = "CENTRIFUGO_"

# Centrifugo keys relay recognises but does not implement: the one list of them. Keys
# without a field here are accepted untyped; keys with a field keep their typed default
# (so ``defaultconfig`` shows them). Either way, setting one to anything but its default
# makes the loader warn "not implemented" (``load._Builder``), never a silent no-op.
_UNTYPED_NOT_IMPLEMENTED: dict[type, frozenset[str]] = {
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


# Fields of the typed tree that relay reads nowhere yet (same rule as above).
_TYPED_NOT_IMPLEMENTED: dict[type, frozenset[str]] = {
    ChannelOptions: frozenset(
        {
            "allowed_delta_types",
            "delta_publish",
            "allow_tags_filter",
            "subscribe_proxy_enabled",
            "publish_proxy_enabled",
            "sub_refresh_proxy_enabled",
            "subscribe_stream_proxy_enabled",
        }
    ),
    ClientConfig: frozenset(
        {
            "concurrency",
            "channel_position_check_delay",
            "channel_position_max_time_lag",
            "user_id_http_header",
        }
    ),
    PersonalChannelConfig: frozenset({"single_connection"}),
    TokenConfig: frozenset({"insecure_skip_jwks_endpoint_safety_check"}),
    WebsocketConfig: frozenset(
        {
            "compression",
            "compression_level",
            "compression_min_size",
            "read_buffer_size",
            "write_buffer_size",
            "use_write_buffer_pool",
        }
    ),
    RedisConfig: frozenset(
        {
            "force_resp2",
            "cluster_address",
            "sentinel_address",
            "sentinel_master_name",
            "history_use_lists",
            "presence_hash_field_ttl",
            "presence_user_mapping",
        }
    ),
    HTTPServerConfig: frozenset({"internal_address", "internal_port"}),
    AdminConfig: frozenset({"web_proxy_address"}),
    Config: frozenset({"swagger", "pid_file", "debug"}),
}


#: Not-implemented keys that relay refuses to start with when they are set: ignoring them
#: would weaken what the operator asked for (plain HTTP where TLS was configured).
REFUSED_WHEN_SET = frozenset(
    {
        "http_server.tls",
        "http_server.tls_autocert",
        "http_server.internal_tls",
        "http_server.tls_external",
        "http_server.http3",
    }
)


def refused(key: str = "", var: str = "") -> bool:
    """Whether a set not-implemented config ``key`` (or env ``var``) stops the start."""
    if key:
        return any(key == p or key.startswith(p + ".") for p in REFUSED_WHEN_SET)
    return any(var.startswith(env_var_name(p) + "_") for p in REFUSED_WHEN_SET)


def _collect(table: dict[type, frozenset[str]], cls: type) -> frozenset[str]:
    out: frozenset[str] = frozenset()
    for base in cls.__mro__:
        out |= table.get(base, frozenset())
    return out


def _extra_keys(cls: type) -> frozenset[str]:
    """Keys of ``cls`` accepted without a typed field (all of them not implemented)."""
    return _collect(_UNTYPED_NOT_IMPLEMENTED, cls)


def not_implemented(cls: type) -> frozenset[str]:
    """Every key of ``cls`` that relay recognises but does not implement."""
    return _extra_keys(cls) | _collect(_TYPED_NOT_IMPLEMENTED, cls)


def _kind_of(hint: object) -> tuple[_Kind, type | None]:
    if hint is bool:
        return "bool", None
    if hint is int:
        return "int", None
    if hint is float:
        return "dur", None
    if hint is str:
        return "str", None
    args = typing.get_args(hint)
    if typing.get_origin(hint) is typing.Literal and args and all(type(a) is str for a in args):
        return "str", None  # an enumerated string option: loaded as str, checked by validate
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return "obj", hint
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


def not_implemented_paths(cls: type = Config, path: str = "") -> Iterator[str]:
    """Dotted path of every recognised-but-not-implemented key, in schema order."""
    for key in sorted(not_implemented(cls)):
        yield f"{path}.{key}" if path else key
    for name, (kind, sub) in _schema(cls).items():
        sub_path = f"{path}.{name}" if path else name
        if kind == "obj":
            assert sub is not None
            yield from not_implemented_paths(sub, sub_path)
        elif kind == "nslist":
            assert sub is not None
            yield from not_implemented_paths(sub, sub_path + "[]")


def env_var_name(path: str) -> str:
    """``client.token.hmac_secret_key`` -> ``CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY``."""
    return _ENV_PREFIX + path.replace(".", "_").upper()


def _namespace_env_prefix(name: str) -> str:
    token = name.upper().replace(".", "_").replace("-", "_")
    return f"{_ENV_PREFIX}CHANNEL_NAMESPACES_{token}_"


def _ignored_env_prefixes(cls: type, path: str) -> Iterator[str]:
    """Env prefixes of the untyped not-implemented keys below ``cls``."""
    for key in sorted(_extra_keys(cls)):
        yield env_var_name(f"{path}.{key}" if path else key)
    for name, (kind, sub) in _schema(cls).items():
        if kind == "obj":
            assert sub is not None
            yield from _ignored_env_prefixes(sub, f"{path}.{name}" if path else name)
