"""The pure parts of the async consumers: the command envelope, publication-data fields,
the backoff, and the config checks (Centrifugo's texts)."""

from __future__ import annotations

import pytest

from relay.config import load_config, validate
from relay.config.consumer_tree import NatsJetStreamConsumerConfig, RedisStreamConsumerConfig
from relay.consumers.backoff import MAX_BACKOFF, next_backoff
from relay.consumers.dispatch import _envelope
from relay.consumers.nats_jetstream import header_params
from relay.consumers.redis_stream import publication_params
from relay.errors import ConfigError


def test_envelope_payload_is_json_or_a_string_holding_it() -> None:
    assert _envelope(b'{"method":"publish","payload":{"channel":"a"}}') == (
        "publish", b'{"channel":"a"}'
    )  # fmt: skip
    assert _envelope(b'{"method":"publish","payload":"{\\"channel\\": \\"a\\"}"}') == (
        "publish", b'{"channel": "a"}'
    )  # fmt: skip
    for bad in (b"not json", b"[1]", b'{"method": 5}'):
        assert _envelope(bad) is None


def test_publication_data_fields() -> None:
    cfg = RedisStreamConsumerConfig()
    fields = {
        "centrifugo-channels": "a,b",
        "centrifugo-idempotency-key": "k1",
        "centrifugo-delta": "t",
        "centrifugo-version": "7",
        "centrifugo-version-epoch": "e",
        "centrifugo-tag-x": "1",
        "other": "ignored",
    }
    channels, params = publication_params(cfg, fields)
    assert channels == ["a", "b"]
    assert params == {"idempotency_key": "k1", "delta": True, "version": 7,
                      "version_epoch": "e", "tags": {"x": "1"}}  # fmt: skip
    assert publication_params(cfg, {}) == ([], {})
    for bad in ({"centrifugo-delta": "yes"}, {"centrifugo-version": "-1"}):
        with pytest.raises(ValueError):
            publication_params(cfg, bad)


def test_publication_data_headers() -> None:
    cfg = NatsJetStreamConsumerConfig()
    headers = {"centrifugo-channels": "x", "centrifugo-delta": "1", "centrifugo-tag-a": "b",
               "centrifugo-version": "3", "centrifugo-version-epoch": "v1"}  # fmt: skip
    assert header_params(cfg, headers) == (
        ["x"], {"delta": True, "version": 3, "version_epoch": "v1", "tags": {"a": "b"}}
    )  # fmt: skip
    with pytest.raises(ValueError):
        header_params(cfg, {"centrifugo-version": "v"})


def test_backoff_doubles_up_to_five_seconds() -> None:
    first = next_backoff(0, 1)
    assert 0.02 <= first < 0.04
    assert next_backoff(first, 30) == MAX_BACKOFF and next_backoff(MAX_BACKOFF, 2) == MAX_BACKOFF


@pytest.mark.parametrize(
    ("consumer", "reason"),
    [
        ({"name": "a"}, "invalid consumer name: a"),
        ({"name": "bad-name", "type": "postgresql"}, "invalid consumer name: bad-name"),
        ({"name": "ok", "type": "rabbit"}, "unknown consumer type: rabbit"),
        ({"name": "ok", "type": "kafka", "enabled": True}, "kafka consumers are not implemented"),
        ({"name": "ok", "type": "postgresql", "enabled": True}, "no Postgres DSN provided"),
        ({"name": "ok", "type": "postgresql", "enabled": True, "postgresql": {"dsn": "x"}},
         "no Postgres outbox table name provided"),
        ({"name": "ok", "type": "redis_stream", "enabled": True}, "streams can't be empty"),
        ({"name": "ok", "type": "nats_jetstream", "enabled": True}, "stream_name is required"),
        ({"name": "ok", "type": "nats_jetstream", "enabled": True,
          "nats_jetstream": {"stream_name": "S"}}, "durable_consumer_name is required"),
        ({"name": "ok", "type": "nats_jetstream", "enabled": True,
          "nats_jetstream": {"stream_name": "S", "durable_consumer_name": "d",
                             "deliver_policy": "last"}}, "deliver_policy must be either"),
    ],
)  # fmt: skip
def test_consumer_config_checks(consumer: dict[str, object], reason: str, tmp_path: object) -> None:
    import json
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.json"
    path.write_text(json.dumps({"consumers": [consumer]}))
    with pytest.raises(ConfigError, match=reason):
        validate(load_config(str(path), {}).config)


def test_two_consumers_may_not_share_a_name(tmp_path: object) -> None:
    import json
    from pathlib import Path

    path = Path(str(tmp_path)) / "c.json"
    same = {"name": "dup", "type": "postgresql"}
    path.write_text(json.dumps({"consumers": [same, same]}))
    with pytest.raises(ConfigError, match="invalid consumer name: dup, must be unique"):
        validate(load_config(str(path), {}).config)
    env = {"CENTRIFUGO_CONSUMERS": json.dumps([{"name": "fromenv", "type": "redis_stream"}])}
    assert load_config(None, env).config.consumers[0].name == "fromenv"
