"""Tests for relay.cli: root command (serve) and every sub-command's output."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from relay import __version__
from relay.cli import main
from relay.config import Config, load_config

KEY = "k" * 40
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for var in list(os.environ):
        if var.startswith("CENTRIFUGO_"):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    yield
    logger = logging.getLogger("relay")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _config(tmp_path: Path, data: dict[str, object], name: str = "config.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def _token_config(tmp_path: Path, **client: object) -> str:
    return _config(tmp_path, {"client": {"token": {"hmac_secret_key": KEY}, **client}})


# ---- version --------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["version"]) == 0
    assert capsys.readouterr().out == f"relay v{__version__} (Centrifugo v6.6.2 compatible)\n"


def test_python_m_relay_version() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "relay", "version"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"relay v{__version__} (Centrifugo v6.6.2 compatible)\n"


# ---- genconfig ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["config.json", "c.yaml", "c.yml", "c.toml"])
def test_genconfig(tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["genconfig"] if name == "config.json" else ["genconfig", "-c", name]
    assert _run(args) == 0
    path = tmp_path / name
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    result = load_config(str(path), {})
    assert result.warnings == []
    cfg = result.config
    assert len(cfg.client.token.hmac_secret_key) == 86  # 64 bytes base64url, no padding
    assert len(cfg.admin.password) == 22
    assert len(cfg.admin.secret) == 86
    assert len(cfg.http_api.key) == 86
    assert cfg.client.allowed_origins == ()
    assert cfg.admin.enabled is False
    assert "allowed_origins" in path.read_text()
    assert capsys.readouterr().out == ""


def test_genconfig_refuses_existing_and_bad_extension(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert _run(["genconfig"]) == 1
    assert "already exists" in capsys.readouterr().out
    assert _run(["genconfig", "-c", "c.ini"]) == 1
    assert "supported extensions" in capsys.readouterr().out
    assert not (tmp_path / "c.ini").exists()


def test_genconfig_validation_failure_deletes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CENTRIFUGO_ENGINE_TYPE", "bogus")
    assert _run(["genconfig", "-c", "x.json"]) == 1
    assert capsys.readouterr().out.startswith("error")
    assert not (tmp_path / "x.json").exists()


# ---- checkconfig ----------------------------------------------------------------------


def test_checkconfig_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _config(tmp_path, {"log_level": "debug"})
    assert _run(["checkconfig"]) == 0
    assert capsys.readouterr().out == ""


def test_checkconfig_strict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, {"log_level": "debug", "client": {"x": 1}}, "c.json")
    assert _run(["checkconfig", "-c", path, "--strict"]) == 1
    assert capsys.readouterr().out == "unknown keys in config: log_level, client.x\n"


def test_checkconfig_lists_keys_relay_does_not_implement(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {"opentelemetry": {"enabled": True}, "websocket": {"read_buffer_size": 4096}}
    path = _config(tmp_path, body, "n.json")
    assert _run(["checkconfig", "-c", path]) == 0
    err = capsys.readouterr().err.splitlines()
    prefix = "config key is not implemented by relay and has no effect: "
    assert err == [prefix + "opentelemetry", prefix + "websocket.read_buffer_size"]
    assert _run(["checkconfig", "-c", path, "--strict"]) == 1
    out = capsys.readouterr().out
    assert out == "keys relay does not implement: opentelemetry, websocket.read_buffer_size\n"


def test_checkconfig_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["checkconfig", "-c", "missing.json"]) == 1
    assert capsys.readouterr().out == "config file not found\n"
    (tmp_path / "bad.json").write_text("{")
    assert _run(["checkconfig", "-c", "bad.json"]) == 1
    assert capsys.readouterr().out.startswith("error getting config: error reading config file")
    _config(tmp_path, {"engine": {"type": "nats"}}, "e.json")
    assert _run(["checkconfig", "-c", "e.json"]) == 1
    assert capsys.readouterr().out == "error validating config: unknown engine type: nats\n"


# ---- gentoken / gensubtoken -----------------------------------------------------------


def test_gentoken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _token_config(tmp_path)
    assert _run(["gentoken", "-u", "42"]) == 0
    head, token, tail = capsys.readouterr().out.split("\n")
    assert head == 'HMAC SHA-256 JWT for user "42" with expiration TTL 168h0m0s:'
    assert tail == ""
    claims = jwt.decode(token, KEY, algorithms=["HS256"])
    assert claims["sub"] == "42"
    assert claims["exp"] - claims["iat"] == 604800
    assert abs(claims["iat"] - time.time()) < 10


def test_gentoken_anonymous_no_exp_quiet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _token_config(tmp_path)
    assert _run(["gentoken", "-t", "-1"]) == 0
    head, token, _ = capsys.readouterr().out.split("\n")
    assert head == "HMAC SHA-256 JWT for anonymous user without expiration:"
    assert set(jwt.decode(token, KEY, algorithms=["HS256"])) == {"iat"}
    assert _run(["gentoken", "-q", "-u", "u", "-t", "60"]) == 0
    out = capsys.readouterr().out
    assert "\n" not in out
    assert jwt.decode(out, KEY, algorithms=["HS256"])["sub"] == "u"


def test_gentoken_user_id_claim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _config(tmp_path, {"client": {"token": {"hmac_secret_key": KEY, "user_id_claim": "uid"}}})
    assert _run(["gentoken", "-q", "-u", "7"]) == 0
    claims = jwt.decode(capsys.readouterr().out, KEY, algorithms=["HS256"])
    assert claims["uid"] == "7" and claims["sub"] == "7"


def test_gentoken_env_key_without_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", KEY)
    assert _run(["gentoken", "-q"]) == 0
    assert jwt.decode(capsys.readouterr().out, KEY, algorithms=["HS256"])


def test_gentoken_needs_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["gentoken"]) == 1
    assert "no HMAC secret key" in capsys.readouterr().out


def test_gensubtoken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _token_config(tmp_path)
    assert _run(["gensubtoken", "-u", "42", "-s", "chat:1", "-t", "3600"]) == 0
    head, token, _ = capsys.readouterr().out.split("\n")
    assert head == 'HMAC SHA-256 JWT for user "42" and channel "chat:1" with expiration TTL 1h0m0s:'
    claims = jwt.decode(token, KEY, algorithms=["HS256"])
    assert claims["channel"] == "chat:1" and claims["sub"] == "42"


def test_gensubtoken_uses_subscription_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sub_key = "s" * 40
    _token_config(tmp_path, subscription_token={"enabled": True, "hmac_secret_key": sub_key})
    assert _run(["gensubtoken", "--channel", "c", "-q"]) == 0
    claims = jwt.decode(capsys.readouterr().out, sub_key, algorithms=["HS256"])
    assert claims["channel"] == "c" and "sub" not in claims


def test_gensubtoken_requires_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _token_config(tmp_path)
    assert _run(["gensubtoken", "-u", "1"]) == 1
    assert capsys.readouterr().out == 'Error: required flag(s) "channel" not set\n'


# ---- checktoken / checksubtoken -------------------------------------------------------


def test_checktoken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _token_config(tmp_path)
    token = jwt.encode({"sub": "bob", "info": {"a": 1}}, KEY, algorithm="HS256")
    assert _run(["checktoken", token]) == 0
    out = capsys.readouterr().out
    assert out.startswith('valid token for user "bob" with claims: ')
    assert json.loads(out.split("with claims: ", 1)[1]) == {"sub": "bob", "info": {"a": 1}}


def test_checktoken_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _token_config(tmp_path)
    bad = jwt.encode({"sub": "bob"}, "x" * 40, algorithm="HS256")
    assert _run(["checktoken", bad]) == 1
    assert capsys.readouterr().out == "token error: Signature verification failed\n"
    expired = jwt.encode({"sub": "bob", "exp": 1}, KEY, algorithm="HS256")
    assert _run(["checktoken", expired]) == 1
    assert capsys.readouterr().out == "token error: Signature has expired\n"
    assert _run(["checktoken", "garbage"]) == 1
    assert capsys.readouterr().out.startswith("token error: ")


def test_checksubtoken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _token_config(tmp_path)
    token = jwt.encode({"sub": "u1", "channel": "news"}, KEY, algorithm="HS256")
    assert _run(["checksubtoken", token]) == 0
    out = capsys.readouterr().out
    assert out.startswith('valid subscription token for user "u1" and channel "news" with claims')


# ---- defaultconfig / defaultenv -------------------------------------------------------


def test_defaultconfig_dry_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["defaultconfig", "--dry-run"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["client"]["ping_interval"] == "25s"
    assert data["http_server"]["port"] == 8000


@pytest.mark.parametrize("name", ["d.json", "d.yaml", "d.toml"])
def test_defaultconfig_writes(tmp_path: Path, name: str) -> None:
    assert _run(["defaultconfig", "-c", name]) == 0
    result = load_config(str(tmp_path / name), {})
    assert result.warnings == []
    assert result.config == Config()
    assert _run(["defaultconfig", "-c", name]) == 1  # exists


def test_defaultenv(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["defaultenv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == sorted(lines)
    assert "CENTRIFUGO_CLIENT_PING_INTERVAL=25s" in lines
    assert "CENTRIFUGO_HTTP_API_KEY=" in lines
    assert all(line.startswith("CENTRIFUGO_") and "=" in line for line in lines)
    assert _run(["defaultenv", "--base-non-zero-only"]) == 0
    assert "CENTRIFUGO_HTTP_API_KEY=" not in capsys.readouterr().out.splitlines()


# ---- root command (serve) -------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    calls: list[Config] = []
    fake = types.ModuleType("relay.process.front")
    fake.serve = calls.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "relay.process.front", fake)
    return calls


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_serve_with_flags_env_and_warnings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    served: list[Config],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _config(tmp_path, {"http_server": {"port": 7000}, "log_level": "x"})
    monkeypatch.setenv("CENTRIFUGO_HTTP_SERVER_PORT", "7500")
    monkeypatch.setenv("CENTRIFUGO_ADMIN_ENABLED", "false")
    monkeypatch.setenv("CENTRIFUGO_BOGUS", "1")
    monkeypatch.setenv("CENTRIFUGO_SVC_PORT", "1")
    argv = ["-p", "9000", "--admin.enabled", "--admin.insecure=true", "--client.insecure"]
    argv += ["--http_api.insecure=false", "--workers", "3", "--map_broker.type=redis"]
    assert _run(argv) == 0
    (cfg,) = served
    assert cfg.http_server.port == 9000
    assert cfg.admin.enabled and cfg.admin.insecure and cfg.client.insecure
    assert cfg.http_api.insecure is False
    assert cfg.workers == 3
    records = _json_lines(capsys.readouterr().err)
    messages = [r["message"] for r in records]
    assert messages == [
        "INSECURE client mode enabled, make sure you understand risks",
        "INSECURE admin mode enabled, make sure you understand risks",
        "unknown key in configuration file",
        "config key is not implemented by relay and has no effect",
        "unknown var in environment",
    ]
    assert records[2]["key"] == "log_level"
    assert records[3]["key"] == "map_broker"  # recognised, not implemented: warned
    assert records[4]["var"] == "CENTRIFUGO_BOGUS"
    assert all(r["level"] == "warn" and "time" in r for r in records)
    # A not-implemented feature switched on stops the start, naming the key.
    assert _run(["--init.enabled"]) == 1 and len(served) == 1
    assert capsys.readouterr().err.startswith("init is set, but relay does not implement it")


def test_refused_versus_warned_keys(
    tmp_path: Path, served: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    """Semantics-changing keys refuse, tuning knobs warn; blocks with an ``enabled``
    switch refuse only when switched on."""
    cases: list[tuple[dict[str, object], str | None]] = [
        ({"webtransport": {"handler_prefix": "/wt"}}, None),
        ({"webtransport": {"enabled": True}}, "webtransport"),
        ({"consumers": [{"name": "cc", "type": "kafka", "kafka": {"brokers": ["k:9092"]}}]},
         None),  # a consumer type relay does not run, not enabled: warned only
        ({"proxies": [{"name": "pp", "endpoint": "http://x"}]}, None),
        ({"client": {"proxy": {"connect": {"endpoint": "http://x"}}}}, None),
        ({"channel": {"proxy": {"map_publish": {"endpoint": "http://x"}}}},
         "channel.proxy.map_publish"),
        ({"engine": {"redis": {"history_use_lists": True}}}, "engine.redis.history_use_lists"),
        ({"channel": {"namespaces": [{"name": "ns", "allow_tags_filter": True}]}},
         "channel.namespaces.[0].allow_tags_filter"),
        ({"websocket": {"read_buffer_size": 4096}, "client": {"concurrency": 4}}, None),
        ({"uni_sse": {"enabled": True, "connect_code_to_http_response": {"enabled": True}}},
         None),
        ({"client": {"connect_code_to_unidirectional_disconnect": {"enabled": True}}}, None),
        ({"shared_poll": {"enabled": True}}, "shared_poll"),
        ({"uni_websocket": {"enabled": True, "compression": True}}, None),
    ]  # fmt: skip
    for body, key in cases:
        _config(tmp_path, body)
        before = len(served)
        code = _run([])
        err = capsys.readouterr().err
        if key is None:
            assert code == 0 and len(served) == before + 1, body
        else:
            assert code == 1 and len(served) == before, body
            assert err.startswith(f"{key} is set, but relay does not implement it"), err
    env_cases = [
        ("CENTRIFUGO_UNI_GRPC_PORT", "11000", 0),
        ("CENTRIFUGO_WEBTRANSPORT_ENABLED", "true", 1),
        ("CENTRIFUGO_WEBTRANSPORT_ENABLED", "false", 0),
        ("CENTRIFUGO_SSE_ENABLED", "true", 0),  # implemented
        ("CENTRIFUGO_PROXIES", '[{"name": "p"}]', 1),
        ("CENTRIFUGO_CHANNEL_NAMESPACES_NS_SUBSCRIBE_PROXY_NAME", "p", 1),
        ("CENTRIFUGO_USAGE_STATS_DISABLE", "true", 0),
    ]
    _config(tmp_path, {"channel": {"namespaces": [{"name": "ns"}]}})
    for var, value, expected in env_cases:
        os.environ[var] = value
        try:
            assert _run([]) == expected, var
        finally:
            del os.environ[var]
        capsys.readouterr()


def test_serve_missing_file_warns(
    monkeypatch: pytest.MonkeyPatch, served: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CENTRIFUGO_HTTP_API_INSECURE", "true")
    monkeypatch.setenv("CENTRIFUGO_CLIENT_INSECURE_SKIP_TOKEN_SIGNATURE_VERIFY", "1")
    assert _run(["--log.level", "debug"]) == 0
    assert served[0].log.level == "debug"
    messages = [r["message"] for r in _json_lines(capsys.readouterr().err)]
    assert messages == [
        "config file not found, continue using environment and flag options",
        "INSECURE HTTP API mode enabled, make sure you understand risks",
        "INSECURE skip token signature verify mode enabled, make sure you understand risks",
    ]


def test_serve_log_file(tmp_path: Path, served: list[Config]) -> None:
    log_file = tmp_path / "relay.log"
    assert _run(["-c", "none.json", "--log.file", str(log_file)]) == 0
    records = _json_lines(log_file.read_text())
    assert str(records[0]["message"]).startswith("config file not found")


def test_serve_validation_error(
    tmp_path: Path, served: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    _config(tmp_path, {"channel": {"namespaces": [{"name": "a"}]}})
    assert _run([]) == 1
    assert capsys.readouterr().err.startswith(
        "error validating config: namespace a: invalid namespace name"
    )
    assert served == []


def test_serve_unparsable_config(
    tmp_path: Path, served: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config.json").write_text("{")
    assert _run([]) == 1
    assert "error reading config file" in capsys.readouterr().err
    assert served == []


def test_serve_bad_env_bool(
    monkeypatch: pytest.MonkeyPatch, served: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CENTRIFUGO_ADMIN_ENABLED", "yes")
    assert _run([]) == 1
    assert "envconfig.Process: assigning CENTRIFUGO_ADMIN_ENABLED to" in capsys.readouterr().err


def test_every_centrifugo_root_flag_is_accepted(
    tmp_path: Path, served: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    """Centrifugo 6.9.1's root command flags (internal/config/config.go); the helm chart
    passes --grpc_api.port and --uni_grpc.port. Unimplemented ones start with a warning."""
    _config(tmp_path, {})
    argv = ["--grpc_api.port", "10000", "--uni_grpc.port", "11000", "--map_broker.type=memory"]
    for name in ("grpc_api", "uni_grpc", "uni_websocket", "uni_sse", "uni_http_stream", "sse"):
        argv.append(f"--{name}.enabled=false")
    argv += ["--http_stream.enabled=false", "--init.enabled=false"]
    assert _run(argv) == 0
    assert len(served) == 1
    records = _json_lines(capsys.readouterr().err)
    keys = {r.get("key") for r in records if r["message"].startswith("config key is not")}
    assert "map_broker" in keys and "uni_grpc" not in keys


def test_tls_that_cannot_load_is_refused_not_served_plain(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    served: list[Config],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _config(tmp_path, {"http_server": {"tls": {"enabled": True, "cert_pem": "c.pem"}}})
    assert _run([]) == 1 and served == []
    assert "can not get TLS config: http_server.tls" in capsys.readouterr().err
    _config(tmp_path, {})
    monkeypatch.setenv("CENTRIFUGO_HTTP_SERVER_INTERNAL_TLS_ENABLED", "true")
    assert _run([]) == 1 and served == []
    assert "http_server.internal_tls" in capsys.readouterr().err
    monkeypatch.setenv("CENTRIFUGO_HTTP_SERVER_INTERNAL_TLS_ENABLED", "false")  # nothing asked
    assert _run([]) == 0 and len(served) == 1
    # What relay does not implement at all (ACME, HTTP/3) stops the start too.
    monkeypatch.setenv("CENTRIFUGO_HTTP_SERVER_TLS_AUTOCERT_ENABLED", "true")
    assert _run([]) == 1 and len(served) == 1
    assert "CENTRIFUGO_HTTP_SERVER_TLS_AUTOCERT_ENABLED is set" in capsys.readouterr().err


def test_tls_loads_from_files(
    tmp_path: Path, served: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.tlsutil import make_certs

    certs = make_certs(tmp_path)
    tls = {"enabled": True, "cert_pem": str(certs.cert), "key_pem": str(certs.key)}
    _config(tmp_path, {"http_server": {"tls": tls, "internal_port": "9001"}})
    assert _run([]) == 0 and len(served) == 1
    assert served[0].http_server.tls.cert_pem == str(certs.cert)
    assert served[0].http_server.internal_port == "9001"
    _config(tmp_path, {"http_server": {"internal_port": "90a"}})
    assert _run([]) == 1 and "internal_port is not a port number" in capsys.readouterr().err


def test_bad_bool_flag_value(served: list[Config]) -> None:
    assert _run(["--admin.enabled=maybe"]) == 2


# ---- logging set-up -------------------------------------------------------------------


def test_unknown_log_level_falls_back_to_info(
    served: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["--log.level", "LOUD"]) == 0
    records = _json_lines(capsys.readouterr().err)
    assert records[0]["message"] == "unknown log level LOUD, defaulting to INFO"
    assert logging.getLogger("relay").level == logging.INFO


def test_log_levels_and_console_format(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from relay.log import get_logger, setup_logging

    setup_logging("NONE")
    get_logger("x").error("hidden")
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    setup_logging("Warn")
    log = get_logger("api")
    assert log.name == "relay.api" and get_logger("relay.api") is log
    log.info("quiet")
    log.warning("loud", extra={"fields": {"k": "v"}})
    line = capsys.readouterr().err.strip()
    assert line.endswith("WRN loud k=v")
