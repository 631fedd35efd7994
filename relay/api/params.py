"""Typed server API requests: what ``api/requests.py`` returns for each method.

The decoder checks every value against ``protocol/schema.py API_MESSAGES`` and returns a
dict with canonical keys only; these TypedDicts name those keys and their Python types
(``bytes`` of compact JSON text for raw JSON values). A key is absent when the request did
not carry it, carried a zero value, or ``null`` (except raw JSON, where ``null`` is
``b"null"``). ``publish`` requests are the msgspec ``PublishRequest`` of
``protocol/api_requests.py``.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "StreamPositionParams",
    "OverrideParams",
    "BroadcastParams",
    "SubscribeParams",
    "UnsubscribeParams",
    "DisconnectParams",
    "RefreshParams",
    "ChannelParams",
    "HistoryParams",
    "ChannelsParams",
    "RPCParams",
    "BatchParams",
]


class StreamPositionParams(TypedDict, total=False):
    offset: int
    epoch: str


class BoolValueParams(TypedDict, total=False):
    value: bool


class OverrideParams(TypedDict, total=False):
    presence: BoolValueParams
    join_leave: BoolValueParams
    force_recovery: BoolValueParams
    force_positioning: BoolValueParams
    force_push_join_leave: BoolValueParams


class BroadcastParams(TypedDict, total=False):
    channels: list[str]
    data: bytes
    b64data: str
    skip_history: bool
    tags: dict[str, str]
    idempotency_key: str
    delta: bool
    version: int
    version_epoch: str


class _Target(TypedDict, total=False):
    user: str
    client: str
    session: str


class SubscribeParams(_Target, total=False):
    channel: str
    expire_at: int
    info: bytes
    b64info: str
    data: bytes
    b64data: str
    recover_since: StreamPositionParams
    override: OverrideParams


class UnsubscribeParams(_Target, total=False):
    channel: str


class DisconnectObject(TypedDict, total=False):
    code: int
    reason: str


class DisconnectParams(_Target, total=False):
    whitelist: list[str]
    disconnect: DisconnectObject


class RefreshParams(_Target, total=False):
    expired: bool
    expire_at: int
    info: bytes


class ChannelParams(TypedDict, total=False):
    """``presence``, ``presence_stats``, ``history_remove``."""

    channel: str


class HistoryParams(ChannelParams, total=False):
    limit: int
    since: StreamPositionParams
    reverse: bool


class ChannelsParams(TypedDict, total=False):
    pattern: str


class RPCParams(TypedDict, total=False):
    method: str
    params: bytes


class BatchParams(TypedDict, total=False):
    commands: list[Any]
    parallel: bool
