"""relay's configuration: the typed tree, Go durations, loading, validation and dumping.

The code lives in submodules (``tree``, ``durations``, ``schema``, ``convert``, ``load``,
``validate``, ``dump``); this package re-exports the names the rest of relay uses.
"""

from __future__ import annotations

from relay.config.dump import config_to_dict, known_env_vars
from relay.config.durations import format_duration, parse_duration
from relay.config.engine_tree import EngineConfig, RedisConfig
from relay.config.load import LoadResult, load_config
from relay.config.schema import env_var_name
from relay.config.transport_tree import WebsocketConfig
from relay.config.tree import (
    AdminConfig,
    ChannelConfig,
    ChannelOptions,
    ClientConfig,
    Config,
    EndpointConfig,
    HTTPAPIConfig,
    HTTPServerConfig,
    LogConfig,
    Namespace,
    NodeConfig,
    PersonalChannelConfig,
    ShutdownConfig,
    SubscriptionTokenConfig,
    TokenConfig,
)
from relay.config.validate import validate

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
