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

__all__ = [
    "Field",
    "MESSAGES",
    "API_MESSAGES",
    "API_METHODS",
    "COMMAND_METHODS",
    "REPLY_RESULTS",
    "SCALAR_KINDS",
]


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

#: The server API's request messages (centrifugo ``internal/apiproto/api.proto``), in the
#: same tables: ``bytes`` fields carry raw JSON in the HTTP API. ``api/requests.py``
#: decodes requests by walking these.
#: What a publish and a broadcast both carry after their channel(s) (same numbers).
_PUBLICATION_FIELDS = (
    F("data", 2, "bytes"),
    F("b64data", 3, "string"),
    F("skip_history", 4, "bool"),
    F("tags", 5, "string", "string", "map"),
    F("idempotency_key", 6, "string"),
    F("delta", 7, "bool"),
    F("version", 8, "uint64"),
    F("version_epoch", 9, "string"),
)

API_MESSAGES: dict[str, tuple[Field, ...]] = {
    "Command": (
        F("publish", 4, "msg", "PublishRequest"),
        F("broadcast", 5, "msg", "BroadcastRequest"),
        F("subscribe", 6, "msg", "SubscribeRequest"),
        F("unsubscribe", 7, "msg", "UnsubscribeRequest"),
        F("disconnect", 8, "msg", "DisconnectRequest"),
        F("presence", 9, "msg", "PresenceRequest"),
        F("presence_stats", 10, "msg", "PresenceStatsRequest"),
        F("history", 11, "msg", "HistoryRequest"),
        F("history_remove", 12, "msg", "HistoryRemoveRequest"),
        F("info", 13, "msg", "InfoRequest"),
        F("rpc", 14, "msg", "RPCRequest"),
        F("refresh", 15, "msg", "RefreshRequest"),
        F("channels", 16, "msg", "ChannelsRequest"),
    ),
    "BatchRequest": (
        F("commands", 1, "msg", "Command", "repeated"),
        F("parallel", 2, "bool"),
    ),
    "PublishRequest": (F("channel", 1, "string"), *_PUBLICATION_FIELDS),
    "BroadcastRequest": (F("channels", 1, "string", "", "repeated"), *_PUBLICATION_FIELDS),
    "SubscribeRequest": (
        F("channel", 1, "string"),
        F("user", 2, "string"),
        F("expire_at", 3, "int64"),
        F("info", 4, "bytes"),
        F("b64info", 5, "string"),
        F("client", 6, "string"),
        F("data", 7, "bytes"),
        F("b64data", 8, "string"),
        F("recover_since", 9, "msg", "StreamPosition"),
        F("override", 10, "msg", "SubscribeOptionOverride"),
        F("session", 11, "string"),
    ),
    "BoolValue": (F("value", 1, "bool"),),
    "SubscribeOptionOverride": (
        F("presence", 1, "msg", "BoolValue"),
        F("join_leave", 2, "msg", "BoolValue"),
        F("force_recovery", 3, "msg", "BoolValue"),
        F("force_positioning", 4, "msg", "BoolValue"),
        F("force_push_join_leave", 5, "msg", "BoolValue"),
    ),
    "UnsubscribeRequest": (
        F("channel", 1, "string"),
        F("user", 2, "string"),
        F("client", 3, "string"),
        F("session", 4, "string"),
    ),
    "Disconnect": (F("code", 1, "uint32"), F("reason", 2, "string")),
    "DisconnectRequest": (
        F("user", 1, "string"),
        F("disconnect", 2, "msg", "Disconnect"),
        F("client", 3, "string"),
        F("whitelist", 4, "string", "", "repeated"),
        F("session", 5, "string"),
    ),
    "PresenceRequest": (F("channel", 1, "string"),),
    "PresenceStatsRequest": (F("channel", 1, "string"),),
    "StreamPosition": (F("offset", 1, "uint64"), F("epoch", 2, "string")),
    "HistoryRequest": (
        F("channel", 1, "string"),
        F("limit", 2, "int32"),
        F("since", 3, "msg", "StreamPosition"),
        F("reverse", 4, "bool"),
    ),
    "HistoryRemoveRequest": (F("channel", 1, "string"),),
    "InfoRequest": (),
    "RPCRequest": (F("method", 1, "string"), F("params", 2, "bytes")),
    "RefreshRequest": (
        F("user", 1, "string"),
        F("client", 2, "string"),
        F("expired", 3, "bool"),
        F("expire_at", 4, "int64"),
        F("info", 5, "bytes"),
        F("session", 6, "string"),
    ),
    "ChannelsRequest": (F("pattern", 1, "string"),),
}

#: Server API method -> its request message.
API_METHODS: dict[str, str] = {
    **{f.name: f.ref for f in API_MESSAGES["Command"]},
    "batch": "BatchRequest",
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
