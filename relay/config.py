"""The configuration tree: field names are exactly Centrifugo v6's keys.

Durations are float seconds (parsed from Go duration strings such as ``"25s"``).
The tree is frozen after loading and passed explicitly; nothing holds it in a global.

Source: centrifugo ``internal/configtypes/types.go``, ``internal/configtypes/namespace.go``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from relay.errors import ConfigError

__all__ = [
    "LoadResult",
    "parse_duration",
    "format_duration",
    "load_config",
    "validate",
    "config_to_dict",
    "known_env_vars",
    "env_var_name",
    "ChannelOptions",
    "Namespace",
    "ChannelConfig",
    "TokenConfig",
    "SubscriptionTokenConfig",
    "PersonalChannelConfig",
    "ClientConfig",
    "HTTPServerConfig",
    "LogConfig",
    "HTTPAPIConfig",
    "AdminConfig",
    "RedisConfig",
    "EngineConfig",
    "WebsocketConfig",
    "EndpointConfig",
    "NodeConfig",
    "ShutdownConfig",
    "Config",
]


@dataclass(frozen=True)
class ChannelOptions:
    """Options of ``channel.without_namespace`` and of each namespace."""

    presence: bool = False
    join_leave: bool = False
    force_push_join_leave: bool = False
    history_size: int = 0
    history_ttl: float = 0.0
    history_meta_ttl: float = 0.0
    force_positioning: bool = False
    allow_positioning: bool = False
    force_recovery: bool = False
    allow_recovery: bool = False
    force_recovery_mode: str = ""
    allowed_delta_types: tuple[str, ...] = ()
    delta_publish: bool = False
    allow_tags_filter: bool = False
    allow_subscribe_for_client: bool = False
    allow_subscribe_for_anonymous: bool = False
    allow_publish_for_client: bool = False
    allow_publish_for_subscriber: bool = False
    allow_publish_for_anonymous: bool = False
    allow_presence_for_client: bool = False
    allow_presence_for_subscriber: bool = False
    allow_presence_for_anonymous: bool = False
    allow_history_for_client: bool = False
    allow_history_for_subscriber: bool = False
    allow_history_for_anonymous: bool = False
    allow_user_limited_channels: bool = False
    channel_regex: str = ""
    publication_data_format: str = ""
    subscribe_proxy_enabled: bool = False
    publish_proxy_enabled: bool = False
    sub_refresh_proxy_enabled: bool = False
    subscribe_stream_proxy_enabled: bool = False

    @property
    def history_enabled(self) -> bool:
        return self.history_size > 0 and self.history_ttl > 0


@dataclass(frozen=True)
class Namespace(ChannelOptions):
    """A named namespace: ``{"name": ..., <ChannelOptions>}``."""

    name: str = ""


@dataclass(frozen=True)
class ChannelConfig:
    without_namespace: ChannelOptions = field(default_factory=ChannelOptions)
    namespaces: tuple[Namespace, ...] = ()
    history_meta_ttl: float = 720 * 3600.0
    publication_data_format: str = ""
    max_length: int = 255
    private_prefix: str = "$"
    namespace_boundary: str = ":"
    user_boundary: str = "#"
    user_separator: str = ","


@dataclass(frozen=True)
class TokenConfig:
    """``client.token``: how connection JWTs are verified."""

    hmac_secret_key: str = ""
    hmac_previous_secret_key: str = ""
    hmac_previous_secret_key_valid_until: int = 0
    rsa_public_key: str = ""
    ecdsa_public_key: str = ""
    jwks_public_endpoint: str = ""
    audience: str = ""
    audience_regex: str = ""
    issuer: str = ""
    issuer_regex: str = ""
    user_id_claim: str = ""
    insecure_skip_jwks_endpoint_safety_check: bool = False


@dataclass(frozen=True)
class SubscriptionTokenConfig(TokenConfig):
    """``client.subscription_token``: a separate verifier when ``enabled``."""

    enabled: bool = False


@dataclass(frozen=True)
class PersonalChannelConfig:
    """``client.subscribe_to_user_personal_channel``."""

    enabled: bool = False
    personal_channel_namespace: str = ""
    single_connection: bool = False


@dataclass(frozen=True)
class ClientConfig:
    allowed_origins: tuple[str, ...] = ()
    token: TokenConfig = field(default_factory=TokenConfig)
    subscription_token: SubscriptionTokenConfig = field(default_factory=SubscriptionTokenConfig)
    allow_anonymous_connect_without_token: bool = False
    disallow_anonymous_connection_tokens: bool = False
    insecure: bool = False
    insecure_skip_token_signature_verify: bool = False
    ping_interval: float = 25.0
    pong_timeout: float = 8.0
    expired_close_delay: float = 25.0
    expired_sub_close_delay: float = 25.0
    stale_close_delay: float = 10.0
    channel_limit: int = 128
    queue_max_size: int = 1048576
    presence_update_interval: float = 27.0
    concurrency: int = 0
    channel_position_check_delay: float = 40.0
    channel_position_max_time_lag: float = 0.0
    connection_limit: int = 0
    user_connection_limit: int = 0
    connection_rate_limit: int = 0
    connect_include_server_time: bool = False
    history_max_publication_limit: int = 300
    recovery_max_publication_limit: int = 300
    user_id_http_header: str = ""
    subscribe_to_user_personal_channel: PersonalChannelConfig = field(
        default_factory=PersonalChannelConfig
    )


@dataclass(frozen=True)
class HTTPServerConfig:
    address: str = ""
    port: int = 8000
    internal_address: str = ""
    internal_port: str = ""


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    file: str = ""


@dataclass(frozen=True)
class HTTPAPIConfig:
    disabled: bool = False
    handler_prefix: str = "/api"
    key: str = ""
    insecure: bool = False
    external: bool = False
    error_mode: str = ""


@dataclass(frozen=True)
class AdminConfig:
    enabled: bool = False
    handler_prefix: str = ""
    password: str = ""
    secret: str = ""
    insecure: bool = False
    external: bool = False
    web_path: str = ""
    web_proxy_address: str = ""


@dataclass(frozen=True)
class RedisConfig:
    address: tuple[str, ...] = ("redis://127.0.0.1:6379",)
    prefix: str = "centrifugo"
    connect_timeout: float = 1.0
    io_timeout: float = 4.0
    db: int = 0
    user: str = ""
    password: str = ""
    client_name: str = ""
    force_resp2: bool = False
    cluster_address: tuple[str, ...] = ()
    sentinel_address: tuple[str, ...] = ()
    sentinel_master_name: str = ""
    history_use_lists: bool = False
    presence_ttl: float = 60.0
    presence_hash_field_ttl: bool = False
    presence_user_mapping: bool = False


@dataclass(frozen=True)
class EngineConfig:
    type: str = "memory"
    redis: RedisConfig = field(default_factory=RedisConfig)


@dataclass(frozen=True)
class WebsocketConfig:
    disabled: bool = False
    handler_prefix: str = "/connection/websocket"
    message_size_limit: int = 65536
    write_timeout: float = 1.0
    compression: bool = False
    compression_level: int = 1
    compression_min_size: int = 0
    read_buffer_size: int = 0
    write_buffer_size: int = 0
    use_write_buffer_pool: bool = False


@dataclass(frozen=True)
class EndpointConfig:
    """``prometheus``, ``health``, ``swagger``, ``debug``: enabled + handler prefix."""

    enabled: bool = False
    handler_prefix: str = ""


@dataclass(frozen=True)
class NodeConfig:
    name: str = ""
    info_metrics_aggregate_interval: float = 60.0


@dataclass(frozen=True)
class ShutdownConfig:
    timeout: float = 30.0


@dataclass(frozen=True)
class Config:
    """The root of the tree (Centrifugo v6 top-level sections)."""

    http_server: HTTPServerConfig = field(default_factory=HTTPServerConfig)
    log: LogConfig = field(default_factory=LogConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    http_api: HTTPAPIConfig = field(default_factory=HTTPAPIConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    websocket: WebsocketConfig = field(default_factory=WebsocketConfig)
    prometheus: EndpointConfig = field(
        default_factory=lambda: EndpointConfig(handler_prefix="/metrics")
    )
    health: EndpointConfig = field(default_factory=lambda: EndpointConfig(handler_prefix="/health"))
    swagger: EndpointConfig = field(
        default_factory=lambda: EndpointConfig(handler_prefix="/swagger")
    )
    debug: EndpointConfig = field(
        default_factory=lambda: EndpointConfig(handler_prefix="/debug/pprof")
    )
    node: NodeConfig = field(default_factory=NodeConfig)
    shutdown: ShutdownConfig = field(default_factory=ShutdownConfig)
    pid_file: str = ""
    workers: int = 0
    """relay's own key: worker processes (0 = CPU count). Env ``CENTRIFUGO_WORKERS``."""

    def namespace(self, name: str) -> Namespace | None:
        """The namespace called ``name`` in ``channel.namespaces``, or ``None``."""
        for ns in self.channel.namespaces:
            if ns.name == name:
                return ns
        return None


# =====================================================================================
# Durations (Go ``time.ParseDuration`` / ``Duration.String``)
# =====================================================================================

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


# =====================================================================================
# Schema introspection
# =====================================================================================

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


# =====================================================================================
# Value conversion
# =====================================================================================

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
        return value
    except (ValueError, ConfigError) as exc:
        raise ConfigError(
            f"envconfig.Process: assigning {var} to {path}: converting '{value}' to type "
            f"{kind}. details: {exc}"
        ) from None


def _is_zero(value: object) -> bool:
    return value in (0, "", (), False)


# =====================================================================================
# Loading
# =====================================================================================


@dataclass(frozen=True)
class LoadResult:
    """The outcome of :func:`load_config`."""

    config: Config
    warnings: list[tuple[str, dict[str, object]]]
    """(message, fields) pairs to log as WARN after logging is set up."""
    file_found: bool


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
            if _flag_root(path) in _EXTRA_KEYS[Config]:
                continue  # accepted for compatibility, no effect in relay
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
    return known


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


class _Builder:
    """Turns the merged raw tree into dataclasses, noting unknown keys."""

    def __init__(self) -> None:
        self.warnings: list[tuple[str, dict[str, object]]] = []

    def build(self, cls: type, raw: object, path: str, default: object) -> object:
        if raw is None:
            return default
        if not isinstance(raw, Mapping):
            raise ConfigError(f'error decoding config key "{path}": expected an object')
        schema = _schema(cls)
        extra = _extra_keys(cls)
        for key in raw:
            if key not in schema and key not in extra:
                full = f"{path}.{key}" if path else key
                self.warnings.append(("unknown key in configuration file", {"key": full}))
        changes: dict[str, object] = {}
        for name, (kind, sub) in schema.items():
            if name in raw:
                sub_path = f"{path}.{name}" if path else name
                value = self.field(kind, sub, raw[name], sub_path, getattr(default, name))
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
        if kind == "nslist":
            return self.namespaces(value, path)
        if value is None:
            return dflt
        converted = _convert_file_value(kind, value, path)
        # Defaults quirk (spec §2.1): an explicit zero is replaced by a non-zero default.
        if _is_zero(converted) and not _is_zero(dflt):
            return dflt
        return converted

    def namespaces(self, value: object, path: str) -> tuple[Namespace, ...]:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise ConfigError(f'error decoding config key "{path}": expected a list')
        out = []
        for i, item in enumerate(value):
            ns = self.build(Namespace, item, f"{path}.[{i}]", Namespace())
            assert isinstance(ns, Namespace)
            out.append(ns)
        return tuple(out)


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
    warnings = builder.warnings + _unknown_env_warnings(environ, known)
    return LoadResult(config=config, warnings=warnings, file_found=file_found)


# =====================================================================================
# Validation
# =====================================================================================

_NAMESPACE_NAME = re.compile(r"^[-a-zA-Z0-9_.]{2,}$")
_USER_ID_CLAIM = re.compile(r"^[a-zA-Z_]+$")
_RECOVERY_MODES = frozenset({"", "stream", "cache"})
_DATA_FORMATS = frozenset({"", "json", "json_object", "binary"})
_DELTA_TYPES = frozenset({"fossil"})
_ENGINE_TYPES = frozenset({"memory", "redis"})
_ERROR_MODES = frozenset({"", "transport"})


def _check_whole_seconds(value: float, key: str, prefix: str) -> None:
    if round(value * _NS_PER_SECOND) % _NS_PER_SECOND:
        raise ConfigError(
            f"{prefix}malformed duration {format_duration(value)} for {key}, "
            "sub-second precision is not supported for this key"
        )


def _validate_options(opts: ChannelOptions, global_meta_ttl: float, prefix: str) -> None:
    """Rules shared by ``channel.without_namespace`` and each namespace."""
    _check_whole_seconds(opts.history_ttl, "history_ttl", prefix)
    _check_whole_seconds(opts.history_meta_ttl, "history_meta_ttl", prefix)
    if (opts.history_size == 0) != (opts.history_ttl == 0):
        raise ConfigError(f"{prefix}both history size and history ttl required for history")
    meta_ttl = opts.history_meta_ttl or global_meta_ttl
    if opts.history_ttl > 0 and meta_ttl < opts.history_ttl:
        raise ConfigError(
            f"{prefix}history meta ttl ({format_duration(meta_ttl)}) can not be less than "
            f"history ttl ({format_duration(opts.history_ttl)})"
        )
    if opts.force_recovery and not opts.history_enabled:
        raise ConfigError(f"{prefix}both history size and history ttl required for recovery")
    if opts.channel_regex:
        try:
            re.compile(opts.channel_regex)
        except re.error as exc:
            raise ConfigError(f"{prefix}error compiling channel regex: {exc}") from None
    for delta in opts.allowed_delta_types:
        if delta not in _DELTA_TYPES:
            raise ConfigError(f"{prefix}unknown allowed delta type: {delta}")
    if opts.force_recovery_mode not in _RECOVERY_MODES:
        raise ConfigError(f"{prefix}unknown recovery mode: {opts.force_recovery_mode}")
    if opts.publication_data_format not in _DATA_FORMATS:
        raise ConfigError(
            f"{prefix}unknown publication data format: {opts.publication_data_format}"
        )


def _validate_channels(channel: ChannelConfig) -> None:
    _check_whole_seconds(channel.history_meta_ttl, "channel.history_meta_ttl", "")
    if channel.publication_data_format not in _DATA_FORMATS:
        raise ConfigError(f"unknown publication data format: {channel.publication_data_format}")
    _validate_options(channel.without_namespace, channel.history_meta_ttl, "")
    seen: set[str] = set()
    for ns in channel.namespaces:
        if not _NAMESPACE_NAME.match(ns.name):
            raise ConfigError(
                f"namespace {ns.name}: invalid namespace name – {ns.name} "
                f"(must match {_NAMESPACE_NAME.pattern} regular expression)"
            )
        if ns.name in seen:
            raise ConfigError(f"namespace name must be unique: {ns.name}")
        seen.add(ns.name)
        _validate_options(ns, channel.history_meta_ttl, f"namespace {ns.name}: ")


def _validate_token(token: TokenConfig, section: str) -> None:
    if token.user_id_claim and not _USER_ID_CLAIM.match(token.user_id_claim):
        raise ConfigError(
            f"{section}.user_id_claim must match {_USER_ID_CLAIM.pattern} regular expression"
        )
    for plain, regex in (("audience", "audience_regex"), ("issuer", "issuer_regex")):
        if getattr(token, plain) and getattr(token, regex):
            raise ConfigError(f"{section}: can not use both {plain} and {regex}")
        pattern = getattr(token, regex)
        if pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{section}.{regex}: {exc}") from None


def _validate_client(config: Config) -> None:
    client = config.client
    _validate_token(client.token, "client.token")
    _validate_token(client.subscription_token, "client.subscription_token")
    personal = client.subscribe_to_user_personal_channel
    if personal.enabled:
        ns_name = personal.personal_channel_namespace
        opts: ChannelOptions | None = config.channel.without_namespace
        if ns_name:
            opts = config.namespace(ns_name)
            if opts is None:
                raise ConfigError(f"namespace for user personal channel not found: {ns_name}")
        if personal.single_connection and not (opts and opts.presence):
            raise ConfigError(
                "presence must be enabled for user personal channel namespace "
                "when single_connection is on"
            )
    # Ping/pong: Centrifugo requires ping_interval > pong_timeout even when one of them is
    # disabled by a negative value. relay keeps that rule but lets both be disabled
    # (both <= 0) at once, which Centrifugo rejects for equal values.
    ping, pong = client.ping_interval, client.pong_timeout
    if ping <= pong and not (ping <= 0 and pong <= 0):
        raise ConfigError(
            f"ping_interval ({format_duration(ping)}) must be greater than "
            f"pong_timeout ({format_duration(pong)})"
        )


def validate(config: Config) -> None:
    """Check ``config`` like Centrifugo's ``Validate()`` plus its startup-fatal checks.

    Raises :class:`ConfigError` with the first problem found. Messages follow Centrifugo
    where known (namespace name/uniqueness, history size/ttl, engine type); the other
    texts are relay's own wording.
    """
    _validate_channels(config.channel)
    _validate_client(config)
    if config.engine.type not in _ENGINE_TYPES:
        raise ConfigError(f"unknown engine type: {config.engine.type}")
    if config.http_api.error_mode not in _ERROR_MODES:
        raise ConfigError(f"unknown http_api.error_mode: {config.http_api.error_mode}")


# =====================================================================================
# Dumping (defaultconfig, defaultenv)
# =====================================================================================


def _dump(obj: object) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, (kind, _sub) in _schema(type(obj)).items():
        value = getattr(obj, name)
        if kind == "obj":
            out[name] = _dump(value)
        elif kind == "nslist":
            out[name] = [_dump(ns) for ns in value]
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
