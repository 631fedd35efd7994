"""What every consumer shares: its failure report (log + ``consumers_errors_total``), its
retry pause, and reading publication data fields (Redis Stream fields, JetStream headers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from relay.consumers.backoff import next_backoff

if TYPE_CHECKING:
    from relay.metrics import Metrics

__all__ = ["ConsumerBase", "Backoff", "PublicationFields", "publication_params"]

log = logging.getLogger("relay.consumers")

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


class ConsumerBase:
    def __init__(self, name: str, metrics: Metrics) -> None:
        self.name = name
        self.metrics = metrics

    def failed(self, what: str, exc: BaseException | str, where: str = "") -> None:
        """Log a failure of the source or of a message, and count it."""
        self.metrics.consumer_done(self.name, errors=1)
        where = f" ({where})" if where else ""
        text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
        log.error("consumer %s: %s%s: %s", self.name, what, where, text)


class Backoff:
    """The pause before the next try: 10 ms doubling with jitter, at most 5 s."""

    def __init__(self) -> None:
        self.delay, self.retries = 0.0, 0

    async def pause(self) -> None:
        self.retries += 1
        self.delay = next_backoff(self.delay, self.retries)
        await asyncio.sleep(self.delay)

    def reset(self) -> None:
        self.delay, self.retries = 0.0, 0


class PublicationFields(NamedTuple):
    """The names of the fields (or headers) that carry a publication's options."""

    channels: str
    idempotency_key: str
    delta: str
    version: str
    version_epoch: str
    tags_prefix: str


def publication_params(
    values: Mapping[str, str], names: PublicationFields, empty_is_absent: bool
) -> tuple[list[str], dict[str, Any]]:
    """The channels and publish fields of a publication-data message. A delta or version
    that does not parse is ``ValueError``, as Go's ``strconv`` refuses it (with
    ``empty_is_absent`` an empty value counts as missing, as an absent NATS header)."""

    def get(name: str) -> str | None:
        value = values.get(name) if name else None
        return None if value is None or (empty_is_absent and not value) else value

    channels = [c for c in (get(names.channels) or "").split(",") if c]
    params: dict[str, Any] = {}
    key = get(names.idempotency_key)
    if key:
        params["idempotency_key"] = key
    delta = get(names.delta)
    if delta is not None:
        if delta not in _TRUE + _FALSE:
            raise ValueError(f"error parsing delta property {names.delta!r}")
        if delta in _TRUE:
            params["delta"] = True
    version = get(names.version)
    if version is not None:
        if not version.isdigit():
            raise ValueError(f"error parsing version property {names.version!r}")
        params["version"] = int(version)
    epoch = get(names.version_epoch)
    if epoch:
        params["version_epoch"] = epoch
    prefix = names.tags_prefix
    tags = {k[len(prefix) :]: v for k, v in values.items() if prefix and k.startswith(prefix)}
    if tags:
        params["tags"] = tags
    return channels, params
