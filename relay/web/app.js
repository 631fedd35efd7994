/* relay admin UI: login, live status, server API actions. Plain JS, no build step.
 *
 * Endpoints (relative to the page, so the UI works under admin.handler_prefix):
 *   POST admin/auth   (form field "password")   -> {"token": "..."}
 *   GET  admin/init                             -> {"insecure", "edition", "authenticated"}
 *   GET  admin/stats  (Authorization: token t)  -> live numbers for the status page
 *   POST admin/api    (Authorization: token t)  -> legacy {"method","params"} stream
 * The token lives in localStorage under "token" (as in Centrifugo's own UI) and is
 * only ever sent in the Authorization header. A 401 sends the user back to login.
 */
(function () {
  "use strict";

  var TOKEN_KEY = "token";
  var POLL_MS = 1000;
  var HISTORY = 60;   // samples kept per chart (one per poll)
  var MIN_SPAN = 12;  // a chart spans at least this many samples
  var SVG_NS = "http://www.w3.org/2000/svg";

  var state = { insecure: false, timer: null, last: null, series: {}, page: "status" };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  // ---- session --------------------------------------------------------------------------
  function token() { return window.localStorage.getItem(TOKEN_KEY) || ""; }

  function authHeaders() {
    var t = token();
    return t ? { Authorization: "token " + t } : {};
  }

  function AuthError() { this.message = "unauthorized"; }

  function request(path, options) {
    options = options || {};
    options.headers = Object.assign({}, options.headers || {}, authHeaders());
    options.cache = "no-store";
    options.credentials = "omit";
    return fetch(path, options).then(function (resp) {
      if (resp.status === 401) { throw new AuthError(); }
      return resp;
    });
  }

  function expired() {
    window.localStorage.removeItem(TOKEN_KEY);
    showLogin("Your session has expired. Please log in again.");
  }

  function handleError(err) {
    if (err instanceof AuthError) { expired(); return; }
    console.error(err);
  }

  function logout() {
    window.localStorage.removeItem(TOKEN_KEY);
    showLogin("");
  }

  // ---- views ------------------------------------------------------------------------------
  function showOnly(id) {
    ["login-view", "status-view", "actions-view"].forEach(function (v) { $(v).hidden = v !== id; });
  }

  function showLogin(message) {
    stopPolling();
    $("topbar").hidden = true;
    showOnly("login-view");
    var notice = $("login-error");
    notice.textContent = message || "";
    notice.hidden = !message;
    $("password").value = "";
    $("password").focus();
  }

  function route() {
    var page = (window.location.hash || "#/status").replace(/^#\//, "");
    if (page !== "actions") { page = "status"; }
    state.page = page;
    $("topbar").hidden = false;
    $("logout").hidden = state.insecure;
    $("insecure-badge").hidden = !state.insecure;
    document.querySelectorAll(".tabs a").forEach(function (a) {
      a.classList.toggle("active", a.getAttribute("data-page") === page);
    });
    showOnly(page + "-view");
    if (page === "status") { startPolling(); } else { stopPolling(); }
  }

  function boot() {
    fetch("admin/init", { headers: authHeaders(), cache: "no-store", credentials: "omit" })
      .then(function (r) { return r.json(); })
      .then(function (init) {
        state.insecure = !!init.insecure;
        if (init.authenticated) { route(); return; }
        var hadToken = !!token();
        window.localStorage.removeItem(TOKEN_KEY);
        showLogin(hadToken ? "Your session has expired. Please log in again." : "");
      })
      .catch(function () { showLogin("Cannot reach the server."); });
  }

  // ---- login ------------------------------------------------------------------------------
  function login(event) {
    event.preventDefault();
    var form = new FormData();
    form.append("password", $("password").value);
    $("login-submit").disabled = true;
    fetch("admin/auth", { method: "POST", body: form, credentials: "omit" })
      .then(function (resp) {
        if (resp.ok) { return resp.json(); }
        if (resp.status === 429) {
          var wait = resp.headers.get("Retry-After") || "60";
          throw new Error("Too many failed attempts. Try again in " + wait + " s.");
        }
        throw new Error("Wrong password.");
      })
      .then(function (body) {
        window.localStorage.setItem(TOKEN_KEY, body.token);
        if (window.location.hash !== "#/status") { window.location.hash = "#/status"; }
        route();
      })
      .catch(function (err) {
        showLogin(err.message || "Login failed.");
      })
      .finally(function () { $("login-submit").disabled = false; });
  }

  // ---- status -----------------------------------------------------------------------------
  var CARDS = [
    { key: "workers", label: "Nodes / workers" },
    { key: "clients", label: "Connections" },
    { key: "users", label: "Users" },
    { key: "subscriptions", label: "Subscriptions" },
    { key: "channels", label: "Channels" },
    { key: "rate_in", label: "Messages in / s", rate: true, total: "messages_received" },
    { key: "rate_out", label: "Messages out / s", rate: true, total: "messages_sent" },
    { key: "api_rate", label: "API calls / s", rate: true, total: "api_commands" }
  ];

  function buildCards() {
    var box = $("metric-cards");
    if (box.childElementCount) { return; }
    CARDS.forEach(function (c) {
      var card = el("div", { "class": "card metric", "data-metric": c.key });
      card.appendChild(el("div", { "class": "metric-label" }, c.label));
      card.appendChild(el("div", { "class": "metric-value", id: "metric-" + c.key }, "–"));
      card.appendChild(el("div", { "class": "metric-sub", id: "total-" + c.key }, c.total ? "" : "\u00a0"));
      var svg = document.createElementNS(SVG_NS, "svg");
      svg.setAttribute("viewBox", "0 0 100 30");
      svg.setAttribute("preserveAspectRatio", "none");
      svg.setAttribute("class", "spark");
      svg.setAttribute("aria-hidden", "true");
      var area = document.createElementNS(SVG_NS, "polygon");
      area.setAttribute("class", "spark-area");
      var line = document.createElementNS(SVG_NS, "polyline");
      line.setAttribute("class", "spark-line");
      svg.appendChild(area);
      svg.appendChild(line);
      card.appendChild(svg);
      box.appendChild(card);
      state.series[c.key] = [];
    });
  }

  function drawSpark(key) {
    var values = state.series[key];
    var card = document.querySelector('[data-metric="' + key + '"]');
    if (!card || !values.length) { return; }
    var max = Math.max.apply(null, values.concat([1]));
    var span = Math.max(values.length, MIN_SPAN);
    var step = 100 / (span - 1);
    var offset = span - values.length;
    var points = values.map(function (v, i) {
      return ((offset + i) * step).toFixed(2) + "," + (29 - (v / max) * 27).toFixed(2);
    });
    card.querySelector(".spark-line").setAttribute("points", points.join(" "));
    var first = (offset * step).toFixed(2);
    card.querySelector(".spark-area").setAttribute(
      "points", first + ",30 " + points.join(" ") + " 100,30");
  }

  function formatNumber(v, rate) {
    if (rate) { return v < 10 ? v.toFixed(1) : Math.round(v).toLocaleString(); }
    return Math.round(v).toLocaleString();
  }

  function formatUptime(s) {
    s = s || 0;
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    var m = Math.floor(s % 3600 / 60), sec = s % 60;
    if (d) { return d + "d " + h + "h"; }
    if (h) { return h + "h " + m + "m"; }
    if (m) { return m + "m " + sec + "s"; }
    return sec + "s";
  }

  function rates(stats) {
    var prev = state.last;
    var out = { rate_in: 0, rate_out: 0, api_rate: 0 };
    if (prev) {
      var dt = Math.max(stats.time - prev.time, 0.001);
      out.rate_in = Math.max(stats.messages_received - prev.messages_received, 0) / dt;
      out.rate_out = Math.max(stats.messages_sent - prev.messages_sent, 0) / dt;
      out.api_rate = Math.max(stats.api_commands - prev.api_commands, 0) / dt;
    }
    return out;
  }

  function renderStats(stats) {
    buildCards();
    var r = rates(stats);
    state.last = stats;
    CARDS.forEach(function (c) {
      var v = c.rate ? r[c.key] : stats[c.key];
      var series = state.series[c.key];
      series.push(v);
      if (series.length > HISTORY) { series.shift(); }
      $("metric-" + c.key).textContent = formatNumber(v, c.rate);
      if (c.total) {
        $("total-" + c.key).textContent = formatNumber(stats[c.total], false) + " total";
        $("metric-" + c.key).setAttribute("data-total", stats[c.total]);
      }
      drawSpark(c.key);
    });
    renderNodes(stats.nodes);
    $("status-updated").textContent = stats.node.version + " · uptime " +
      formatUptime(stats.uptime) + " · updated " + new Date().toLocaleTimeString();
  }

  function renderNodes(nodes) {
    var body = $("nodes-table").querySelector("tbody");
    body.textContent = "";
    nodes.forEach(function (n) {
      var row = el("tr");
      var name = el("td", { title: n.uid }, n.name);
      row.appendChild(name);
      row.appendChild(el("td", { "class": "col-version" }, n.version));
      [n.num_clients, n.num_users, n.num_subs, n.num_channels].forEach(function (v) {
        row.appendChild(el("td", {}, v === undefined ? 0 : v));
      });
      row.appendChild(el("td", {}, formatUptime(n.uptime)));
      body.appendChild(row);
    });
  }

  function poll() {
    request("admin/stats")
      .then(function (r) {
        if (!r.ok) { throw new Error("stats: HTTP " + r.status); }
        return r.json();
      })
      .then(renderStats)
      .catch(handleError);
  }

  function startPolling() {
    if (state.timer) { return; }
    poll();
    state.timer = window.setInterval(poll, POLL_MS);
  }

  function stopPolling() {
    if (state.timer) { window.clearInterval(state.timer); }
    state.timer = null;
  }

  // ---- actions ----------------------------------------------------------------------------
  var CHANNEL = { name: "channel", label: "Channel", required: true, placeholder: "chat:index" };
  var DATA = { name: "data", label: "Data (JSON)", type: "json", required: true,
    textarea: true, placeholder: '{"text": "hello"}' };
  var TARGET = [
    { name: "user", label: "User ID", placeholder: "42" },
    { name: "client", label: "Client ID (optional)" },
    { name: "session", label: "Session ID (optional)" }
  ];

  var METHODS = {
    publish: { help: "Publish data into a channel.", fields: [CHANNEL, DATA,
      { name: "idempotency_key", label: "Idempotency key (optional)" },
      { name: "tags", label: "Tags (JSON object, optional)", type: "json", placeholder: '{"k": "v"}' },
      { name: "skip_history", label: "Skip history", type: "bool" }] },
    broadcast: { help: "Publish the same data into many channels.", fields: [
      { name: "channels", label: "Channels (comma or newline separated)", type: "list",
        required: true, textarea: true, placeholder: "chat:1, chat:2" }, DATA,
      { name: "skip_history", label: "Skip history", type: "bool" }] },
    presence: { help: "Clients currently subscribed to a channel.", fields: [CHANNEL] },
    presence_stats: { help: "Number of clients and unique users in a channel.", fields: [CHANNEL] },
    history: { help: "Publications kept in a channel's history stream.", fields: [CHANNEL,
      { name: "limit", label: "Limit (-1 = all, 0 = position only)", type: "int", value: "10" },
      { name: "since_offset", label: "Since offset (optional)", type: "int" },
      { name: "since_epoch", label: "Since epoch (optional)" },
      { name: "reverse", label: "Newest first", type: "bool" }] },
    history_remove: { help: "Remove the channel's history (the stream position stays).",
      fields: [CHANNEL] },
    channels: { help: "Active channels, optionally filtered by a glob pattern.", fields: [
      { name: "pattern", label: "Pattern (optional)", placeholder: "chat:*" }] },
    subscribe: { help: "Subscribe a user's live connections to a channel.", fields: [
      TARGET[0], CHANNEL, TARGET[1], TARGET[2],
      { name: "info", label: "Channel info (JSON, optional)", type: "json" },
      { name: "data", label: "Subscribe data (JSON, optional)", type: "json" }] },
    unsubscribe: { help: "Unsubscribe a user's connections from a channel.",
      fields: [TARGET[0], CHANNEL, TARGET[1], TARGET[2]] },
    disconnect: { help: "Disconnect a user's connections.", fields: TARGET.concat([
      { name: "whitelist", label: "Keep client IDs (comma separated, optional)", type: "list" },
      { name: "code", label: "Disconnect code (optional)", type: "int", placeholder: "3503" },
      { name: "reason", label: "Reason (optional)", placeholder: "force disconnect" }]) },
    info: { help: "Nodes of the cluster with their statistics.", fields: [] },
    rpc: { help: "Server API RPC (no extensions are registered in OSS).", fields: [
      { name: "method", label: "RPC method", required: true },
      { name: "params", label: "Params (JSON, optional)", type: "json" }] }
  };

  function buildMethodSelect() {
    var select = $("method");
    Object.keys(METHODS).forEach(function (m) { select.appendChild(el("option", { value: m }, m)); });
    select.addEventListener("change", buildForm);
    buildForm();
  }

  function buildForm() {
    var method = $("method").value;
    var spec = METHODS[method];
    $("method-help").textContent = spec.help;
    var box = $("action-fields");
    box.textContent = "";
    spec.fields.forEach(function (f) {
      var id = "field-" + f.name;
      var wrap = el("div", { "class": f.type === "bool" ? "field check" : "field" });
      var input;
      if (f.type === "bool") {
        input = el("input", { type: "checkbox", id: id, name: f.name });
      } else if (f.textarea) {
        input = el("textarea", { id: id, name: f.name, rows: "3" });
      } else {
        input = el("input", { type: f.type === "int" ? "number" : "text", id: id, name: f.name });
      }
      if (f.placeholder) { input.setAttribute("placeholder", f.placeholder); }
      if (f.value) { input.value = f.value; }
      if (f.required) { input.setAttribute("required", ""); }
      var label = el("label", { "for": id }, f.label);
      if (f.type === "bool") { wrap.appendChild(input); wrap.appendChild(label); }
      else { wrap.appendChild(label); wrap.appendChild(input); }
      box.appendChild(wrap);
    });
  }

  function readField(f) {
    var input = $("field-" + f.name);
    if (f.type === "bool") { return input.checked ? true : undefined; }
    var raw = input.value.trim();
    if (!raw) {
      if (f.required) { throw new Error(f.label + " is required."); }
      return undefined;
    }
    if (f.type === "int") {
      var n = Number(raw);
      if (!Number.isInteger(n)) { throw new Error(f.label + ": whole number expected."); }
      return n;
    }
    if (f.type === "json") {
      try { return JSON.parse(raw); } catch (e) { throw new Error(f.label + ": invalid JSON."); }
    }
    if (f.type === "list") {
      return raw.split(/[\s,]+/).filter(function (s) { return s.length > 0; });
    }
    return raw;
  }

  function buildParams(method) {
    var params = {};
    METHODS[method].fields.forEach(function (f) {
      var v = readField(f);
      if (v !== undefined) { params[f.name] = v; }
    });
    if (params.since_offset !== undefined || params.since_epoch !== undefined) {
      params.since = { offset: params.since_offset || 0, epoch: params.since_epoch || "" };
    }
    delete params.since_offset;
    delete params.since_epoch;
    if (params.code !== undefined || params.reason !== undefined) {
      params.disconnect = { code: params.code || 3503, reason: params.reason || "" };
    }
    delete params.code;
    delete params.reason;
    return params;
  }

  function runAction(event) {
    event.preventDefault();
    var method = $("method").value;
    var params;
    try { params = buildParams(method); } catch (err) { showResult(method, null, err.message); return; }
    $("action-submit").disabled = true;
    request("admin/api", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ method: method, params: params })
    })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (text) { showResult(method, JSON.parse(text.split("\n")[0]), null); })
      .catch(function (err) {
        if (err instanceof AuthError) { expired(); return; }
        showResult(method, null, err.message);
      })
      .finally(function () { $("action-submit").disabled = false; });
  }

  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  function summarize(method, result) {
    switch (method) {
      case "publish":
        return result.offset ? "Published at offset " + result.offset + " (epoch " +
          result.epoch + ")." : "Published (channel keeps no history).";
      case "broadcast": {
        var rs = result.responses || [];
        var bad = rs.filter(function (x) { return x.error; }).length;
        return "Broadcast to " + plural(rs.length, "channel") + ", " + bad + " failed.";
      }
      case "presence":
        return plural(Object.keys(result.presence || {}).length, "client") + " present.";
      case "presence_stats":
        return plural(result.num_clients, "client") + ", " + plural(result.num_users, "unique user") + ".";
      case "history":
        return plural((result.publications || []).length, "publication") + "; stream at offset " +
          result.offset + ", epoch " + (result.epoch || "–") + ".";
      case "channels":
        return plural(Object.keys(result.channels || {}).length, "active channel") + ".";
      case "info":
        return plural((result.nodes || []).length, "node") + " running.";
      default:
        return "Done.";
    }
  }

  function tableFor(method, result) {
    var rows = [], head = [];
    if (method === "presence") {
      head = ["Client", "User"];
      Object.keys(result.presence || {}).forEach(function (k) {
        rows.push([k, result.presence[k].user]);
      });
    } else if (method === "channels") {
      head = ["Channel", "Clients"];
      Object.keys(result.channels || {}).sort().forEach(function (k) {
        rows.push([k, result.channels[k].num_clients]);
      });
    } else if (method === "history") {
      head = ["Offset", "Data"];
      (result.publications || []).forEach(function (p) {
        rows.push([p.offset === undefined ? "" : p.offset, JSON.stringify(p.data)]);
      });
    } else if (method === "info") {
      head = ["Node", "Clients", "Users", "Subs", "Channels", "Uptime"];
      (result.nodes || []).forEach(function (n) {
        rows.push([n.name, n.num_clients, n.num_users, n.num_subs, n.num_channels,
          formatUptime(n.uptime)]);
      });
    }
    if (!rows.length) { return null; }
    var table = el("table");
    var tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", {}, h)); });
    table.appendChild(el("thead")).appendChild(tr);
    var body = table.appendChild(el("tbody"));
    rows.forEach(function (r) {
      var row = el("tr");
      r.forEach(function (c) { row.appendChild(el("td", {}, c)); });
      body.appendChild(row);
    });
    return table;
  }

  function showResult(method, reply, problem) {
    var card = $("result-card");
    card.hidden = false;
    var summary = $("result-summary");
    var tableBox = $("result-table");
    tableBox.textContent = "";
    summary.classList.remove("error", "ok");
    if (problem) {
      summary.textContent = problem;
      summary.classList.add("error");
      $("result-json").textContent = "";
      return;
    }
    if (reply.error) {
      summary.textContent = "Error " + reply.error.code + ": " + reply.error.message + ".";
      summary.classList.add("error");
    } else {
      summary.textContent = summarize(method, reply.result || {});
      summary.classList.add("ok");
      var table = tableFor(method, reply.result || {});
      if (table) { tableBox.appendChild(table); }
    }
    $("result-json").textContent = JSON.stringify(reply, null, 2);
  }

  // ---- wiring -----------------------------------------------------------------------------
  document.addEventListener("DOMContentLoaded", function () {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", logout);
    $("action-form").addEventListener("submit", runAction);
    window.addEventListener("hashchange", function () { if (!$("topbar").hidden) { route(); } });
    buildMethodSelect();
    boot();
  });
})();
