"""The ``relay`` command line: Centrifugo v6's root command, flags and sub-commands.

The root command starts the server; sub-commands are ``version``, ``genconfig``,
``checkconfig``, ``gentoken``, ``gensubtoken``, ``checktoken``, ``checksubtoken``,
``defaultconfig`` and ``defaultenv``. Configuration logic lives in :mod:`relay.config`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import secrets
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from typing import NoReturn

from relay import CENTRIFUGO_VERSION, __version__
from relay.config import (
    Config,
    LoadResult,
    TokenConfig,
    config_to_dict,
    format_duration,
    known_env_vars,
    load_config,
    validate,
)
from relay.config.load import NOT_IMPLEMENTED_WARNING as NOT_IMPLEMENTED
from relay.errors import ConfigError
from relay.log import get_logger, setup_logging

__all__ = ["main", "build_parser"]

_BOOL_FLAGS = (
    "admin.enabled",
    "admin.external",
    "admin.insecure",
    "prometheus.enabled",
    "health.enabled",
    "swagger.enabled",
    "debug.enabled",
    "client.insecure",
    "http_api.insecure",
    "http_api.external",
    "broker.enabled",
    "presence_manager.enabled",
    "grpc_api.enabled",
    "uni_grpc.enabled",
    "uni_websocket.enabled",
    "uni_sse.enabled",
    "uni_http_stream.enabled",
    "sse.enabled",
    "http_stream.enabled",
    "init.enabled",
)
_STR_FLAGS = (
    "http_server.internal_address",
    "http_server.internal_port",
    "log.level",
    "log.file",
    "pid_file",
    "engine.type",
    "broker.type",
    "presence_manager.type",
    "map_broker.type",
    "grpc_api.port",  # the helm chart passes these two
    "uni_grpc.port",
)
_CONFIG_FLAGS = (
    *_BOOL_FLAGS,
    *_STR_FLAGS,
    "http_server.port",
    "http_server.address",
    "workers",
)
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}
_EXTENSIONS = (".json", ".yaml", ".yml", ".toml")
_HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"]


def _flag_bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {text!r}")


def _fail(message: str, stream: str = "stdout") -> NoReturn:
    print(message, file=sys.stderr if stream == "stderr" else sys.stdout)
    sys.exit(1)


# ---- parser -----------------------------------------------------------------------------


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    sup = argparse.SUPPRESS
    parser.add_argument("-c", "--config", default="config.json", help="path to config file")
    parser.add_argument("-p", "--http_server.port", dest="http_server.port", default=sup)
    parser.add_argument("-a", "--http_server.address", dest="http_server.address", default=sup)
    parser.add_argument("--workers", dest="workers", type=int, default=sup, help="relay workers")
    for name in _STR_FLAGS:
        parser.add_argument(f"--{name}", dest=name, default=sup)
    for name in _BOOL_FLAGS:
        parser.add_argument(
            f"--{name}", dest=name, nargs="?", const=True, type=_flag_bool, default=sup
        )


def _sub(
    subs: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_text: str
) -> argparse.ArgumentParser:
    parser = subs.add_parser(name, help=help_text)
    parser.add_argument("-c", "--config", dest="sub_config", default=argparse.SUPPRESS)
    return parser


def _add_token_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-u", "--user", default="", help="user ID, empty for anonymous")
    parser.add_argument("-t", "--ttl", type=int, default=604800, help="token TTL in seconds")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the token")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree: root flags (server) plus Centrifugo's sub-commands."""
    parser = argparse.ArgumentParser(
        prog="relay", description="relay: a Centrifugo v6 compatible real-time server"
    )
    _add_config_flags(parser)
    subs = parser.add_subparsers(dest="command")
    _sub(subs, "version", "print version")
    _sub(subs, "genconfig", "generate a minimal config file")
    check = _sub(subs, "checkconfig", "check a config file")
    check.add_argument("-s", "--strict", action="store_true", help="fail on unknown keys")
    _add_token_flags(_sub(subs, "gentoken", "generate a connection JWT"))
    gensub = _sub(subs, "gensubtoken", "generate a subscription JWT")
    _add_token_flags(gensub)
    gensub.add_argument("-s", "--channel", default="")
    _sub(subs, "checktoken", "check a connection JWT").add_argument("token")
    _sub(subs, "checksubtoken", "check a subscription JWT").add_argument("token")
    default = _sub(subs, "defaultconfig", "generate the full default config")
    default.add_argument("--dry-run", action="store_true", help="print instead of writing")
    default.add_argument("--base", default="", help="accepted for compatibility")
    env = _sub(subs, "defaultenv", "print every known env var with its default")
    env.add_argument("--base", default="", help="accepted for compatibility")
    env.add_argument("--base-non-zero-only", action="store_true", help="skip zero values")
    return parser


def _config_path(args: argparse.Namespace) -> str:
    return str(getattr(args, "sub_config", args.config))


def _explicit_flags(args: argparse.Namespace) -> dict[str, object]:
    values = vars(args)
    return {name: values[name] for name in _CONFIG_FLAGS if name in values}


def _load(args: argparse.Namespace, flags: Mapping[str, object] | None = None) -> LoadResult:
    try:
        return load_config(_config_path(args), os.environ, flags)
    except ConfigError as exc:
        _fail(f"error getting config: {exc}")


# ---- root command: serve ----------------------------------------------------------------


def _insecure_warnings(config: Config) -> list[str]:
    checks = (
        (config.client.insecure, "INSECURE client mode enabled"),
        (config.http_api.insecure, "INSECURE HTTP API mode enabled"),
        (config.admin.insecure, "INSECURE admin mode enabled"),
        (
            config.client.insecure_skip_token_signature_verify,
            "INSECURE skip token signature verify mode enabled",
        ),
    )
    return [f"{text}, make sure you understand risks" for on, text in checks if on]


def _check_tls(config: Config) -> None:
    """Load every enabled TLS block once before any process starts (as Centrifugo's
    fatal "can not get TLS config")."""
    from relay.transports import tls

    http = config.http_server
    blocks = [("http_server.tls", http.tls), ("http_server.internal_tls", http.internal_tls)]
    if config.grpc_api.enabled:
        blocks.append(("grpc_api.tls", config.grpc_api.tls))
    for entity, block in blocks:
        if block.enabled:
            tls.server_context(block, entity)


def _serve(args: argparse.Namespace) -> None:
    try:
        result = load_config(_config_path(args), os.environ, _explicit_flags(args))
    except ConfigError as exc:
        _fail(f"error getting config: {exc}", "stderr")
    try:
        validate(result.config)
    except ConfigError as exc:
        _fail(f"error validating config: {exc}", "stderr")
    config = result.config
    if result.refused:
        _fail(
            f"{result.refused[0]} is set, but relay does not implement it:"
            " refusing to start without what it asks for (relay checkconfig lists such keys)",
            "stderr",
        )
    try:
        _check_tls(config)
    except ValueError as exc:
        _fail(f"can not get TLS config: {exc}", "stderr")
    setup_logging(config.log.level, config.log.file)
    log = get_logger("relay")
    if not result.file_found:
        log.warning("config file not found, continue using environment and flag options")
    for message in _insecure_warnings(config):
        log.warning(message)
    for message, fields in result.warnings:
        log.warning(message, extra={"fields": fields})
    # The front process: it must not import aiohttp or the protocol stack.
    front = importlib.import_module("relay.process.front")
    front.serve(config)


# ---- sub-commands -----------------------------------------------------------------------


def _cmd_version(args: argparse.Namespace) -> None:
    print(f"relay v{__version__} (Centrifugo v{CENTRIFUGO_VERSION} compatible)")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value), ensure_ascii=False)


def _toml_dump(data: Mapping[str, object], table: str = "") -> str:
    """A small TOML writer for the config shapes relay emits."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = (f"[{table}]\n" if table and lines else "") + "".join(line + "\n" for line in lines)
    for key, value in data.items():
        if isinstance(value, dict):
            sub = _toml_dump(value, f"{table}.{key}" if table else key)
            out += ("\n" if out else "") + sub
    return out


def _serialize(data: Mapping[str, object], path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if ext in (".yaml", ".yml"):
        import yaml  # type: ignore[import-untyped]

        return str(yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True))
    return _toml_dump(data)


def _write_new(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _check_output_path(path: str) -> None:
    if os.path.exists(path):
        _fail(f"output config file already exists: {path}")
    if os.path.splitext(path)[1].lower() not in _EXTENSIONS:
        _fail("output config file must have one of supported extensions: json, yaml, yml, toml")


def _random_key(nbytes: int) -> str:
    return secrets.token_urlsafe(nbytes)


def _cmd_genconfig(args: argparse.Namespace) -> None:
    path = _config_path(args)
    _check_output_path(path)
    data = {
        "client": {
            "token": {"hmac_secret_key": _random_key(64)},
            "allowed_origins": [],
        },
        "admin": {"enabled": False, "password": _random_key(16), "secret": _random_key(64)},
        "http_api": {"key": _random_key(64)},
    }
    _write_new(path, _serialize(data, path))
    try:
        validate(load_config(path, os.environ).config)
    except ConfigError as exc:
        os.remove(path)
        _fail(f"error: {exc}")


def _cmd_checkconfig(args: argparse.Namespace) -> None:
    result = _load(args)
    if not result.file_found:
        _fail("config file not found")
    try:
        validate(result.config)
    except ConfigError as exc:
        _fail(f"error validating config: {exc}")
    missing = [
        str(f.get("key") or f.get("var")) for m, f in result.warnings if m == NOT_IMPLEMENTED
    ]
    for key in missing:  # listed always; with --strict they fail the check too
        print(f"{NOT_IMPLEMENTED}: {key}", file=sys.stderr)
    if result.refused:  # `relay` would not start with them
        _fail(f"relay refuses to start with: {', '.join(result.refused)}")
    if args.strict:
        unknown = [str(f["key"]) for m, f in result.warnings if m.startswith("unknown key")]
        if unknown:
            _fail(f"unknown keys in config: {', '.join(unknown)}")
        if missing:
            _fail(f"keys relay does not implement: {', '.join(missing)}")


def _jwt_encode(claims: dict[str, object], key: str) -> str:
    import jwt  # lazily: the front process (root command) never needs it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns on short HMAC keys Centrifugo accepts
        return jwt.encode(claims, key, algorithm="HS256")


def _token_claims(user: str, ttl: int, token: TokenConfig) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {}
    if user:
        claims["sub"] = user
        if token.user_id_claim:
            claims[token.user_id_claim] = user
    claims["iat"] = now
    if ttl > 0:
        claims["exp"] = now + ttl
    return claims


def _describe(user: str, channel: str | None, ttl: int) -> str:
    who = f'user "{user}"' if user else "anonymous user"
    if channel is not None:
        who += f' and channel "{channel}"'
    exp = f"with expiration TTL {format_duration(float(ttl))}" if ttl > 0 else "without expiration"
    return f"HMAC SHA-256 JWT for {who} {exp}:"


def _emit_token(args: argparse.Namespace, token: str, channel: str | None) -> None:
    if args.quiet:
        print(token, end="")
        return
    print(_describe(args.user, channel, args.ttl))
    print(token)


def _sub_token_config(config: Config) -> TokenConfig:
    sub = config.client.subscription_token
    return sub if sub.enabled else config.client.token


def _cmd_gentoken(args: argparse.Namespace) -> None:
    token_cfg = _load(args).config.client.token
    if not token_cfg.hmac_secret_key:
        _fail("error creating HMAC token: no HMAC secret key set (client.token.hmac_secret_key)")
    claims = _token_claims(args.user, args.ttl, token_cfg)
    _emit_token(args, _jwt_encode(claims, token_cfg.hmac_secret_key), None)


def _cmd_gensubtoken(args: argparse.Namespace) -> None:
    if not args.channel:
        _fail('Error: required flag(s) "channel" not set')
    token_cfg = _sub_token_config(_load(args).config)
    if not token_cfg.hmac_secret_key:
        _fail("error creating HMAC token: no HMAC secret key set")
    claims = _token_claims(args.user, args.ttl, token_cfg)
    claims["channel"] = args.channel
    _emit_token(args, _jwt_encode(claims, token_cfg.hmac_secret_key), args.channel)


def _verify(token: str, cfg: TokenConfig) -> dict[str, object]:
    import jwt

    if not cfg.hmac_secret_key:
        _fail("token error: no HMAC secret key set")
    options = {"verify_aud": bool(cfg.audience)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            claims: dict[str, object] = jwt.decode(
                token,
                cfg.hmac_secret_key,
                algorithms=_HMAC_ALGORITHMS,
                audience=cfg.audience or None,
                issuer=cfg.issuer or None,
                options=options,  # type: ignore[arg-type]
            )
    except jwt.PyJWTError as exc:
        _fail(f"token error: {exc}")
    return claims


def _token_user(claims: Mapping[str, object], cfg: TokenConfig) -> str:
    return str(claims.get(cfg.user_id_claim or "sub", ""))


def _cmd_checktoken(args: argparse.Namespace) -> None:
    cfg = _load(args).config.client.token
    claims = _verify(args.token, cfg)
    user = _token_user(claims, cfg)
    print(f'valid token for user "{user}" with claims: {json.dumps(claims)}')


def _cmd_checksubtoken(args: argparse.Namespace) -> None:
    cfg = _sub_token_config(_load(args).config)
    claims = _verify(args.token, cfg)
    user, channel = _token_user(claims, cfg), claims.get("channel", "")
    print(
        f'valid subscription token for user "{user}" and channel "{channel}" '
        f"with claims: {json.dumps(claims)}"
    )


def _cmd_defaultconfig(args: argparse.Namespace) -> None:
    data = config_to_dict(Config())
    if args.dry_run:
        print(json.dumps(data, indent=2))
        return
    path = _config_path(args)
    _check_output_path(path)
    _write_new(path, _serialize(data, path))


def _cmd_defaultenv(args: argparse.Namespace) -> None:
    for name, value in known_env_vars(Config()):
        if args.base_non_zero_only and value in ("", "0", "false", "0s"):
            continue
        print(f"{name}={value}")


_COMMANDS: dict[str, Callable[[argparse.Namespace], None]] = {
    "version": _cmd_version,
    "genconfig": _cmd_genconfig,
    "checkconfig": _cmd_checkconfig,
    "gentoken": _cmd_gentoken,
    "gensubtoken": _cmd_gensubtoken,
    "checktoken": _cmd_checktoken,
    "checksubtoken": _cmd_checksubtoken,
    "defaultconfig": _cmd_defaultconfig,
    "defaultenv": _cmd_defaultenv,
}


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``relay`` / ``python -m relay``; exits 1 on errors."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    handler = _COMMANDS.get(args.command or "")
    if handler is None:
        _serve(args)
    else:
        handler(args)
