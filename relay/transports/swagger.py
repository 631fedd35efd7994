"""The Swagger endpoint: the HTTP API's OpenAPI document and a small page to read it.

Routes under ``swagger.handler_prefix`` (default ``/swagger``), as Centrifugo lays them
out (``internal/app/mux.go``, ``HandlerSwagger``):

* ``<prefix>/swagger.json``: the Swagger 2.0 document (``relay/api/openapi.py``), for the
  API as this node serves it (its ``http_api.handler_prefix``, key or ``insecure``);
* ``<prefix>/``: an HTML page. Centrifugo embeds the swagger-ui bundle; relay serves a
  self-contained page instead (no external assets, so it works offline) that lists the
  methods from the document and can send a request with an API key;
* ``<prefix>`` redirects to ``<prefix>/``, ``<prefix>/index.html`` too (as Go's file
  server does); any other file under the prefix is 404 (swagger-ui's assets).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from relay.api.openapi import document
from relay.node import Node
from relay.transports.http_api import TRANSPORT_STATUS, plain

__all__ = ["setup", "DOCUMENT_FILE"]

#: The document's file name under the prefix (swagger-ui's ``url: "./swagger.json"``).
DOCUMENT_FILE = "swagger.json"


def setup(app: web.Application, node: Node) -> None:
    """Register the swagger routes when ``swagger.enabled`` (before a catch-all route)."""
    cfg = node.config
    if not cfg.swagger.enabled:
        return
    api = cfg.http_api
    doc = document(
        api.handler_prefix,
        insecure=api.insecure,
        error_statuses=sorted(set(TRANSPORT_STATUS.values())),
    )
    body = json.dumps(doc, indent=2).encode()
    prefix = cfg.swagger.handler_prefix.rstrip("/")
    add = app.router.add_route
    add("*", f"{prefix}/{DOCUMENT_FILE}", _static(body, "application/json"))
    add("*", f"{prefix}/", _static(_PAGE.encode(), "text/html; charset=utf-8"))
    add("*", f"{prefix}/index.html", _index_redirect)
    if prefix:
        add("*", prefix, _slash_redirect(f"{prefix}/"))
        add("*", prefix + "/{tail:.*}", _not_found)


def _static(body: bytes, content_type: str) -> Any:
    """Any method gets the file, as from Go's file server (aiohttp drops HEAD bodies)."""

    async def handler(request: web.Request) -> web.Response:
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    return handler


async def _index_redirect(request: web.Request) -> web.Response:
    """Go's file server sends ``.../index.html`` to its directory."""
    return web.Response(status=301, headers={"Location": "./"})


def _slash_redirect(location: str) -> Any:
    """Go's ServeMux: the prefix without its slash is a 307 to the subtree."""

    async def handler(request: web.Request) -> web.Response:
        resp = web.Response(status=307, headers={"Location": location})
        if request.method in ("GET", "HEAD"):
            resp.body = f'<a href="{location}">Temporary Redirect</a>.\n\n'.encode()
            resp.headers["Content-Type"] = "text/html; charset=utf-8"
        return resp

    return handler


async def _not_found(request: web.Request) -> web.Response:
    return plain(404, "404 page not found\n")


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>Server HTTP API</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 60em; }
code, pre, textarea { font: 13px ui-monospace, monospace; }
details { border: 1px solid #ccc; border-radius: 4px; margin: .5em 0; padding: .4em .8em; }
summary { cursor: pointer; } summary code { font-weight: bold; }
textarea { width: 100%; height: 6em; } pre { background: #f4f4f4; padding: .5em; }
</style>
</head>
<body>
<h1>Server HTTP API</h1>
<p>The OpenAPI (Swagger 2.0) document: <a href="./swagger.json">swagger.json</a>.
API key: <input id="key" type="password" size="30"></p>
<p id="about"></p>
<div id="ops">Loading…</div>
<script>
"use strict";
function el(tag, text) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  return e;
}
function fields(doc, ref) {
  const name = ref.split("/").pop();
  const props = (doc.definitions[name] || {}).properties || {};
  return Object.keys(props).map(function (k) {
    const p = props[k];
    const type = p.$ref ? p.$ref.split("/").pop() : (p.type || "JSON");
    return k + ": " + type;
  }).join(", ") || "(no fields)";
}
fetch("./swagger.json").then(function (r) { return r.json(); }).then(function (doc) {
  document.getElementById("about").textContent = doc.info.description;
  const ops = document.getElementById("ops");
  ops.textContent = "";
  Object.keys(doc.paths).forEach(function (path) {
    const op = doc.paths[path].post;
    const url = doc.basePath.replace(/\\/$/, "") + path;
    const box = el("details");
    const head = el("summary");
    head.appendChild(el("code", "POST " + url));
    head.appendChild(document.createTextNode(" " + op.summary));
    box.appendChild(head);
    box.appendChild(el("p", "Request: " + fields(doc, op.parameters[0].schema.$ref)));
    const body = el("textarea");
    body.value = "{}";
    const send = el("button", "Send");
    const out = el("pre");
    send.onclick = function () {
      const headers = {"Content-Type": "application/json"};
      const key = document.getElementById("key").value;
      if (key) headers["X-API-Key"] = key;
      fetch(url, {method: "POST", headers: headers, body: body.value}).then(function (r) {
        return r.text().then(function (t) { out.textContent = r.status + "\\n" + t; });
      }, function (e) { out.textContent = String(e); });
    };
    box.appendChild(body);
    box.appendChild(send);
    box.appendChild(out);
    ops.appendChild(box);
  });
}, function (e) { document.getElementById("ops").textContent = String(e); });
</script>
</body>
</html>
"""
