"""Typed server API results: what each ``Executor`` method returns, as a table.

The request side lives in ``protocol/schema.py API_MESSAGES``; these are the result
messages of Centrifugo's ``internal/apiproto/api.proto`` that relay writes, in the same
``Field`` form (``bytes`` fields carry any JSON value, ``double`` is a JSON number).
``api/openapi.py`` describes the HTTP API's responses from them, so a result key added
to the executor belongs here too (the schemathesis test checks relay's answers against
the document).
"""

from __future__ import annotations

from relay.protocol.schema import Field

__all__ = ["RESULT_MESSAGES", "RESULTS", "ERROR_MESSAGE"]

F = Field

#: The error object of a reply (``payloads.error_dict``).
ERROR_MESSAGE = "Error"

#: Server API method -> its result message.
RESULTS: dict[str, str] = {
    "publish": "PublishResult",
    "broadcast": "BroadcastResult",
    "subscribe": "SubscribeResult",
    "unsubscribe": "UnsubscribeResult",
    "disconnect": "DisconnectResult",
    "presence": "PresenceResult",
    "presence_stats": "PresenceStatsResult",
    "history": "HistoryResult",
    "history_remove": "HistoryRemoveResult",
    "info": "InfoResult",
    "rpc": "RPCResult",
    "refresh": "RefreshResult",
    "channels": "ChannelsResult",
    "batch": "BatchResponse",
}

RESULT_MESSAGES: dict[str, tuple[Field, ...]] = {
    "Error": (F("code", 1, "uint32"), F("message", 2, "string")),
    "PublishResult": (F("offset", 1, "uint64"), F("epoch", 2, "string")),
    "PublishResponse": (
        F("error", 1, "msg", "Error"),
        F("result", 2, "msg", "PublishResult"),
    ),
    "BroadcastResult": (F("responses", 1, "msg", "PublishResponse", "repeated"),),
    "SubscribeResult": (),
    "UnsubscribeResult": (),
    "DisconnectResult": (),
    "ClientInfo": (
        F("user", 1, "string"),
        F("client", 2, "string"),
        F("conn_info", 3, "bytes"),
        F("chan_info", 4, "bytes"),
    ),
    "PresenceResult": (F("presence", 1, "msg", "ClientInfo", "map"),),
    "PresenceStatsResult": (F("num_clients", 1, "uint32"), F("num_users", 2, "uint32")),
    "Publication": (
        F("data", 2, "bytes"),
        F("info", 3, "msg", "ClientInfo"),
        F("offset", 4, "uint64"),
        F("tags", 5, "string", "string", "map"),
    ),
    "HistoryResult": (
        F("publications", 1, "msg", "Publication", "repeated"),
        F("epoch", 2, "string"),
        F("offset", 3, "uint64"),
    ),
    "HistoryRemoveResult": (),
    "Metrics": (F("interval", 1, "double"), F("items", 2, "double", "double", "map")),
    "NodeResult": (
        F("uid", 1, "string"),
        F("name", 2, "string"),
        F("version", 3, "string"),
        F("num_clients", 4, "uint32"),
        F("num_users", 5, "uint32"),
        F("num_channels", 6, "uint32"),
        F("uptime", 7, "uint32"),
        F("metrics", 8, "msg", "Metrics"),
        F("num_subs", 10, "uint32"),
    ),
    "InfoResult": (F("nodes", 1, "msg", "NodeResult", "repeated"),),
    "RPCResult": (F("data", 1, "bytes"),),
    "RefreshResult": (),
    "ChannelInfo": (F("num_clients", 1, "uint32"),),
    "ChannelsResult": (F("channels", 1, "msg", "ChannelInfo", "map"),),
    "Reply": (
        F("error", 2, "msg", "Error"),
        *(
            F(method, number, "msg", RESULTS[method])
            for method, number in (
                ("publish", 4),
                ("broadcast", 5),
                ("subscribe", 6),
                ("unsubscribe", 7),
                ("disconnect", 8),
                ("presence", 9),
                ("presence_stats", 10),
                ("history", 11),
                ("history_remove", 12),
                ("info", 13),
                ("rpc", 14),
                ("refresh", 15),
                ("channels", 16),
            )
        ),
    ),
    "BatchResponse": (F("replies", 1, "msg", "Reply", "repeated"),),
}

del F
