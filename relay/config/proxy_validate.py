"""Validation of the proxy keys (Centrifugo's ``validateProxy``, proxy names, RPC namespaces).

Source: centrifugo ``internal/config/validate.go`` (6.9.1); the messages are its own.
"""

from __future__ import annotations

import importlib.util
import re

from relay.config.proxy_tree import ProxyConfig
from relay.config.tree import ChannelOptions, Config
from relay.errors import ConfigError

__all__ = ["DEFAULT_PROXY", "ENDPOINT_SCHEMES", "validate_proxies"]

DEFAULT_PROXY = "default"
_NAME = re.compile(r"^[-a-zA-Z0-9_.]{2,}$")
#: endpoint prefixes relay knows: HTTP, gRPC (``host:port`` or ``grpc://host:port``, as
#: Centrifugo), and relay's in-process hooks
ENDPOINT_SCHEMES = ("http://", "https://", "grpc://", "python://")


def _check_proxy(name: str, p: ProxyConfig) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"invalid proxy name: {name}, must match ^[-a-zA-Z0-9_.]{{2,}}$ regular expression"
        )
    if p.timeout == 0:
        raise ConfigError("timeout not set")
    if not p.endpoint:
        raise ConfigError("endpoint not set")
    if p.endpoint.startswith("python://"):
        module, sep, function = p.endpoint[len("python://") :].partition(":")
        if not (module and sep and function):
            raise ConfigError(f"hook endpoint must be python://module:function, got {p.endpoint}")
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(f"hook module {module} not found (is it on PYTHONPATH?)")
    for t in p.http.status_to_code_transforms:
        if t.status_code == 0:
            raise ConfigError("in status_to_code_transforms: status should be set")
        if t.to_error.code == 0 and t.to_disconnect.code == 0:
            raise ConfigError("in status_to_code_transforms: no error or disconnect code set")
        if t.to_error.code > 0 and t.to_disconnect.code > 0:
            raise ConfigError(
                "in status_to_code_transforms: only error or disconnect code can be set"
            )


def _wrapped(where: str, name: str, p: ProxyConfig) -> None:
    try:
        _check_proxy(name, p)
    except ConfigError as exc:
        raise ConfigError(f"in {where}: {exc}") from None


def _check_stream_grpc(config: Config, opts: ChannelOptions) -> None:
    """A subscribe_stream proxy must be a gRPC one (Centrifugo ``buildProxyMap``)."""
    name = opts.subscribe_stream_proxy_name
    if name == DEFAULT_PROXY:
        endpoint = config.channel.proxy.subscribe_stream.endpoint
    else:
        endpoint = next((p.endpoint for p in config.proxies if p.name == name), "")
    if endpoint.startswith(("http", "python://")):
        raise ConfigError(
            f"error creating subscribe stream proxy {name} only GRPC endpoints supported"
        )


def _check_options(config: Config, opts: ChannelOptions, names: list[str], prefix: str) -> None:
    proxy = config.channel.proxy
    stream = opts.subscribe_stream_proxy_enabled
    if stream and (
        opts.subscribe_proxy_enabled or opts.publish_proxy_enabled or opts.sub_refresh_proxy_enabled
    ):
        raise ConfigError(
            f"{prefix}can't use subscribe stream proxy together with subscribe, publish or "
            "sub refresh proxies"
        )
    for kind, enabled, name, default in (
        ("subscribe", opts.subscribe_proxy_enabled, opts.subscribe_proxy_name, proxy.subscribe),
        ("publish", opts.publish_proxy_enabled, opts.publish_proxy_name, proxy.publish),
        (
            "sub refresh",
            opts.sub_refresh_proxy_enabled,
            opts.sub_refresh_proxy_name,
            proxy.sub_refresh,
        ),
        (
            "subscribe stream",
            opts.subscribe_stream_proxy_enabled,
            opts.subscribe_stream_proxy_name,
            proxy.subscribe_stream,
        ),
    ):
        if name and name not in names:
            raise ConfigError(f'{prefix}{kind} proxy with name "{name}" not found')
        if enabled and name == DEFAULT_PROXY:
            _wrapped(f"channel.proxy.{kind.replace(' ', '_')}", DEFAULT_PROXY, default)
    if stream:
        _check_stream_grpc(config, opts)


def validate_proxies(config: Config) -> None:
    """Check every proxy key; raise :class:`ConfigError` with the first problem."""
    client_proxy = config.client.proxy
    if client_proxy.connect.enabled:
        _wrapped("client.proxy.connect", DEFAULT_PROXY, client_proxy.connect)
    if client_proxy.refresh.enabled:
        _wrapped("client.proxy.refresh", DEFAULT_PROXY, client_proxy.refresh)
    names: list[str] = []
    for p in config.proxies:
        if p.name in names:
            raise ConfigError(f"duplicate proxy name in channel.named_proxies: {p.name}")
        try:
            _check_proxy(p.name, p)
        except ConfigError as exc:
            raise ConfigError(f"in proxy {p.name}: {exc}") from None
        names.append(p.name)
    if DEFAULT_PROXY in names:
        raise ConfigError(f"proxy name {DEFAULT_PROXY} is reserved")
    names.append(DEFAULT_PROXY)
    _check_options(config, config.channel.without_namespace, names, "")
    for ns in config.channel.namespaces:
        _check_options(config, ns, names, f"namespace {ns.name}: ")
    rpc = config.rpc
    rpc_names: list[str] = []
    for opts, prefix in ((rpc.without_namespace, ""), *((n, n.name) for n in rpc.namespaces)):
        if prefix:
            if not _NAME.match(prefix):
                raise ConfigError(
                    f"rpc namespace {prefix}: invalid rpc namespace name – {prefix} "
                    "(must match ^[-a-zA-Z0-9_.]{2,}$ regular expression)"
                )
            if prefix in rpc_names:
                raise ConfigError(f"rpc namespace name must be unique: {prefix}")
            rpc_names.append(prefix)
        if opts.proxy_name and opts.proxy_name not in names:
            where = f"rpc namespace {prefix}: " if prefix else ""
            raise ConfigError(f"{where}proxy {opts.proxy_name} not found for rpc")
        if opts.proxy_enabled and opts.proxy_name == DEFAULT_PROXY:
            _wrapped("rpc.proxy", DEFAULT_PROXY, rpc.proxy)
