"""Logging set-up in Centrifugo's (zerolog) style on top of stdlib :mod:`logging`.

Loggers live under the ``relay`` root logger. Extra structured fields travel as
``logger.warning("message", extra={"fields": {"key": "value"}})``.

* stderr not a TTY: one JSON object per line on stderr,
  ``{"level":"warn","var":"CENTRIFUGO_X","time":"<RFC3339>","message":"..."}``;
* stderr a TTY: readable console lines ``HH:MM:SS WRN message key=value``;
* ``log.file`` set: JSON lines are appended to that file instead.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from typing import TextIO

__all__ = ["TRACE", "setup_logging", "get_logger", "JSONFormatter", "ConsoleFormatter"]

ROOT_LOGGER = "relay"
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_LEVELS = {
    "none": logging.CRITICAL + 10,
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}
_ZEROLOG_NAMES = {
    TRACE: "trace",
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}
_CONSOLE_NAMES = {
    TRACE: "TRC",
    logging.DEBUG: "DBG",
    logging.INFO: "INF",
    logging.WARNING: "WRN",
    logging.ERROR: "ERR",
    logging.CRITICAL: "FTL",
}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def _level_name(record: logging.LogRecord, names: dict[int, str]) -> str:
    return names.get(record.levelno, record.levelname.lower())


class JSONFormatter(logging.Formatter):
    """zerolog-like JSON line: level, the extra fields, time, message."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {"level": _level_name(record, _ZEROLOG_NAMES)}
        out.update(_fields(record))
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        stamp = datetime.datetime.fromtimestamp(record.created).astimezone()
        text = stamp.isoformat(timespec="seconds")
        out["time"] = text[:-6] + "Z" if text.endswith("+00:00") else text  # Go RFC3339
        out["message"] = record.getMessage()
        return json.dumps(out, ensure_ascii=False, default=str, separators=(",", ":"))


class ConsoleFormatter(logging.Formatter):
    """Readable line for terminals: ``15:04:05 WRN message key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        parts = [stamp, _level_name(record, _CONSOLE_NAMES), record.getMessage()]
        parts.extend(f"{k}={v}" for k, v in _fields(record).items())
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _make_handler(file: str, stream: TextIO) -> logging.Handler:
    if file:
        handler: logging.Handler = logging.FileHandler(file, mode="a", encoding="utf-8")
        handler.setFormatter(JSONFormatter())
        return handler
    handler = logging.StreamHandler(stream)
    isatty = getattr(stream, "isatty", None)
    handler.setFormatter(ConsoleFormatter() if isatty and isatty() else JSONFormatter())
    return handler


def setup_logging(level: str, file: str = "") -> None:
    """Configure the ``relay`` logger (replacing previous handlers).

    ``level`` is one of none|trace|debug|info|warn|error|fatal, case-insensitive; an
    unknown level falls back to info with a WARN. ``file`` appends JSON lines there.
    """
    logger = logging.getLogger(ROOT_LOGGER)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    logger.addHandler(_make_handler(file, sys.stderr))
    logger.propagate = False
    numeric = _LEVELS.get(level.lower())
    logger.setLevel(logging.INFO if numeric is None else numeric)
    if numeric is None:
        logger.warning(f"unknown log level {level}, defaulting to INFO")


def get_logger(name: str) -> logging.Logger:
    """A logger below ``relay`` (``get_logger("api")`` -> ``relay.api``)."""
    if name == ROOT_LOGGER or name.startswith(ROOT_LOGGER + "."):
        return logging.getLogger(name)
    return logging.getLogger(f"{ROOT_LOGGER}.{name}")
