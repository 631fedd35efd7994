"""``engine.redis`` addresses parsed as centrifuge's ``optionsFromAddress`` (its own test
table, redis_shard_test.go, gives the cases and error texts) and shards as Centrifugo's
``getRedisShardConfigs``."""

from __future__ import annotations

import pytest

from relay.config import load_config, validate
from relay.config.engine_tree import RedisConfig
from relay.config.redis_address import RedisAddress, parse_address, shard_addresses
from relay.errors import ConfigError


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:6379", RedisAddress(addresses=("127.0.0.1:6379",))),
        ("redis://127.0.0.1:6379/2", RedisAddress(addresses=("127.0.0.1:6379",), db=2)),
        ("redis+cluster://127.0.0.1:6379", RedisAddress("cluster", ("127.0.0.1:6379",))),
        (
            "redis://user:p%40ss@127.0.0.1:6379",
            RedisAddress(addresses=("127.0.0.1:6379",), username="user", password="p@ss"),
        ),
        (
            "redis://@127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002",
            RedisAddress(addresses=("127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002")),
        ),
        (
            "redis://127.0.0.1:6379?connect_timeout=1s&io_timeout=2s&tls_enabled=true",
            RedisAddress(
                addresses=("127.0.0.1:6379",), connect_timeout=1.0, io_timeout=2.0, tls=True
            ),
        ),
        ("rediss://h:6380", RedisAddress(addresses=("h:6380",), tls=True)),
        (
            "redis+sentinel://127.0.0.1:26379?sentinel_master_name=mymaster&addr=h2:26379"
            "&sentinel_password=sp",
            RedisAddress(
                "sentinel",
                ("127.0.0.1:26379", "h2:26379"),
                sentinel_master_name="mymaster",
                sentinel_password="sp",
            ),
        ),
        (
            "rediss+sentinel://h:26379?sentinel_master_name=m",
            RedisAddress(
                "sentinel", ("h:26379",), tls=True, sentinel_tls=True, sentinel_master_name="m"
            ),
        ),
        # a master name alone makes it a sentinel setup
        (
            "redis://h:26379?sentinel_master_name=m",
            RedisAddress("sentinel", ("h:26379",), sentinel_master_name="m"),
        ),
        ("unix:///var/run/redis.sock", RedisAddress(addresses=("/var/run/redis.sock",), unix=True)),
        ("redis://127.0.0.1:6379?force_resp2=true", RedisAddress(addresses=("127.0.0.1:6379",),
                                                                 force_resp2=True)),
    ],
)  # fmt: skip
def test_addresses(address: str, expected: RedisAddress) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(
    ("address", "error"),
    [
        ("127.0.0.1", "malformed connection address, must be Redis URL or host:port"),
        ("http://127.0.0.1:6379", "malformed connection address, must be Redis URL or host:port"),
        ("tcp://:invalid", "malformed connection address, not a valid URL"),
        (
            "redis://127.0.0.1:6379/invalid",
            "can't parse Redis DB number from connection address: /invalid is not a number",
        ),
        ("redis://h:1?connect_timeout=xs", 'invalid connect timeout: "xs"'),
        ("redis://h:1?io_timeout=xs", 'invalid io timeout: "xs"'),
        ("redis://h:1?force_resp2=xs", 'invalid force_resp2 value: "xs"'),
        ("redis://h:1?replica_client_enabled=xs", 'invalid replica_client_enabled value: "xs"'),
        (
            "redis+sentinel://h:26379",
            "sentinel master name must be configured for Redis Sentinel setup",
        ),
    ],
)
def test_bad_addresses(address: str, error: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_address(address)
    assert str(exc.value).startswith(error)


def test_shards_as_centrifugo_makes_them() -> None:
    sentinels = RedisConfig(
        sentinel_address=("a:26379,b:26379", "c:26379"), sentinel_master_name="m"
    )
    assert [s.addresses for s in shard_addresses(sentinels)] == [("a:26379", "b:26379"),
                                                                  ("c:26379",)]  # fmt: skip
    assert {s.mode for s in shard_addresses(sentinels)} == {"sentinel"}
    with pytest.raises(ValueError, match="master name must be set when using Redis Sentinel"):
        shard_addresses(RedisConfig(sentinel_address=("a:26379",)))
    with pytest.raises(ValueError, match="malformed Redis Sentinel address: a"):
        shard_addresses(RedisConfig(sentinel_address=("a",), sentinel_master_name="m"))
    assert len(shard_addresses(RedisConfig(address=("h:1", "redis://h:2")))) == 2
    with pytest.raises(ValueError, match="replica client may be enabled only"):
        shard_addresses(RedisConfig(address=("redis://h:1?replica_client_enabled=true",)))


def test_validate_stops_the_start_with_the_reason() -> None:
    """The front refuses before it forks a worker: no crash loop (issue 14)."""
    env = {"CENTRIFUGO_ENGINE_TYPE": "redis"}
    for address, reason in (
        ("127.0.0.1", "error processing Redis address: malformed connection address"),
        ("redis+sentinel://h:26379", "sentinel master name must be configured"),
    ):
        result = load_config(None, {**env, "CENTRIFUGO_ENGINE_REDIS_ADDRESS": address})
        with pytest.raises(ConfigError, match=reason):
            validate(result.config)
    for address in ("redis+sentinel://h:1?sentinel_master_name=m", "redis+cluster://h:7000"):
        ok = load_config(None, {**env, "CENTRIFUGO_ENGINE_REDIS_ADDRESS": address})
        validate(ok.config)
    mixed = load_config(None, {**env, "CENTRIFUGO_ENGINE_REDIS_ADDRESS": "redis://a:1",
                               "CENTRIFUGO_ENGINE_REDIS_CLUSTER_ADDRESS": "b:2"})  # fmt: skip
    validate(mixed.config)  # cluster_address wins over address, as in Centrifugo


def test_redis_tls_blocks_are_checked_at_start(tmp_path: object) -> None:
    env = {"CENTRIFUGO_ENGINE_TYPE": "redis", "CENTRIFUGO_ENGINE_REDIS_TLS_ENABLED": "true"}
    bad = load_config(None, {**env, "CENTRIFUGO_ENGINE_REDIS_TLS_SERVER_CA_PEM": "/no/such"})
    with pytest.raises(ConfigError, match="error creating Redis TLS config: engine.redis.tls"):
        validate(bad.config)
    sni = load_config(None, {**env, "CENTRIFUGO_ENGINE_REDIS_TLS_SERVER_NAME": "redis.local"})
    with pytest.raises(ConfigError, match="server_name is not implemented by relay"):
        validate(sni.config)
    validate(load_config(None, env).config)  # system roots: fine
