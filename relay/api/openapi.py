"""The OpenAPI (Swagger 2.0) description of the server HTTP API, built from relay's tables.

Centrifugo serves a Swagger 2.0 document at ``<swagger prefix>/swagger.json``; this one
has the same layout (``basePath`` of the API, one ``POST /<method>`` per method, the
``<Name>Request`` / ``<Name>Response`` / ``<Name>Result`` definitions and the
``ApiKeyAuth`` scheme), generated from:

* ``protocol/schema.py API_MESSAGES`` / ``API_METHODS``: the request of each method,
  with the bounds of its integer kinds and Go's ``null`` rule (``x-nullable``): what
  ``api/requests.py`` accepts is what the document allows;
* ``api/results.py``: the result of each method, the error object, closed
  (``additionalProperties: false``) since they are exactly what relay writes.

Pure: no I/O; ``transports/swagger.py`` serves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from relay.api.results import ERROR_MESSAGE, RESULT_MESSAGES, RESULTS
from relay.protocol.schema import API_MESSAGES, API_METHODS, Field

__all__ = ["document", "SECURITY_SCHEMES", "JSON", "TEXT"]

Schema = dict[str, Any]

JSON = "application/json"
TEXT = "text/plain"

_INT_BOUNDS: dict[str, tuple[int, int, str]] = {
    "int32": (-(2**31), 2**31 - 1, "int32"),
    "uint32": (0, 2**32 - 1, "int64"),
    "int64": (-(2**63), 2**63 - 1, "int64"),
    "sint64": (-(2**63), 2**63 - 1, "int64"),
    "uint64": (0, 2**64 - 1, ""),
}

#: The ways a request may carry the API key (``http_api._authorized``), any one of them.
SECURITY_SCHEMES: dict[str, Schema] = {
    "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "AuthorizationApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "The value `apikey <KEY>`.",
    },
    "ApiKeyQuery": {"type": "apiKey", "in": "query", "name": "api_key"},
}

#: Method -> (tag, summary), for the UI.
_ABOUT: dict[str, tuple[str, str]] = {
    "publish": ("publication", "Publish data into a channel"),
    "broadcast": ("publication", "Publish the same data into many channels"),
    "subscribe": ("connection management", "Subscribe a user's connections to a channel"),
    "unsubscribe": ("connection management", "Unsubscribe a user's connections from a channel"),
    "disconnect": ("connection management", "Disconnect a user's connections"),
    "refresh": ("connection management", "Refresh (or expire) a user's connections"),
    "presence": ("presence", "Clients subscribed to a channel"),
    "presence_stats": ("presence", "Numbers of clients and users in a channel"),
    "history": ("history", "Read a channel's history stream"),
    "history_remove": ("history", "Remove a channel's history"),
    "info": ("stats", "Nodes of the cluster and their counters"),
    "channels": ("stats", "Active channels, optionally matching a glob pattern"),
    "rpc": ("rpc", "Server API RPC extension (none exist: error 104)"),
    "batch": ("batch", "Run many commands in one request"),
}

_ERROR_STATUS_TEXT = {
    400: "Reply error 107 or 108 in transport error mode.",
    404: "Reply error 102 or 104 in transport error mode.",
    409: "Reply error 113 in transport error mode.",
    416: "Reply error 112 in transport error mode.",
    500: "Reply error 100 in transport error mode.",
}
_BAD_BODY = "The body is not a JSON request of this method: `Bad Request` as text/plain."
_DESCRIPTION = (
    "The server HTTP API of relay, a Centrifugo v6 compatible server. Each method is "
    "`POST <basePath>/<method>` with the method's request as a JSON body. A reply error "
    'comes back with status 200 as `{"error": {...}}`, unless the transport error mode '
    "is on (`http_api.error_mode: transport`, or the request header "
    "`X-Centrifugo-Error-Mode: transport`): then the error object itself comes with an "
    "HTTP status (`batch` answers errors per reply in either mode)."
)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/definitions/{name}"}


def _value(kind: str, ref: str) -> Schema:
    """The schema of one value of ``kind`` (``ref`` names a message)."""
    if kind == "msg":
        return _ref(ref)
    if kind == "bytes":
        return {"description": "Any JSON value."}
    if kind == "string":
        return {"type": "string"}
    if kind == "bool":
        return {"type": "boolean"}
    if kind == "double":
        return {"type": "number", "format": "double"}
    low, high, fmt = _INT_BOUNDS[kind]
    schema: Schema = {"type": "integer", "minimum": low, "maximum": high}
    if fmt:
        schema["format"] = fmt
    return schema


def _nullable(schema: Schema) -> Schema:
    """Go's decoder reads ``null`` as the zero value: requests allow it everywhere."""
    if "$ref" in schema or "type" not in schema:
        return schema  # a message is nullable in its definition; raw JSON takes anything
    return {**schema, "x-nullable": True}


def _field(field: Field, request: bool) -> Schema:
    value = _value(field.kind, field.ref)
    if request:
        value = _nullable(value)
    if field.label == "repeated":
        outer: Schema = {"type": "array", "items": value}
    elif field.label == "map":
        outer = {"type": "object", "additionalProperties": value}
    else:
        return value
    return _nullable(outer) if request else outer


def _message(fields: Iterable[Field], request: bool) -> Schema:
    schema: Schema = {"type": "object"}
    properties = {f.name: _field(f, request) for f in fields}
    if properties:
        schema["properties"] = properties
    if request:
        schema["x-nullable"] = True
    else:
        schema["additionalProperties"] = False
    return schema


def _closure(tables: Mapping[str, tuple[Field, ...]], roots: Iterable[str]) -> list[str]:
    """Message names reachable from ``roots``, in first-seen order."""
    seen: dict[str, None] = {}
    todo = list(roots)
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen[name] = None
        todo.extend(f.ref for f in tables[name] if f.kind == "msg")
    return list(seen)


def _base_name(method: str) -> str:
    """``PresenceStats`` for ``presence_stats``: its request message without ``Request``."""
    return API_METHODS[method].removesuffix("Request")


def _response_message(method: str) -> str:
    """The definition of a method's 200 answer: ``{"result"|"error"}`` (batch: its own)."""
    result = RESULTS[method]
    return result if method == "batch" else f"{_base_name(method)}Response"


def _wrappers() -> dict[str, tuple[Field, ...]]:
    """``<Name>Response`` of every method but batch: its result or the error object."""
    out: dict[str, tuple[Field, ...]] = {}
    for method in API_METHODS:
        if method == "batch":
            continue
        out[_response_message(method)] = (
            Field("error", 1, "msg", ERROR_MESSAGE),
            Field("result", 2, "msg", RESULTS[method]),
        )
    return out


def _definitions() -> dict[str, Schema]:
    requests = _closure(API_MESSAGES, API_METHODS.values())
    wrappers = _wrappers()
    results: dict[str, tuple[Field, ...]] = {**RESULT_MESSAGES}
    for name, fields in wrappers.items():
        if results.setdefault(name, fields) != fields:
            raise ValueError(f"result table's {name} is not the response wrapper")
    names = _closure(results, [*wrappers, *(RESULTS[m] for m in API_METHODS)])
    clash = set(requests) & set(names)
    if clash:
        raise ValueError(f"request and result messages share names: {sorted(clash)}")
    defs = {name: _message(API_MESSAGES[name], request=True) for name in requests}
    defs.update({name: _message(results[name], request=False) for name in names})
    return defs


def _responses(method: str, statuses: Iterable[int]) -> Schema:
    error = _ref(ERROR_MESSAGE)
    out: Schema = {
        "200": {
            "description": "The method's result, or a reply error (`error`).",
            "schema": _ref(_response_message(method)),
        },
        "400": {
            "description": _BAD_BODY
            if method == "batch"
            else f"{_BAD_BODY} {_ERROR_STATUS_TEXT[400]}",
            "schema": error,
        },
        "401": {"description": "Missing or wrong API key (empty body)."},
    }
    if method != "batch":
        for status in sorted(set(statuses) - {400}):
            out[str(status)] = {
                "description": _ERROR_STATUS_TEXT.get(status, "A reply error."),
                "schema": error,
            }
    return out


def _operation(method: str, statuses: Iterable[int]) -> Schema:
    tag, summary = _ABOUT.get(method, ("other", method))
    return {
        "summary": summary,
        "operationId": f"CentrifugoApi_{_base_name(method)}",
        "tags": [tag],
        "produces": [JSON, TEXT],
        "parameters": [
            {
                "name": "body",
                "in": "body",
                "required": True,
                "schema": _ref(API_METHODS[method]),
            }
        ],
        "responses": _responses(method, statuses),
    }


def document(
    api_prefix: str = "/api",
    *,
    insecure: bool = False,
    error_statuses: Iterable[int] = (400, 404, 409, 416, 500),
    version: str = "6.0",
) -> Schema:
    """The Swagger 2.0 document of the HTTP API served under ``api_prefix``.

    ``insecure``: the API takes requests without a key (``http_api.insecure``).
    ``error_statuses``: the HTTP statuses of reply errors in transport error mode.
    """
    statuses = tuple(error_statuses)
    tags: dict[str, None] = {_ABOUT.get(m, ("other", ""))[0]: None for m in API_METHODS}
    doc: Schema = {
        "swagger": "2.0",
        "info": {
            "title": "Centrifugo server HTTP API",
            "version": version,
            "description": _DESCRIPTION,
        },
        "tags": [{"name": tag} for tag in tags],
        "basePath": api_prefix.rstrip("/") or "/",
        "consumes": [JSON],
        "produces": [JSON],
        "paths": {f"/{m}": {"post": _operation(m, statuses)} for m in API_METHODS},
        "definitions": _definitions(),
        "securityDefinitions": SECURITY_SCHEMES,
        "security": [] if insecure else [{name: []} for name in SECURITY_SCHEMES],
        "externalDocs": {
            "description": "Centrifugo server API",
            "url": "https://centrifugal.dev/docs/server/server_api",
        },
    }
    return doc
