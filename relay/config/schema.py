"""Introspection of the config dataclasses: field kinds, leaf paths, env var names."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator

from relay.config.consumer_tree import ConsumerConfig
from relay.config.engine_tree import BrokerConfig, RedisConfig
from relay.config.proxy_tree import ChannelProxyConfig, ProxyConfig
from relay.config.transport_tree import UniWebsocketConfig, WebsocketConfig
from relay.config.tree import (
    AdminConfig,
    ChannelOptions,
    ClientConfig,
    Config,
    EndpointConfig,
    HTTPServerConfig,
    PersonalChannelConfig,
)

# Leaf kinds: "bool", "int", "dur" (float seconds), "str" (also a ``Literal`` of strings,
# whose values ``validate`` checks), "strs" (tuple of str), "map" (string -> string, kept
# as sorted pairs: a JSON object in files and env vars);
# containers: "obj" (nested dataclass) and "objlist" (tuple of a dataclass: namespaces,
# named proxies, RPC namespaces, status transforms).
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
            "subscription_type",
            "map",
            "shared_poll",
        }
    ),
    ChannelProxyConfig: frozenset({"map_publish", "map_remove", "shared_poll_refresh"}),
    HTTPServerConfig: frozenset({"tls_autocert", "http3", "h2c_external"}),
    EndpointConfig: frozenset(
        {"instrument_http_handlers", "recovered_publications_histogram", "native_histograms"}
    ),
    UniWebsocketConfig: frozenset({"decompressed_message_size_limit"}),
    RedisConfig: frozenset({"replica_client"}),
    # Centrifugo's PostgreSQL stream broker (``broker.type: postgres``, refused by validate)
    BrokerConfig: frozenset({"postgres", "redisnats"}),
    # consumer types relay does not run (an enabled one of these types: refused by validate)
    ConsumerConfig: frozenset({"kafka", "google_pub_sub", "aws_sqs", "azure_service_bus"}),
    Config: frozenset(
        {
            "map_broker",
            "controller",
            "shared_poll",
            "webtransport",
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
            "allow_tags_filter",
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
    WebsocketConfig: frozenset(
        {
            "read_buffer_size",
            "write_buffer_size",
            "use_write_buffer_pool",
        }
    ),
    UniWebsocketConfig: frozenset(
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
            "history_use_lists",
            "presence_hash_field_ttl",
            "presence_user_mapping",
        }
    ),
    AdminConfig: frozenset({"web_proxy_address"}),
    ProxyConfig: frozenset({"emulated_headers"}),
    Config: frozenset({"debug"}),
}


#: Not-implemented keys that relay only warns about: tuning and diagnostics whose absence
#: changes nothing a client or a backend sees. Every other not-implemented key, once
#: switched on, stops the start ("refused"): serving without it would not be what the
#: operator configured (plain HTTP for ACME, open subscriptions for a subscribe proxy...).
WARN_ONLY = frozenset(
    {
        "debug",
        "opentelemetry",
        "graphite",
        "usage_stats",
        "enable_unreleased_features",
        "map_broker",  # used by ``subscription_type: map`` namespaces only (refused)
        "broker.postgres",  # read only by ``broker.type: postgres``, which validate refuses
        "broker.redisnats",
        # read only by consumers of these types, which validate refuses when enabled
        *(
            f"consumers[].{kind}"
            for kind in (
                "kafka",
                "nats_jetstream",
                "google_pub_sub",
                "aws_sqs",
                "azure_service_bus",
            )
        ),
        "http_server.h2c_external",
        "admin.web_proxy_address",
        "client.concurrency",
        "client.channel_position_check_delay",
        "client.channel_position_max_time_lag",
        "websocket.read_buffer_size",
        "websocket.write_buffer_size",
        "websocket.use_write_buffer_pool",
        *(
            f"uni_websocket.{key}"
            for key in (
                "compression",
                "compression_level",
                "compression_min_size",
                "decompressed_message_size_limit",
                "read_buffer_size",
                "write_buffer_size",
                "use_write_buffer_pool",
            )
        ),
        *(
            f"{section}.redis.{key}"
            for section in ("engine", "broker", "presence_manager")
            for key in ("force_resp2", "presence_hash_field_ttl")
        ),
        *(
            f"{endpoint}.{key}"
            for endpoint in ("prometheus", "health", "swagger", "debug")
            for key in ("instrument_http_handlers", "native_histograms")
        ),
        "prometheus.recovered_publications_histogram",
        "health.recovered_publications_histogram",
        "swagger.recovered_publications_histogram",
        "debug.recovered_publications_histogram",
    }
)

#: Not-implemented blocks switched on by an ``enabled`` key inside them: only
#: ``enabled: true`` refuses (a block's other keys alone start fine).
SWITCHED_BY_ENABLED = frozenset(
    {
        "webtransport",
        "init",
        "controller",
        "shared_poll",
        "http_server.tls_autocert",
        "http_server.http3",
    }
)

_NAMESPACE_INDEX = re.compile(r"^(channel\.namespaces|consumers)\.\[\d+\]\.")
_TRUE = ("1", "t", "true")


def _switched_on(value: object) -> bool:
    """Whether ``value`` (a raw subtree, a list of them, or a dataclass) has ``enabled``
    true somewhere."""
    if isinstance(value, dict):
        enabled = value.get("enabled")
        if enabled is True or (isinstance(enabled, str) and enabled.lower() in _TRUE):
            return True
        return any(_switched_on(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_switched_on(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _switched_on(dataclasses.asdict(value))
    return False


def refused(path: str, value: object = True) -> bool:
    """Whether the set not-implemented key ``path`` (set to ``value``) stops the start."""
    path = _NAMESPACE_INDEX.sub(r"\1[].", path)
    if path in WARN_ONLY:
        return False
    if path in SWITCHED_BY_ENABLED:
        return _switched_on(value)
    return True


def refused_var(var: str, value: str) -> bool:
    """The same for an env var of an untyped not-implemented block (``CENTRIFUGO_SSE_...``)."""
    best = ""
    for path in _untyped_paths(Config, ""):
        prefix = env_var_name(path)
        if (var == prefix or var.startswith(prefix + "_")) and len(path) > len(best):
            best = path
    if not best:  # a namespace's option (``..._SUBSCRIBE_PROXY_NAME``): refused as above
        return var.startswith(_ENV_PREFIX + "CHANNEL_NAMESPACES_")
    if best in WARN_ONLY:
        return False
    if best in SWITCHED_BY_ENABLED:
        return var.endswith("_ENABLED") and value.strip().lower() in _TRUE
    return True


def _untyped_paths(cls: type, path: str) -> Iterator[str]:
    for key in sorted(_extra_keys(cls)):
        yield f"{path}.{key}" if path else key
    for name, (kind, sub) in _schema(cls).items():
        if kind == "obj":
            assert sub is not None
            yield from _untyped_paths(sub, f"{path}.{name}" if path else name)


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
    if typing.get_origin(hint) is tuple and args and typing.get_origin(args[0]) is tuple:
        return "map", None  # tuple[tuple[str, str], ...]
    if typing.get_origin(hint) is tuple and args and isinstance(args[0], type):
        if dataclasses.is_dataclass(args[0]):
            return "objlist", args[0]
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
        elif kind != "objlist":
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
        elif kind == "objlist":
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
    return (env_var_name(p) for p in _untyped_paths(cls, path))
