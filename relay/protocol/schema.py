"""The Centrifugo client protocol v2 schema, written once.

Both codecs (``json_codec`` and ``protobuf_codec``) walk these tables, so a field's
name, number, type and "always written" rule live in exactly one place.

Values travel as plain dicts keyed by field name:

* ``string`` -> ``str``; ``bool`` -> ``bool``; integer kinds -> ``int``;
* ``bytes`` -> ``bytes``. In JSON mode these are raw embedded JSON (``Raw`` in
  centrifugal/protocol), in Protobuf mode the application's bytes;
* ``msg`` -> ``dict`` (a nested message, encoded even when empty);
* ``repeated`` fields -> ``list``; ``map`` fields -> ``dict[str, value]``.

Source: centrifugal/protocol ``definitions/client.proto`` (field numbers) and
``client.pb_easyjson.go`` (which fields JSON writes even when zero).
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Field", "MESSAGES", "COMMAND_METHODS", "REPLY_RESULTS", "SCALAR_KINDS"]


class Field(NamedTuple):
    """One field of a protocol message.

    ``kind`` is a scalar kind (``string``, ``bytes``, ``bool``, ``uint32``, ``int32``,
    ``uint64``, ``int64``, ``sint64``) or ``msg``. ``ref`` names the nested message for
    ``msg`` and the value type for maps. ``label`` is ``""``, ``"repeated"`` or ``"map"``
    (maps always have string keys). ``always`` means JSON writes it even when zero.
    """

    name: str
    number: int
    kind: str
    ref: str = ""
    label: str = ""
    always: bool = False


SCALAR_KINDS = frozenset(
    {"string", "bytes", "bool", "uint32", "int32", "uint64", "int64", "sint64"}
)

F = Field

MESSAGES: dict[str, tuple[Field, ...]] = {
    # ---- envelopes -------------------------------------------------------------------
    "Command": (
        F("id", 1, "uint32"),
        F("connect", 4, "msg", "ConnectRequest"),
        F("subscribe", 5, "msg", "SubscribeRequest"),
        F("unsubscribe", 6, "msg", "UnsubscribeRequest"),
        F("publish", 7, "msg", "PublishRequest"),
        F("presence", 8, "msg", "PresenceRequest"),
        F("presence_stats", 9, "msg", "PresenceStatsRequest"),
        F("history", 10, "msg", "HistoryRequest"),
        F("ping", 11, "msg", "Empty"),
        F("send", 12, "msg", "SendRequest"),
        F("rpc", 13, "msg", "RPCRequest"),
        F("refresh", 14, "msg", "RefreshRequest"),
        F("sub_refresh", 15, "msg", "SubRefreshRequest"),
    ),
    "Reply": (
        F("id", 1, "uint32"),
        F("error", 2, "msg", "Error"),
        F("push", 4, "msg", "Push"),
        F("connect", 5, "msg", "ConnectResult"),
        F("subscribe", 6, "msg", "SubscribeResult"),
        F("unsubscribe", 7, "msg", "Empty"),
        F("publish", 8, "msg", "Empty"),
        F("presence", 9, "msg", "PresenceResult"),
        F("presence_stats", 10, "msg", "PresenceStatsResult"),
        F("history", 11, "msg", "HistoryResult"),
        F("ping", 12, "msg", "Empty"),
        F("rpc", 13, "msg", "RPCResult"),
        F("refresh", 14, "msg", "RefreshResult"),
        F("sub_refresh", 15, "msg", "SubRefreshResult"),
    ),
    "Empty": (),
    "Error": (
        F("code", 1, "uint32"),
        F("message", 2, "string"),
        F("temporary", 3, "bool"),
    ),
    "Push": (
        F("id", 1, "int64"),
        F("channel", 2, "string"),
        F("pub", 4, "msg", "Publication"),
        F("join", 5, "msg", "Join"),
        F("leave", 6, "msg", "Leave"),
        F("unsubscribe", 7, "msg", "Unsubscribe"),
        F("message", 8, "msg", "Message"),
        F("subscribe", 9, "msg", "Subscribe"),
        F("connect", 10, "msg", "Connect"),
        F("disconnect", 11, "msg", "Disconnect"),
        F("refresh", 12, "msg", "Refresh"),
    ),
    # ---- shared values ---------------------------------------------------------------
    "ClientInfo": (
        F("user", 1, "string", always=True),
        F("client", 2, "string", always=True),
        F("conn_info", 3, "bytes"),
        F("chan_info", 4, "bytes"),
    ),
    "Publication": (
        F("data", 4, "bytes"),
        F("info", 5, "msg", "ClientInfo"),
        F("offset", 6, "uint64"),
        F("tags", 7, "string", label="map"),
        F("delta", 8, "bool"),
        F("time", 9, "int64"),
        F("channel", 10, "string"),
    ),
    "StreamPosition": (
        F("offset", 1, "uint64"),
        F("epoch", 2, "string"),
    ),
    # ---- pushes ----------------------------------------------------------------------
    "Join": (F("info", 1, "msg", "ClientInfo"),),
    "Leave": (F("info", 1, "msg", "ClientInfo"),),
    "Unsubscribe": (F("code", 2, "uint32"), F("reason", 3, "string")),
    "Subscribe": (
        F("recoverable", 1, "bool"),
        F("epoch", 4, "string"),
        F("offset", 5, "uint64"),
        F("positioned", 6, "bool"),
        F("data", 7, "bytes"),
    ),
    "Message": (F("data", 1, "bytes"),),
    "Connect": (
        F("client", 1, "string"),
        F("version", 2, "string"),
        F("data", 3, "bytes"),
        F("subs", 4, "msg", "SubscribeResult", label="map"),
        F("expires", 5, "bool"),
        F("ttl", 6, "uint32"),
        F("ping", 7, "uint32"),
        F("pong", 8, "bool"),
        F("session", 9, "string"),
        F("node", 10, "string"),
        F("time", 11, "int64"),
    ),
    "Disconnect": (
        F("code", 1, "uint32"),
        F("reason", 2, "string"),
        F("reconnect", 3, "bool"),
    ),
    "Refresh": (F("expires", 1, "bool"), F("ttl", 2, "uint32")),
    # ---- requests --------------------------------------------------------------------
    "ConnectRequest": (
        F("token", 1, "string"),
        F("data", 2, "bytes"),
        F("subs", 3, "msg", "SubscribeRequest", label="map"),
        F("name", 4, "string"),
        F("version", 5, "string"),
        F("headers", 6, "string", label="map"),
        F("flag", 7, "int64"),
    ),
    "SubscribeRequest": (
        F("channel", 1, "string"),
        F("token", 2, "string"),
        F("recover", 3, "bool"),
        F("epoch", 6, "string"),
        F("offset", 7, "uint64"),
        F("data", 8, "bytes"),
        F("positioned", 9, "bool"),
        F("recoverable", 10, "bool"),
        F("join_leave", 11, "bool"),
        F("delta", 12, "string"),
        F("tf", 13, "msg", "FilterNode"),
        F("flag", 14, "int64"),
        F("type", 15, "int32"),
    ),
    "FilterNode": (
        F("op", 1, "string"),
        F("key", 2, "string"),
        F("cmp", 3, "string"),
        F("val", 4, "string"),
        F("vals", 5, "string", label="repeated"),
        F("nodes", 6, "msg", "FilterNode", label="repeated"),
    ),
    "UnsubscribeRequest": (F("channel", 1, "string"),),
    "PublishRequest": (F("channel", 1, "string"), F("data", 2, "bytes"), F("type", 3, "int32")),
    "PresenceRequest": (F("channel", 1, "string"),),
    "PresenceStatsRequest": (F("channel", 1, "string"),),
    "HistoryRequest": (
        F("channel", 1, "string"),
        F("limit", 7, "int32"),
        F("since", 8, "msg", "StreamPosition"),
        F("reverse", 9, "bool"),
    ),
    "SendRequest": (F("data", 1, "bytes"),),
    "RPCRequest": (F("data", 1, "bytes"), F("method", 2, "string")),
    "RefreshRequest": (F("token", 1, "string"),),
    "SubRefreshRequest": (F("channel", 1, "string"), F("token", 2, "string")),
    # ---- results ---------------------------------------------------------------------
    "ConnectResult": (
        F("client", 1, "string"),
        F("version", 2, "string"),
        F("expires", 3, "bool"),
        F("ttl", 4, "uint32"),
        F("data", 5, "bytes"),
        F("subs", 6, "msg", "SubscribeResult", label="map"),
        F("ping", 7, "uint32"),
        F("pong", 8, "bool"),
        F("session", 9, "string"),
        F("node", 10, "string"),
        F("time", 11, "int64"),
    ),
    "SubscribeResult": (
        F("expires", 1, "bool"),
        F("ttl", 2, "uint32"),
        F("recoverable", 3, "bool"),
        F("epoch", 6, "string"),
        F("publications", 7, "msg", "Publication", label="repeated"),
        F("recovered", 8, "bool"),
        F("offset", 9, "uint64"),
        F("positioned", 10, "bool"),
        F("data", 11, "bytes"),
        F("was_recovering", 12, "bool"),
        F("delta", 13, "bool"),
        F("id", 14, "int64"),
    ),
    "PresenceResult": (F("presence", 1, "msg", "ClientInfo", label="map", always=True),),
    "PresenceStatsResult": (
        F("num_clients", 1, "uint32", always=True),
        F("num_users", 2, "uint32", always=True),
    ),
    "HistoryResult": (
        F("publications", 1, "msg", "Publication", label="repeated", always=True),
        F("epoch", 2, "string", always=True),
        F("offset", 3, "uint64", always=True),
    ),
    "RPCResult": (F("data", 1, "bytes"),),
    "RefreshResult": (
        F("client", 1, "string"),
        F("version", 2, "string"),
        F("expires", 3, "bool"),
        F("ttl", 4, "uint32"),
    ),
    "SubRefreshResult": (F("expires", 1, "bool"), F("ttl", 2, "uint32")),
}

del F

#: Command methods in Centrifugo's dispatch order (``client.go dispatchCommand``).
COMMAND_METHODS: tuple[str, ...] = (
    "connect",
    "subscribe",
    "unsubscribe",
    "publish",
    "presence",
    "presence_stats",
    "history",
    "rpc",
    "send",
    "refresh",
    "sub_refresh",
)

#: Reply field that carries each method's result.
REPLY_RESULTS: dict[str, str] = {m: m for m in COMMAND_METHODS if m != "send"}
