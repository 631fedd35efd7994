"""``engine.redis.address`` entries read as Centrifugo reads them.

Source: centrifuge ``redis_shard.go`` (``optionsFromAddress``, ``NewRedisShard``):

* a known URL scheme (``redis://``, ``rediss://``, ``redis+sentinel://``,
  ``rediss+sentinel://``, ``redis+cluster://``, ``tcp://``, ``unix://``), or a plain
  ``host:port``; anything else is "malformed connection address";
* the path of a TCP URL is the DB number; user and password from the URL;
* query options: ``addr`` (more addresses: sentinels, cluster seeds), ``connect_timeout``,
  ``io_timeout`` (Go durations), ``tls_enabled``, ``force_resp2``, ``sentinel_master_name``,
  ``sentinel_user``, ``sentinel_password``, ``sentinel_tls_enabled``,
  ``replica_client_enabled``;
* a ``+sentinel`` scheme or a ``sentinel_master_name`` makes it a Sentinel setup, which
  needs the master name; ``rediss`` turns TLS on (for the sentinels too).

``engine.redis.sentinel_address`` / ``cluster_address`` (with their ``sentinel_*`` keys)
describe one shard the same way (``from_config``). Pure: no sockets.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from relay.config.durations import parse_duration
from relay.config.engine_tree import RedisConfig
from relay.errors import ConfigError

__all__ = ["RedisAddress", "parse_address", "shard_addresses"]

_KNOWN_PREFIXES = (
    "redis://",
    "rediss://",
    "redis+sentinel://",
    "rediss+sentinel://",
    "redis+cluster://",
    "unix://",
    "tcp://",
)
_HOST_PORT = re.compile(r"^(\[[^\]]+\]|[^:\[\]]+):([^:]+)$")
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass(frozen=True)
class RedisAddress:
    """What one shard connects to."""

    mode: str = "standalone"  # "standalone" | "sentinel" | "cluster"
    addresses: tuple[str, ...] = ()  # host:port (sentinels / cluster seeds), or a unix path
    unix: bool = False
    db: int | None = None  # None: engine.redis.db
    username: str | None = None  # None: engine.redis.user
    password: str | None = None  # None: engine.redis.password
    tls: bool = False
    connect_timeout: float | None = None
    io_timeout: float | None = None
    force_resp2: bool = False
    sentinel_master_name: str = ""
    sentinel_user: str = ""
    sentinel_password: str = ""
    sentinel_tls: bool = False
    replica_client: bool = False


def _go_bool(value: str, name: str) -> bool:
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise ValueError(f'invalid {name} value: "{value}"')


def _duration(value: str, name: str) -> float:
    try:
        return parse_duration(value)
    except (ValueError, ConfigError):
        raise ValueError(f'invalid {name}: "{value}"') from None


def parse_address(address: str) -> RedisAddress:
    """One ``engine.redis.address`` entry; ValueError with Centrifugo's reason."""
    if not address.startswith(_KNOWN_PREFIXES):
        match = _HOST_PORT.match(address)
        if match and match.group(1) and match.group(2):
            return RedisAddress(addresses=(address,))
        raise ValueError("malformed connection address, must be Redis URL or host:port")
    try:
        url = urlsplit(address)
        port = url.port  # validates the port
    except ValueError as exc:
        raise ValueError(f"malformed connection address, not a valid URL: {exc}") from None
    query = parse_qs(url.query, keep_blank_values=True)

    def last(name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    master = last("sentinel_master_name") or ""
    scheme = url.scheme
    sentinel = scheme in ("redis+sentinel", "rediss+sentinel") or bool(master)
    if sentinel and not master:
        raise ValueError("sentinel master name must be configured for Redis Sentinel setup")
    fields: dict[str, object] = {}
    if scheme == "unix":
        addresses = [url.path]
        fields["unix"] = True
    else:
        host = url.hostname or ""
        addresses = [f"{host}:{port}" if port is not None else url.netloc.rpartition("@")[2]]
        path = url.path.lstrip("/")
        if url.path:
            if not path.isdigit():
                raise ValueError(
                    "can't parse Redis DB number from connection address: "
                    f"{url.path} is not a number"
                )
            fields["db"] = int(path)
        if scheme.startswith("rediss"):
            fields["tls"] = True
            fields["sentinel_tls"] = sentinel
    if url.username:
        fields["username"] = unquote(url.username)
    if url.password is not None:
        fields["password"] = unquote(url.password)
    addresses += query.get("addr", [])
    if (v := last("connect_timeout")) is not None:
        fields["connect_timeout"] = _duration(v, "connect timeout")
    if (v := last("io_timeout")) is not None:
        fields["io_timeout"] = _duration(v, "io timeout")
    if (v := last("tls_enabled")) is not None and not fields.get("tls"):
        fields["tls"] = _go_bool(v, "tls_enabled")
    if (v := last("force_resp2")) is not None:
        fields["force_resp2"] = _go_bool(v, "force_resp2")
    if (v := last("sentinel_user")) is not None:
        fields["sentinel_user"] = v
    if (v := last("sentinel_password")) is not None:
        fields["sentinel_password"] = v
    if (v := last("sentinel_tls_enabled")) is not None and not fields.get("sentinel_tls"):
        fields["sentinel_tls"] = _go_bool(v, "sentinel_tls_enabled")
    if (v := last("replica_client_enabled")) is not None:
        fields["replica_client"] = _go_bool(v, "replica_client_enabled")
    mode = "cluster" if scheme == "redis+cluster" else "sentinel" if sentinel else "standalone"
    return RedisAddress(
        mode=mode,
        addresses=tuple(addresses),
        sentinel_master_name=master,
        **fields,  # type: ignore[arg-type]
    )


def shard_addresses(cfg: RedisConfig) -> list[RedisAddress]:
    """The shards of ``engine.redis``, as Centrifugo's ``getRedisShardConfigs`` makes
    them: one per ``cluster_address`` entry, else one per ``sentinel_address`` entry
    (each a comma-separated list of sentinels), else one per ``address`` entry."""
    if cfg.cluster_address:
        out = []
        for entry in cfg.cluster_address:
            seeds = entry.split(",")
            for seed in seeds:
                if not _HOST_PORT.match(seed):
                    raise ValueError(f"malformed Redis Cluster address: {seed}")
            out.append(RedisAddress(mode="cluster", addresses=tuple(seeds)))
        return out
    if cfg.sentinel_address:
        out = []
        for entry in cfg.sentinel_address:
            sentinels = entry.split(",")
            for sentinel in sentinels:
                if not _HOST_PORT.match(sentinel):
                    raise ValueError(f"malformed Redis Sentinel address: {sentinel}")
            if not cfg.sentinel_master_name:
                raise ValueError("master name must be set when using Redis Sentinel")
            out.append(
                RedisAddress(
                    mode="sentinel",
                    addresses=tuple(sentinels),
                    sentinel_master_name=cfg.sentinel_master_name,
                    sentinel_user=cfg.sentinel_user,
                    sentinel_password=cfg.sentinel_password,
                )
            )
        return out
    out = []
    for entry in cfg.address or ("127.0.0.1:6379",):
        parsed = parse_address(entry)
        if parsed.replica_client and parsed.mode == "standalone":
            raise ValueError("replica client may be enabled only in cluster and sentinel mode")
        out.append(parsed)
    return out


def with_defaults(addr: RedisAddress, cfg: RedisConfig) -> RedisAddress:
    """``addr`` with what it leaves unset taken from ``engine.redis``."""
    return dataclasses.replace(
        addr,
        db=cfg.db if addr.db is None else addr.db,
        username=cfg.user if addr.username is None else addr.username,
        password=cfg.password if addr.password is None else addr.password,
        connect_timeout=cfg.connect_timeout
        if addr.connect_timeout is None
        else addr.connect_timeout,
        io_timeout=cfg.io_timeout if addr.io_timeout is None else addr.io_timeout,
    )
