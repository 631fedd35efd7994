"""The batch method of the server API executor, as a mixin of ``Executor``.

Publishes of a batch are validated here and handed to the node together, so that each
shard owner gets them as one message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from relay.api.params import BatchParams
from relay.api.payloads import Result, error_dict, position_result, publish_payload
from relay.api.requests import METHODS, BatchCommand
from relay.engines.base import PublishOptions
from relay.errors import API_ERROR_NOT_FOUND, ERROR_BAD_REQUEST, ERROR_INTERNAL, ReplyError
from relay.protocol.api_requests import PublishRequest
from relay.protocol.messages import Publication

if TYPE_CHECKING:
    from relay.config import ChannelOptions
    from relay.node import Node

log = logging.getLogger("relay.api")

__all__ = ["BatchMixin"]

_NO_REPLY: Result = {}
#: per channel of a batch (and per namespace, keyed ``(name,)``): its options, publish
#: options and effective data format
_ChannelMemo = dict[str | tuple[str], tuple["ChannelOptions", PublishOptions, str]]


class BatchMixin:
    """``batch`` and its helpers; the class using it provides ``node`` and ``call``."""

    node: Node

    if TYPE_CHECKING:

        async def call(
            self, method: str, req: Any, protocol: str = "http", decoded: bool = False
        ) -> Result: ...

    async def _batch_request(self, req: BatchParams) -> Result:
        return await self.batch(req.get("commands") or [], bool(req.get("parallel", False)))

    async def batch(self, commands: list[BatchCommand], parallel: bool = False) -> Result:
        """``{"replies": [...]}`` in command order (``{}`` for no commands).

        ``commands`` are as ``decode_request("batch", ...)`` leaves them.

        Publishes are grouped so that a batch reaches each shard owner as one message:
        all of them when ``parallel``, runs of consecutive ones otherwise (so the order
        between a publish and other commands is kept).
        """
        if not commands:
            return {}
        replies: list[Result] = [_NO_REPLY] * len(commands)  # every slot is replaced
        run: list[tuple[int, PublishRequest]] = []
        others: list[int] = []
        for i, command in enumerate(commands):
            if type(command) is PublishRequest:
                run.append((i, command))
                continue
            if parallel:
                others.append(i)
                continue
            await self._flush_publishes(run, replies)
            run = []
            replies[i] = await self._batch_one(command)
        if parallel:
            results: list[Result] = list(
                await asyncio.gather(
                    *(self._batch_one(commands[i]) for i in others),
                    self._flush_publishes(run, replies),
                )
            )[: len(others)]
            for i, reply in zip(others, results, strict=True):
                replies[i] = reply
        else:
            await self._flush_publishes(run, replies)
        return {"replies": replies}

    async def _flush_publishes(
        self, run: list[tuple[int, PublishRequest]], replies: list[Result]
    ) -> Result:
        if not run:
            return {}
        node = self.node
        started = time.monotonic()
        items: list[tuple[str, Publication, PublishOptions]] = []
        slots: list[int] = []
        memo: _ChannelMemo = {}
        check_data_format = node.check_data_format
        for i, req in run:
            known = memo.get(req.channel)
            if (
                known is None
                or req.b64data
                or req.skip_history
                or req.idempotency_key
                or req.version
            ):
                try:
                    items.append(self._publish_item(req, memo))
                    slots.append(i)
                except ReplyError as exc:
                    node.metrics.api_error("publish", str(exc.error.code))
                    replies[i] = {"error": error_dict(exc.error)}
                continue
            # The common item (a channel seen before in this batch, raw JSON data): the
            # same checks as _publish_item, inline (raw_data, the default data format).
            data = bytes(req.data)
            if b"\n" in data:
                data = data.replace(b"\n", b"")
            if known[2] or not data:
                try:
                    check_data_format(known[0], data, True)
                except ReplyError as exc:
                    node.metrics.api_error("publish", str(exc.error.code))
                    replies[i] = {"error": error_dict(exc.error)}
                    continue
            delta = req.delta or known[0].delta_publish
            pub = Publication(data, None, 0, req.tags or None, 0, True, delta)
            items.append((req.channel, pub, known[1]))
            slots.append(i)
        outcomes = await node.publish_many(items) if items else []
        for i, item, outcome in zip(slots, items, outcomes, strict=True):
            if isinstance(outcome, ReplyError):  # an engine's failure: 100, as one publish
                log.error("publish to %s failed: %r", item[0], outcome)
                node.metrics.api_error("publish", str(ERROR_INTERNAL.code))
                replies[i] = {"error": error_dict(ERROR_INTERNAL)}
                continue
            offset, epoch = outcome[0]
            position = {"offset": offset, "epoch": epoch} if offset and epoch else None
            replies[i] = {"publish": position or position_result(outcome[0])}
        node.metrics.api_commands("publish", len(run), time.monotonic() - started)
        return {}

    def _publish_item(
        self, req: PublishRequest, memo: _ChannelMemo
    ) -> tuple[str, Publication, PublishOptions]:
        """Validate one publish request into an engine item (same checks as ``publish``).

        ``memo`` keeps each channel's options for the rest of the batch (a batch usually
        repeats a few channels many times), and each namespace's (a batch of many
        distinct channels usually has few namespaces).
        """
        channel = req.channel
        if not channel:
            raise ReplyError(ERROR_BAD_REQUEST)
        data, data_json = publish_payload(req)
        skip, key, version = req.skip_history, req.idempotency_key, req.version
        own = skip or key or version  # options of this item only
        known = memo.get(channel) if not own else None
        if known is None:
            node = self.node
            namespace = (node.rules.namespace_of(channel)[0],)
            known = memo.get(namespace) if not own else None
            if known is None:
                opts = node.rules.resolve(channel)  # 102 for an unknown namespace
                fmt = opts.publication_data_format or node.config.channel.publication_data_format
                popts = node.publish_options(opts, skip, key, version, req.version_epoch)
                known = (opts, popts, fmt)
                if not own:
                    memo[namespace] = known
            if not own:
                memo[channel] = known
        self.node.check_data_format(known[0], data, data_json)
        delta = req.delta or known[0].delta_publish
        pub = Publication(data, None, 0, req.tags or None, 0, data_json, delta)
        return channel, pub, known[1]

    async def _batch_one(self, command: BatchCommand) -> Result:
        """One (decoded) batch element: ``null`` -> 107, no known method -> 104."""
        try:
            if command is None:
                raise ReplyError(ERROR_BAD_REQUEST)
            if isinstance(command, PublishRequest):
                return {"publish": await self.call("publish", command, decoded=True)}
            method = next((m for m in METHODS if m in command), None)
            if method is None:
                raise ReplyError(API_ERROR_NOT_FOUND)
            return {method: await self.call(method, command[method], decoded=True)}
        except ReplyError as exc:
            return {"error": error_dict(exc.error)}
