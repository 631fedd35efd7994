"""aiohttp's request-error log, routed through relay's logger with client errors as one line.

aiohttp logs every failed request with a traceback at ERROR level, including a malformed
request (negative ``Content-Length``, ``Transfer-Encoding`` with ``Content-Length``) and a
client that leaves mid-body. Those are the client's errors, not the server's: they become
one INFO line. Any other failure keeps its traceback.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp.http_exceptions import HttpProcessingError

from relay.log import get_logger

__all__ = ["ClientErrorFilter", "http_logger"]

#: what a client's request can raise in aiohttp or in a handler reading its body
CLIENT_ERRORS = (HttpProcessingError, ConnectionError, asyncio.IncompleteReadError)


class ClientErrorFilter(logging.Filter):
    """Rewrites the record of a client error into one INFO line without a traceback."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, CLIENT_ERRORS):
            detail = " ".join(str(exc).split())
            record.msg = f"{record.getMessage()}: {type(exc).__name__}: {detail}"
            record.args = None
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
            return self.logger.isEnabledFor(logging.INFO)  # the level asked for was ERROR
        return True


def http_logger() -> logging.Logger:
    """The logger to give aiohttp's request handler (``relay.http``, filtered once)."""
    logger = get_logger("http")
    if not any(isinstance(f, ClientErrorFilter) for f in logger.filters):
        logger.addFilter(ClientErrorFilter(logger))
    return logger
