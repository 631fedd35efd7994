"""Tests for relay.config: durations, loading (file/env/flags), validation, dumping."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from relay.config import (
    ChannelConfig,
    ChannelOptions,
    ClientConfig,
    Config,
    EngineConfig,
    HTTPAPIConfig,
    Namespace,
    PersonalChannelConfig,
    SubscriptionTokenConfig,
    TokenConfig,
    config_to_dict,
    env_var_name,
    format_duration,
    known_env_vars,
    load_config,
    parse_duration,
    validate,
)
from relay.config.load import NOT_IMPLEMENTED_WARNING
from relay.errors import ConfigError

# ---- durations ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("25s", 25.0),
        ("0", 0.0),
        ("0s", 0.0),
        ("-1s", -1.0),
        ("+2s", 2.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("300ms", 0.3),
        ("1us", 1e-6),
        ("1µs", 1e-6),
        ("1μs", 1e-6),
        ("10ns", 1e-8),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("2h45m0.5s", 9900.5),
        ("720h", 2592000.0),
    ],
)
def test_parse_duration_strings(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_bare_number_is_nanoseconds() -> None:
    assert parse_duration(300) == pytest.approx(300e-9)
    assert parse_duration(-1) == pytest.approx(-1e-9)
    assert parse_duration(1.5e9) == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("abc", 'time: invalid duration "abc"'),
        ("1", 'time: missing unit in duration "1"'),
        ("-1", 'time: missing unit in duration "-1"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        ("1s2", 'time: missing unit in duration "1s2"'),
        (".s", 'time: invalid duration ".s"'),
        (True, "invalid duration"),
        (None, "invalid duration"),
    ],
)
def test_parse_duration_errors(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (25, "25s"),
        (60, "1m0s"),
        (90.5, "1m30.5s"),
        (720 * 3600, "720h0m0s"),
        (604800, "168h0m0s"),
        (0.3, "300ms"),
        (1.5e-6, "1.5µs"),
        (5e-9, "5ns"),
        (-1, "-1s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# ---- file formats ---------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


FORMATS = {
    "c.json": '{"Client": {"Ping_Interval": "10s", "allowed_origins": "http://a"},'
    ' "http_server": {"port": 9000},'
    ' "channel": {"namespaces": [{"name": "chat", "presence": true}]}}',
    "c.yaml": "client:\n  ping_interval: 10s\n  allowed_origins: http://a\n"
    "http_server:\n  port: 9000\nchannel:\n  namespaces:\n    - name: chat\n      presence: true\n",
    "c.yml": "client: {ping_interval: 10s, allowed_origins: [http://a]}\n"
    "http_server: {port: 9000}\nchannel: {namespaces: [{name: chat, presence: true}]}\n",
    "c.toml": '[client]\nping_interval = "10s"\nallowed_origins = ["http://a"]\n'
    "[http_server]\nport = 9000\n"
    '[[channel.namespaces]]\nname = "chat"\npresence = true\n',
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_file_formats(tmp_path: Path, name: str) -> None:
    result = load_config(_write(tmp_path, name, FORMATS[name]), {})
    cfg = result.config
    assert result.file_found
    assert result.warnings == []
    assert cfg.client.ping_interval == 10.0
    assert cfg.client.allowed_origins == ("http://a",)
    assert cfg.http_server.port == 9000
    assert cfg.channel.namespaces == (Namespace(name="chat", presence=True),)
    assert cfg.namespace("chat") is cfg.channel.namespaces[0]
    assert cfg.namespace("other") is None


def test_missing_file_and_none_path(tmp_path: Path) -> None:
    assert not load_config(str(tmp_path / "nope.json"), {}).file_found
    result = load_config(None, {})
    assert not result.file_found
    assert result.config == Config()


@pytest.mark.parametrize(
    ("name", "text"),
    [("c.json", "{not json"), ("c.yaml", "a: [b"), ("c.toml", "a = "), ("c.json", "[1]")],
)
def test_unparsable_file(tmp_path: Path, name: str, text: str) -> None:
    with pytest.raises(ConfigError, match="error reading config file"):
        load_config(_write(tmp_path, name, text), {})


def test_unsupported_extension(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported config file extension"):
        load_config(_write(tmp_path, "c.ini", "x"), {})


def test_empty_yaml_is_empty_config(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, "c.yaml", ""), {}).config == Config()


def test_bad_value_types(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.json", '{"client": {"ping_interval": "soon"}}')
    with pytest.raises(ConfigError, match='"client.ping_interval"'):
        load_config(path, {})
    path = _write(tmp_path, "d.json", '{"client": {"channel_limit": [1]}}')
    with pytest.raises(ConfigError, match='"client.channel_limit"'):
        load_config(path, {})
    path = _write(tmp_path, "e.json", '{"client": 5}')
    with pytest.raises(ConfigError, match="expected an object"):
        load_config(path, {})


def test_weak_decoding(tmp_path: Path) -> None:
    text = '{"admin": {"enabled": "true"}, "http_server": {"port": "9001", "internal_port": 9002}}'
    cfg = load_config(_write(tmp_path, "c.json", text), {}).config
    assert cfg.admin.enabled is True
    assert cfg.http_server.port == 9001
    assert cfg.http_server.internal_port == "9002"


def test_json_number_duration_is_nanoseconds(tmp_path: Path) -> None:
    text = '{"channel": {"without_namespace": {"history_size": 10, "history_ttl": 300}}}'
    cfg = load_config(_write(tmp_path, "c.json", text), {}).config
    assert cfg.channel.without_namespace.history_ttl == pytest.approx(300e-9)
    with pytest.raises(ConfigError, match="sub-second precision is not supported"):
        validate(cfg)


# ---- defaults quirk -------------------------------------------------------------------


def test_explicit_zero_replaced_by_default(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "client": {"ping_interval": "0s", "channel_limit": 0, "queue_max_size": 0},
            "log": {"level": ""},
            "http_server": {"port": 0},
            "engine": {"redis": {"address": []}},
        }
    )
    cfg = load_config(_write(tmp_path, "c.json", text), {}).config
    assert cfg.client.ping_interval == 25.0
    assert cfg.client.channel_limit == 128
    assert cfg.client.queue_max_size == 1048576
    assert cfg.log.level == "info"
    assert cfg.http_server.port == 8000
    assert cfg.engine.redis.address == ("redis://127.0.0.1:6379",)


def test_negative_duration_kept(tmp_path: Path) -> None:
    text = '{"client": {"ping_interval": "-1s", "pong_timeout": "-2s"}}'
    cfg = load_config(_write(tmp_path, "c.json", text), {}).config
    assert (cfg.client.ping_interval, cfg.client.pong_timeout) == (-1.0, -2.0)


def test_nested_default_objects_keep_their_defaults(tmp_path: Path) -> None:
    text = '{"prometheus": {"enabled": true}, "health": null}'
    cfg = load_config(_write(tmp_path, "c.json", text), {}).config
    assert cfg.prometheus.enabled is True
    assert cfg.prometheus.handler_prefix == "/metrics"
    assert cfg.health.handler_prefix == "/health"


# ---- env ------------------------------------------------------------------------------


def test_seed_env_vars() -> None:
    env = {
        "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": "hmac",
        "CENTRIFUGO_HTTP_API_KEY": "apikey",
        "CENTRIFUGO_ADMIN_PASSWORD": "pw",
        "CENTRIFUGO_ADMIN_SECRET": "sec",
    }
    result = load_config(None, env)
    cfg = result.config
    assert cfg.client.token.hmac_secret_key == "hmac"
    assert cfg.http_api.key == "apikey"
    assert cfg.admin.password == "pw"
    assert cfg.admin.secret == "sec"
    assert result.warnings == []


def test_env_var_name() -> None:
    assert env_var_name("client.ping_interval") == "CENTRIFUGO_CLIENT_PING_INTERVAL"
    assert (
        env_var_name("client.subscription_token.hmac_secret_key")
        == "CENTRIFUGO_CLIENT_SUBSCRIPTION_TOKEN_HMAC_SECRET_KEY"
    )


def test_env_value_types() -> None:
    env = {
        "CENTRIFUGO_ADMIN_ENABLED": "T",
        "CENTRIFUGO_HTTP_SERVER_PORT": "0x1F40",
        "CENTRIFUGO_CLIENT_CHANNEL_LIMIT": "010",
        "CENTRIFUGO_CLIENT_PING_INTERVAL": "1m",
        "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": "https://a.com  https://b.com",
        "CENTRIFUGO_ENGINE_REDIS_ADDRESS": "redis://h1:6379 redis://h2:6379",
        "CENTRIFUGO_CHANNEL_WITHOUT_NAMESPACE_PRESENCE": "1",
        "CENTRIFUGO_WORKERS": "4",
        "CENTRIFUGO_LOG_LEVEL": "",  # empty = unset
    }
    result = load_config(None, env)
    cfg = result.config
    assert cfg.admin.enabled is True
    assert cfg.http_server.port == 8000
    assert cfg.client.channel_limit == 8
    assert cfg.client.ping_interval == 60.0
    assert cfg.client.allowed_origins == ("https://a.com", "https://b.com")
    assert cfg.engine.redis.address == ("redis://h1:6379", "redis://h2:6379")
    assert cfg.channel.without_namespace.presence is True
    assert cfg.workers == 4
    assert cfg.log.level == "info"
    assert result.warnings == []


def test_env_json_list_is_single_element() -> None:
    cfg = load_config(None, {"CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": '["a"]'}).config
    assert cfg.client.allowed_origins == ('["a"]',)


def test_env_zero_is_not_replaced_by_default() -> None:
    cfg = load_config(None, {"CENTRIFUGO_CLIENT_CHANNEL_LIMIT": "0"}).config
    assert cfg.client.channel_limit == 0


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("CENTRIFUGO_ADMIN_ENABLED", "yes"),
        ("CENTRIFUGO_HTTP_SERVER_PORT", "80a"),
        ("CENTRIFUGO_CLIENT_PING_INTERVAL", "-1"),
    ],
)
def test_env_parse_failure(var: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"envconfig.Process: assigning {var} to"):
        load_config(None, {var: value})


def test_env_namespaces_names_and_per_item_vars(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.json", '{"channel": {"namespaces": [{"name": "old"}]}}')
    env = {
        "CENTRIFUGO_CHANNEL_NAMESPACES": "chat chat-v2 a.b",
        "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_JOIN_LEAVE": "true",
        "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_V2_HISTORY_SIZE": "10",
        "CENTRIFUGO_CHANNEL_NAMESPACES_CHAT_V2_HISTORY_TTL": "300s",
        "CENTRIFUGO_CHANNEL_NAMESPACES_A_B_PRESENCE": "1",
        "CENTRIFUGO_CHANNEL_NAMESPACES_OLD_PRESENCE": "1",
    }
    result = load_config(path, env)
    names = [ns.name for ns in result.config.channel.namespaces]
    assert names == ["chat", "chat-v2", "a.b"]
    chat, v2, ab = result.config.channel.namespaces
    assert chat.join_leave and ab.presence
    assert (v2.history_size, v2.history_ttl) == (10, 300.0)
    # the env list replaced the file list, so OLD is not a known item
    assert result.warnings == [
        ("unknown var in environment", {"var": "CENTRIFUGO_CHANNEL_NAMESPACES_OLD_PRESENCE"})
    ]


def test_env_namespaces_json_and_per_item_over_file_items(tmp_path: Path) -> None:
    env = {
        "CENTRIFUGO_CHANNEL_NAMESPACES": '[{"name": "news", "History_Size": 5, '
        '"history_ttl": "60s"}]',
        "CENTRIFUGO_CHANNEL_NAMESPACES_NEWS_HISTORY_SIZE": "7",
    }
    ns = load_config(None, env).config.channel.namespaces
    assert ns == (Namespace(name="news", history_size=7, history_ttl=60.0),)
    path = _write(tmp_path, "c.json", '{"channel": {"namespaces": [{"name": "file"}]}}')
    env = {"CENTRIFUGO_CHANNEL_NAMESPACES_FILE_PRESENCE": "true"}
    assert load_config(path, env).config.channel.namespaces[0].presence is True


def test_env_namespaces_bad_json() -> None:
    with pytest.raises(ConfigError, match="CENTRIFUGO_CHANNEL_NAMESPACES"):
        load_config(None, {"CENTRIFUGO_CHANNEL_NAMESPACES": "[{oops]"})
    with pytest.raises(ConfigError, match="CENTRIFUGO_CHANNEL_NAMESPACES"):
        load_config(None, {"CENTRIFUGO_CHANNEL_NAMESPACES": "[1, 2]"})


def test_unknown_env_vars_and_filters() -> None:
    env = {
        "CENTRIFUGO_UNKNOWN": "1",
        "CENTRIFUGO_TOKEN_HMAC_SECRET_KEY": "v5 name",
        "CENTRIFUGO_PORT": "tcp://10.0.0.1:8000",
        "CENTRIFUGO_SERVICE_HOST": "10.0.0.1",
        "CENTRIFUGO_PORT_8000_TCP_ADDR": "10.0.0.1",
        "CENTRIFUGO_API_2_PORT": "x",
        "CENTRIFUGO_VAR_SECRET": "x",
        "CENTRIFUGO_CONTROLLER_ENABLED": "true",
        "CENTRIFUGO_HTTP_SERVER_TLS_ENABLED": "false",
        "OTHER_VAR": "x",
    }
    warnings = load_config(None, env).warnings
    assert warnings == [
        # recognised but not implemented: says so (the TLS one is false: nothing asked)
        (NOT_IMPLEMENTED_WARNING, {"var": "CENTRIFUGO_CONTROLLER_ENABLED"}),
        ("unknown var in environment", {"var": "CENTRIFUGO_TOKEN_HMAC_SECRET_KEY"}),
        ("unknown var in environment", {"var": "CENTRIFUGO_UNKNOWN"}),
    ]


def test_unknown_file_keys(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "log_level": "debug",
            "client": {"tokn": {}, "proxy": {"connect": {}}},
            "controller": {"enabled": False},
            "channel": {"namespaces": [{"name": "ab"}, {"name": "cd", "foo": 1}]},
        }
    )
    warnings = load_config(_write(tmp_path, "c.json", text), {}).warnings
    assert [w[1]["key"] for w in warnings] == [
        "log_level",
        "client.tokn",
        "channel.namespaces.[1].foo",
    ]
    assert {w[0] for w in warnings} == {"unknown key in configuration file"}


def test_recognised_but_not_implemented_keys_warn_when_set(tmp_path: Path) -> None:
    """One list of such keys (config/schema.py): untyped ones warn when anything inside
    them is set, typed ones when they differ from their default."""
    text = json.dumps(
        {
            "client": {
                "proxy": {"connect": {"endpoint": "http://app/connect"}},  # implemented
                "channel_position_check_delay": "40s",  # the default: no warning
                "concurrency": 8,
            },
            "controller": {"enabled": False},  # nothing asked for: no warning
            "opentelemetry": {"enabled": True},
            "websocket": {"read_buffer_size": 4096},
            "channel": {
                "namespaces": [{"name": "ns", "allow_tags_filter": True}],
                "proxy": {"shared_poll_refresh": {"endpoint": "http://app/poll"}},
            },
            "engine": {"redis": {"history_use_lists": True}},
        }
    )
    result = load_config(_write(tmp_path, "c.json", text), {})
    keys = sorted(str(f["key"]) for m, f in result.warnings if m == NOT_IMPLEMENTED_WARNING)
    assert keys == [
        "channel.namespaces.[0].allow_tags_filter",
        "channel.proxy.shared_poll_refresh",
        "client.concurrency",
        "engine.redis.history_use_lists",
        "opentelemetry",
        "websocket.read_buffer_size",
    ]
    assert all(m == NOT_IMPLEMENTED_WARNING for m, _ in result.warnings)


def test_not_implemented_flags_warn(tmp_path: Path) -> None:
    """A not-implemented block's flag is accepted, and the warning says it does nothing;
    the helm chart's --uni_grpc.port is implemented (typed, no warning)."""
    flags = {"uni_grpc.port": 11000, "map_broker.type": "memory", "opentelemetry.enabled": True}
    result = load_config(None, {}, flags)
    keys = sorted(str(f["key"]) for m, f in result.warnings if m == NOT_IMPLEMENTED_WARNING)
    assert keys == ["map_broker", "opentelemetry"]
    assert result.config.uni_grpc.port == 11000
    env = {"CENTRIFUGO_WEBTRANSPORT_ENABLED": "true", "CENTRIFUGO_CONTROLLER_ENABLED": "false"}
    result = load_config(None, env)
    assert result.warnings == [
        (NOT_IMPLEMENTED_WARNING, {"var": "CENTRIFUGO_WEBTRANSPORT_ENABLED"})
    ]


# ---- precedence -----------------------------------------------------------------------


def test_precedence_flags_env_file_default(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "c.json",
        '{"http_server": {"port": 7000, "address": "1.1.1.1"}, "log": {"level": "debug"},'
        ' "admin": {"enabled": false}}',
    )
    env = {
        "CENTRIFUGO_HTTP_SERVER_PORT": "7500",
        "CENTRIFUGO_HTTP_SERVER_ADDRESS": "2.2.2.2",
        "CENTRIFUGO_ADMIN_ENABLED": "false",
    }
    flags = {"http_server.port": "9000", "admin.enabled": True, "broker.enabled": True}
    cfg = load_config(path, env, flags).config
    assert cfg.http_server.port == 9000  # flag beats env and file
    assert cfg.admin.enabled is True  # flag beats env
    assert cfg.http_server.address == "2.2.2.2"  # env beats file
    assert cfg.log.level == "debug"  # file beats default
    assert cfg.client.channel_limit == 128  # default


def test_unknown_flag_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown flag"):
        load_config(None, {}, {"nope.x": 1})


# ---- validation -----------------------------------------------------------------------


def _with_ns(**opts: object) -> Config:
    ns = Namespace(name="chat", **opts)  # type: ignore[arg-type]
    return Config(channel=ChannelConfig(namespaces=(ns,)))


def _with_client(**opts: object) -> Config:
    return Config(client=ClientConfig(**opts))  # type: ignore[arg-type]


def test_validate_defaults_ok() -> None:
    validate(Config())
    validate(_with_ns(history_size=10, history_ttl=300.0, force_recovery=True))
    validate(_with_client(ping_interval=-1.0, pong_timeout=-1.0))
    validate(_with_client(ping_interval=25.0, pong_timeout=-1.0))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            Config(channel=ChannelConfig(namespaces=(Namespace(name="a"),))),
            "namespace a: invalid namespace name – a (must match ^[-a-zA-Z0-9_.]{2,}$ "
            "regular expression)",
        ),
        (
            Config(channel=ChannelConfig(namespaces=(Namespace(name="x y"),))),
            "invalid namespace name – x y",
        ),
        (
            Config(channel=ChannelConfig(namespaces=(Namespace(name="ab"), Namespace(name="ab")))),
            "namespace name must be unique: ab",
        ),
        (_with_ns(history_size=1, history_ttl=1.5), "sub-second precision is not supported"),
        (
            _with_ns(history_size=1, history_ttl=1, history_meta_ttl=0.5),
            "sub-second precision is not supported",
        ),
        (
            Config(channel=ChannelConfig(history_meta_ttl=0.5)),
            "sub-second precision is not supported",
        ),
        (_with_ns(history_size=1), "both history size and history ttl required for history"),
        (_with_ns(history_ttl=10.0), "both history size and history ttl required for history"),
        (
            _with_ns(history_size=1, history_ttl=100.0, history_meta_ttl=50.0),
            "history meta ttl (50s) can not be less than history ttl (1m40s)",
        ),
        (
            Config(
                channel=ChannelConfig(
                    history_meta_ttl=10.0,
                    without_namespace=ChannelOptions(history_size=1, history_ttl=20.0),
                )
            ),
            "history meta ttl (10s)",
        ),
        (_with_ns(force_recovery=True), "required for recovery"),
        (_with_ns(channel_regex="(unclosed"), "error compiling channel regex"),
        (_with_ns(allowed_delta_types=("xdelta",)), "unknown allowed delta type: xdelta"),
        (_with_ns(force_recovery_mode="fast"), "unknown recovery mode: fast"),
        (_with_ns(publication_data_format="xml"), "unknown publication data format: xml"),
        (
            Config(channel=ChannelConfig(publication_data_format="xml")),
            "unknown publication data format: xml",
        ),
        (Config(engine=EngineConfig(type="nats")), "unknown engine type: nats"),
        (
            _with_client(
                subscribe_to_user_personal_channel=PersonalChannelConfig(
                    enabled=True, personal_channel_namespace="personal"
                )
            ),
            "namespace for user personal channel not found: personal",
        ),
        (
            _with_client(
                subscribe_to_user_personal_channel=PersonalChannelConfig(
                    enabled=True, single_connection=True
                )
            ),
            "presence must be enabled",
        ),
        (
            _with_client(token=TokenConfig(audience="a", audience_regex="b")),
            "client.token: can not use both audience and audience_regex",
        ),
        (
            _with_client(subscription_token=SubscriptionTokenConfig(issuer="a", issuer_regex="b")),
            "client.subscription_token: can not use both issuer and issuer_regex",
        ),
        (_with_client(token=TokenConfig(audience_regex="(")), "client.token.audience_regex"),
        (
            _with_client(token=TokenConfig(user_id_claim="user-id")),
            "client.token.user_id_claim must match ^[a-zA-Z_]+$ regular expression",
        ),
        (
            _with_client(ping_interval=8.0, pong_timeout=8.0),
            "ping_interval (8s) must be greater than pong_timeout (8s)",
        ),
        (_with_client(ping_interval=-1.0), "must be greater than pong_timeout"),
        (Config(http_api=HTTPAPIConfig(error_mode="json")), "unknown http_api.error_mode: json"),
    ],
)
def test_validate_errors(config: Config, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate(config)
    assert message in str(info.value)


def test_personal_channel_ok_with_presence() -> None:
    personal = PersonalChannelConfig(
        enabled=True, personal_channel_namespace="me", single_connection=True
    )
    cfg = Config(
        client=ClientConfig(subscribe_to_user_personal_channel=personal),
        channel=ChannelConfig(namespaces=(Namespace(name="me", presence=True),)),
    )
    validate(cfg)


# ---- dumping --------------------------------------------------------------------------


def test_config_to_dict_round_trips(tmp_path: Path) -> None:
    data = config_to_dict(_with_ns(history_size=10, history_ttl=300.0))
    assert data["client"]["ping_interval"] == "25s"  # type: ignore[index]
    assert data["channel"]["history_meta_ttl"] == "720h0m0s"  # type: ignore[index]
    assert data["engine"]["redis"]["address"] == ["redis://127.0.0.1:6379"]  # type: ignore[index]
    path = _write(tmp_path, "c.json", json.dumps(data))
    result = load_config(path, {})
    assert result.warnings == []
    assert result.config == _with_ns(history_size=10, history_ttl=300.0)


def test_known_env_vars() -> None:
    cfg = dataclasses.replace(Config(), channel=ChannelConfig(namespaces=(Namespace(name="a-b"),)))
    pairs = dict(known_env_vars(cfg))
    assert pairs["CENTRIFUGO_CLIENT_PING_INTERVAL"] == "25s"
    assert pairs["CENTRIFUGO_ADMIN_ENABLED"] == "false"
    assert pairs["CENTRIFUGO_HTTP_SERVER_PORT"] == "8000"
    assert pairs["CENTRIFUGO_ENGINE_REDIS_ADDRESS"] == "redis://127.0.0.1:6379"
    assert pairs["CENTRIFUGO_CHANNEL_NAMESPACES"] == "a-b"
    assert pairs["CENTRIFUGO_CHANNEL_NAMESPACES_A_B_PRESENCE"] == "false"
    assert pairs["CENTRIFUGO_WORKERS"] == "0"
    names = [name for name, _ in known_env_vars(Config())]
    assert names == sorted(names)
    # every listed var is accepted without an unknown-var warning
    assert load_config(None, dict(known_env_vars(cfg))).warnings == []


def test_readme_lists_what_schema_lists() -> None:
    """The README's not-implemented list is generated: run scripts/not_implemented.py --write."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("ni", root / "scripts" / "not_implemented.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    block = module.render()
    assert (
        "`tls_autocert` (refused when enabled)" in block
        and "`allow_tags_filter` (refused)" in block
    )
    assert "`read_buffer_size`," in block  # warned only
    assert module.current((root / "README.md").read_text()) == block
