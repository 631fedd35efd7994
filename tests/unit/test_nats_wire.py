"""The NATS broker without a server: its config (keys, env vars, validation), its subjects
and its wire, read back with the protobuf library (centrifuge-python's ``client_pb2``,
the same ``Push`` Centrifugo's NATS broker writes and reads)."""

from __future__ import annotations

from typing import Any

import pytest
from centrifuge.protocol import client_pb2 as pb

from relay.config import load_config, validate
from relay.config.engine_tree import NatsBrokerConfig, NatsRawModeConfig
from relay.engines.base import PublishOptions
from relay.engines.nats import NatsBroker, encode_event_push, encode_pub_push, subject_of
from relay.errors import ConfigError, ReplyError
from relay.protocol.messages import ClientInfo, HistoryFilter, Publication, StreamPosition


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def handle_publication(self, channel: str, pub: Publication, sp: StreamPosition) -> None:
        self.events.append(("pub", channel, pub, sp))

    def handle_publications(self, batch: Any) -> None:
        raise AssertionError("not used by the NATS broker")

    def handle_join(self, channel: str, info: ClientInfo) -> None:
        self.events.append(("join", channel, info))

    def handle_leave(self, channel: str, info: ClientInfo) -> None:
        self.events.append(("leave", channel, info))


def _broker(**opts: Any) -> tuple[NatsBroker, Recorder]:
    """A broker that is not connected (delivery and refusals need no server)."""
    broker, rec = NatsBroker(NatsBrokerConfig(**opts), "node.0"), Recorder()
    broker.set_event_handler(rec)
    return broker, rec


# ---- config -----------------------------------------------------------------------------
def test_broker_keys_from_env_and_file() -> None:
    env = {
        "CENTRIFUGO_BROKER_ENABLED": "true",
        "CENTRIFUGO_BROKER_TYPE": "nats",
        "CENTRIFUGO_BROKER_NATS_URL": "nats://10.0.0.1:4222",
        "CENTRIFUGO_BROKER_NATS_PREFIX": "live",
        "CENTRIFUGO_BROKER_NATS_ALLOW_WILDCARDS": "true",
        "CENTRIFUGO_BROKER_NATS_RAW_MODE_CHANNEL_REPLACEMENTS": '{":": "."}',
        "CENTRIFUGO_PRESENCE_MANAGER_ENABLED": "true",
        "CENTRIFUGO_PRESENCE_MANAGER_TYPE": "redis",
        "CENTRIFUGO_PRESENCE_MANAGER_REDIS_ADDRESS": "redis://10.0.0.2:6379",
    }
    result = load_config(None, env)
    assert result.warnings == []
    cfg = result.config
    validate(cfg)
    nats = cfg.broker.nats
    assert (cfg.broker.enabled, cfg.broker.type) == (True, "nats")
    assert (nats.url, nats.prefix, nats.allow_wildcards) == ("nats://10.0.0.1:4222", "live", True)
    assert nats.raw_mode == NatsRawModeConfig(channel_replacements=((":", "."),))
    assert cfg.presence_manager.redis.address == ("redis://10.0.0.2:6379",)


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"CENTRIFUGO_BROKER_TYPE": "kafka"}, "unknown broker type: kafka"),
        ({"CENTRIFUGO_BROKER_TYPE": "postgres"}, "PostgreSQL stream broker"),
        ({"CENTRIFUGO_BROKER_TYPE": "nats", "CENTRIFUGO_BROKER_NATS_URL": "localhost:4222"},
         "is not a nats:// or tls:// address"),
        ({"CENTRIFUGO_BROKER_TYPE": "redis", "CENTRIFUGO_BROKER_REDIS_ADDRESS": "127.0.0.1"},
         "error processing Redis address: malformed connection address"),
        ({"CENTRIFUGO_PRESENCE_MANAGER_ENABLED": "true",
          "CENTRIFUGO_PRESENCE_MANAGER_TYPE": "nats"}, "unknown presence manager type: nats"),
    ],
)  # fmt: skip
def test_a_broker_relay_cannot_use_stops_the_start(env: dict[str, str], reason: str) -> None:
    cfg = load_config(None, {"CENTRIFUGO_BROKER_ENABLED": "true", **env}).config
    with pytest.raises(ConfigError, match=reason):
        validate(cfg)


def test_a_disabled_broker_is_not_checked() -> None:
    validate(load_config(None, {"CENTRIFUGO_BROKER_TYPE": "kafka"}).config)


# ---- subjects and wire ------------------------------------------------------------------
def test_subjects() -> None:
    assert subject_of(NatsBrokerConfig(prefix="live"), "chat:1") == "live.client.chat:1"
    raw = NatsRawModeConfig(enabled=True, prefix="raw.", channel_replacements=((":", "."),))
    assert subject_of(NatsBrokerConfig(raw_mode=raw), "chat:index") == "raw.chat.index"


def test_publication_is_centrifugos_push() -> None:
    pub = Publication(b'{"a":1}', ClientInfo("u", "c", b'{"i":1}'), 7, {"k": "v"}, delta=True)
    push = pb.Push.FromString(encode_pub_push("chat:1", pub, 1234))
    assert push.channel == "chat:1" and push.pub.data == b'{"a":1}'
    info = push.pub.info
    assert (info.user, info.client, info.conn_info) == ("u", "c", b'{"i":1}')
    assert dict(push.pub.tags) == {"k": "v"} and push.pub.delta and push.pub.time == 1234
    assert push.pub.offset == 0  # no history: no offset on the wire
    join = pb.Push.FromString(encode_event_push("room", "join", ClientInfo("u", "c")))
    leave = pb.Push.FromString(encode_event_push("room", "leave", ClientInfo("v", "d")))
    assert (join.channel, join.join.info.user, leave.leave.info.client) == ("room", "u", "d")


def test_incoming_pushes_are_delivered() -> None:
    broker, rec = _broker()
    info = ClientInfo("u", "c")
    for payload in (
        encode_event_push("room", "join", info),
        encode_event_push("room", "leave", info),
        # as Centrifugo's broker writes it
        pb.Push(
            channel="room", pub=pb.Publication(data=b"[1]", tags={"x": "y"}, time=5)
        ).SerializeToString(),
    ):
        broker._on_message("room", "centrifugo.client.room", payload)
    assert [e[0] for e in rec.events] == ["join", "leave", "pub"]
    assert rec.events[0][1:] == ("room", info)
    _, channel, pub, sp = rec.events[2]
    assert channel == "room" and sp == StreamPosition(0, "")
    # the broker's time is not passed on (centrifuge's pubToProto drops it)
    assert (pub.data, pub.tags, pub.time, pub.channel) == (b"[1]", {"x": "y"}, 0, "")
    broker._on_message("room", "centrifugo.client.room", b"\xff garbage")  # logged, dropped
    assert len(rec.events) == 3


async def test_wildcards() -> None:
    broker, _ = _broker()
    for bad in ("a.*", "a.>"):
        with pytest.raises(ReplyError) as err:
            await broker.subscribe(bad)
        assert err.value.error.code == 107
        with pytest.raises(ReplyError) as err:
            await broker.publish(bad, Publication(b"1"), PublishOptions())
        assert err.value.error.code == 107
    allowing, rec = _broker(allow_wildcards=True)
    await allowing.subscribe("a.*")  # accepted (subscribed once connected)
    payload = pb.Push(channel="a.b", pub=pb.Publication(data=b"1")).SerializeToString()
    allowing._on_message("a.*", "centrifugo.client.a.b", payload)
    assert rec.events[0][1] == "a.*" and rec.events[0][2].channel == "a.b"


def test_raw_mode_delivery() -> None:
    raw = NatsRawModeConfig(enabled=True, prefix="raw.", channel_replacements=((":", "."),))
    broker, rec = _broker(raw_mode=raw)
    broker._on_message("chat:index", "raw.chat.index", b"not json")
    _, channel, pub, _ = rec.events[0]
    assert (channel, pub.data, pub.data_json, pub.channel) == (
        "chat:index", b"not json", False, "chat.index"
    )  # fmt: skip


async def test_no_history_and_no_connection() -> None:
    broker, _ = _broker()
    for call in (broker.history("ch", HistoryFilter()), broker.remove_history("ch")):
        with pytest.raises(ReplyError) as err:
            await call
        assert err.value.error.code == 108
    # not connected (yet, or reconnecting): refused at once with 100, nothing buffered
    with pytest.raises(ReplyError) as err:
        await broker.publish("ch", Publication(b"1"), PublishOptions())
    assert err.value.error.code == 100
    outcomes = await broker.publish_many([("ch", Publication(b"1"), PublishOptions())])
    assert isinstance(outcomes[0], ReplyError) and outcomes[0].error.code == 100
