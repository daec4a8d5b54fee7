// The live status page (server/status_page.h): the HTML, CSS and
// JavaScript served at GET / and /status, and the headers that go with it.
//
// The script polls every 2 s: /metrics (parsed here, in the browser) for
// the throughput counters, the queue depth and the shaping state, and the
// admin API's stats, queues and suspensions. Rates are counter deltas over
// the poll interval; the queue-depth history (the last hour) lives only in
// the page. Buttons POST to /api/admin/v1/{suspend,resume,flush}. Every
// value from the relay goes into the page as text (textContent), never as
// markup, so a domain name cannot inject anything.
//
// Limits: the history is lost on reload; a counter reset (a restart) shows
// one interval of rate 0 rather than a negative rate.
#include "sluice/server/status_page.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "sluice/base/check.h"
#include "sluice/dkim/key.h"

namespace sluice::server {
namespace {

constexpr std::string_view kPage = R"SLUICE_PAGE(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sluice status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; background: #fafafa; }
  h1 { font-size: 1.3em; margin: 0 0 .5em; }
  h2 { font-size: 1.05em; margin: 1.2em 0 .4em; }
  .row { display: flex; flex-wrap: wrap; gap: 1em; }
  .card { background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: .6em 1em; min-width: 12em; }
  .big { font-size: 1.8em; font-variant-numeric: tabular-nums; }
  .small { color: #666; font-size: .85em; }
  table { border-collapse: collapse; background: #fff; }
  th, td { border: 1px solid #ddd; padding: .2em .6em; text-align: right; }
  th:first-child, td:first-child { text-align: left; }
  .suspended { color: #b00; font-weight: bold; }
  .backoff { color: #a60; }
  #status.error { color: #b00; }
  svg { background: #fff; border: 1px solid #ddd; }
  button { font-size: .85em; }
</style>
</head>
<body>
<h1>Sluice status</h1>
<form id="login">
  <label>Admin token <input id="token" type="password" size="40" autocomplete="off"></label>
  <button id="save" type="submit">Use token</button>
  <span class="small">kept in this tab's sessionStorage only</span>
</form>
<p id="status" class="small">enter a token (sluice http-token NAME)</p>

<div class="row">
  <div class="card"><div class="small">in: messages accepted/s</div>
    <div id="in-rate" class="big">-</div><div class="small">total <span id="in-total">-</span></div></div>
  <div class="card"><div class="small">out: recipients delivered/s</div>
    <div id="out-rate" class="big">-</div><div class="small">total <span id="out-total">-</span></div></div>
  <div class="card"><div class="small">queued recipients</div>
    <div id="depth-now" class="big">-</div><div class="small"><span id="domains">-</span> domains,
    <span id="suspended-count">-</span> suspended, <span id="backoff-count">-</span> in backoff</div></div>
</div>

<h2>Queue depth, last hour</h2>
<svg id="depth-svg" width="720" height="140" viewBox="0 0 720 140" role="img" aria-label="queued recipients over the last hour">
  <polyline id="depth-line" fill="none" stroke="#36c" stroke-width="1.5" points=""></polyline>
  <text id="depth-max" x="4" y="12" font-size="11" fill="#666"></text>
  <text x="4" y="136" font-size="11" fill="#666">0</text>
</svg>

<h2>Recipient outcomes</h2>
<p class="small">No metric or endpoint gives bounce reasons; these are the
<code>sluice_recipients_total</code> counters by outcome since start (the accounting
log's Bounce records carry the reasons).</p>
<table id="outcomes"><thead><tr><th>outcome</th><th>recipients</th><th>per s</th></tr></thead><tbody></tbody></table>

<h2>Busiest destinations</h2>
<table id="busiest"><thead><tr><th>domain</th><th>queued</th><th>ready</th><th>deferred</th>
<th>in flight</th><th>conns</th><th>shaping</th><th></th></tr></thead><tbody></tbody></table>

<h2>Most deferred destinations</h2>
<table id="deferred"><thead><tr><th>domain</th><th>queued</th><th>ready</th><th>deferred</th>
<th>in flight</th><th>conns</th><th>shaping</th><th></th></tr></thead><tbody></tbody></table>
<p id="action-result" class="small"></p>

<script>
"use strict";
const POLL_MS = 2000;           // how often the page asks the relay
const HISTORY_S = 3600;         // queue-depth history kept in the page
const TOP = 10;                 // rows in each destination table
const OUTCOMES = ["delivered", "deferred", "bounced", "expired", "deleted"];
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("sluice.token") || "";
let prev = null;                // the previous poll's counters, for rates
const history = [];             // [{t: seconds, v: queued recipients}]
let timer = null;

// Prometheus text format: [{name, labels: {k: v}, value}].
function parseMetrics(text) {
  const out = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const l of text.split("\n")) {
    if (l === "" || l[0] === "#") continue;
    const m = line.exec(l);
    if (!m) continue;
    const labels = {};
    let lm;
    label.lastIndex = 0;
    while ((lm = label.exec(m[2] || "")) !== null) {
      labels[lm[1]] = lm[2].replace(/\\n/g, "\n").replace(/\\(.)/g, "$1");
    }
    out.push({name: m[1], labels: labels, value: Number(m[3])});
  }
  return out;
}

function sum(samples, name, match) {
  let s = 0;
  for (const x of samples) {
    if (x.name !== name) continue;
    let ok = true;
    for (const k in (match || {})) if (x.labels[k] !== match[k]) ok = false;
    if (ok) s += x.value;
  }
  return s;
}

async function get(path) {
  const r = await fetch(path, {headers: {"Authorization": "Bearer " + token}, cache: "no-store"});
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) {}
    throw new Error(path + ": " + msg);
  }
  return path === "/metrics" ? r.text() : r.json();
}

function rate(now, before, dt) {
  if (before === undefined || dt <= 0 || now < before) return 0;
  return (now - before) / dt;
}

function fmt(x) { return x >= 100 ? x.toFixed(0) : x.toFixed(1); }

function setText(id, text) { $(id).textContent = String(text); }

function drawHistory(t) {
  while (history.length > 0 && history[0].t < t - HISTORY_S) history.shift();
  let max = 1;
  for (const p of history) max = Math.max(max, p.v);
  const w = 720, h = 140, top = 16, bottom = 6;
  const pts = history.map((p) => {
    const x = w - (t - p.t) / HISTORY_S * w;
    const y = h - bottom - p.v / max * (h - top - bottom);
    return x.toFixed(1) + "," + y.toFixed(1);
  });
  $("depth-line").setAttribute("points", pts.join(" "));
  setText("depth-max", max);
}

// One destination's shaping state from /queues and the metrics gauges.
function shaping(q, ratio) {
  const parts = [];
  if (q.suspended) parts.push("suspended");
  if (q.held_domain) parts.push("held");
  if (ratio < 1) parts.push("backoff " + Math.round(ratio * 100) + "%");
  return parts.join(", ");
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function button(td, action, domain) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = action[0].toUpperCase() + action.slice(1);
  b.dataset.action = action;
  b.dataset.domain = domain;
  td.appendChild(b);
}

function fillTable(id, rows, ratios) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  for (const q of rows) {
    const tr = document.createElement("tr");
    tr.dataset.domain = q.domain;
    const ratio = ratios[q.domain] === undefined ? 1 : ratios[q.domain];
    const state = shaping(q, ratio);
    cell(tr, q.domain);
    cell(tr, q.recipients);
    cell(tr, q.ready);
    cell(tr, q.deferred);
    cell(tr, q.in_flight);
    cell(tr, q.connections);
    cell(tr, state, q.suspended ? "suspended" : (ratio < 1 ? "backoff" : ""));
    const td = document.createElement("td");
    button(td, q.suspended ? "resume" : "suspend", q.domain);
    button(td, "flush", q.domain);
    tr.appendChild(td);
    body.appendChild(tr);
  }
}

function render(samples, stats, queues, suspensions, t) {
  const c = {
    accepted: sum(samples, "sluice_messages_received_total", {outcome: "accepted"}),
    depth: sum(samples, "sluice_queue_recipients"),
  };
  for (const o of OUTCOMES) c[o] = sum(samples, "sluice_recipients_total", {outcome: o});
  const dt = prev ? t - prev.t : 0;
  setText("in-rate", fmt(rate(c.accepted, prev && prev.accepted, dt)));
  setText("out-rate", fmt(rate(c.delivered, prev && prev.delivered, dt)));
  setText("in-total", c.accepted);
  setText("out-total", c.delivered);
  setText("depth-now", c.depth);
  history.push({t: t, v: c.depth});
  drawHistory(t);

  const outBody = $("outcomes").tBodies[0];
  outBody.replaceChildren();
  for (const o of OUTCOMES) {
    const tr = document.createElement("tr");
    tr.dataset.outcome = o;
    cell(tr, o);
    cell(tr, c[o]);
    cell(tr, fmt(rate(c[o], prev && prev[o], dt)));
    outBody.appendChild(tr);
  }

  // The smallest limit ratio any shard reports for a domain.
  const ratios = {};
  for (const x of samples) {
    if (x.name !== "sluice_destination_limit_ratio") continue;
    const d = x.labels.domain;
    ratios[d] = Math.min(ratios[d] === undefined ? 1 : ratios[d], x.value);
  }
  const suspended = new Set(suspensions.map((s) => s.domain));
  for (const q of queues) q.suspended = q.suspended || suspended.has(q.domain);
  const busy = queues.slice().sort((a, b) =>
      (b.recipients + b.in_flight) - (a.recipients + a.in_flight) || a.domain.localeCompare(b.domain));
  fillTable("busiest", busy.slice(0, TOP), ratios);
  const deferred = queues.filter((q) => q.deferred > 0)
      .sort((a, b) => b.deferred - a.deferred || a.domain.localeCompare(b.domain));
  fillTable("deferred", deferred.slice(0, TOP), ratios);
  setText("domains", queues.length);
  setText("suspended-count", suspensions.length);
  setText("backoff-count", Object.values(ratios).filter((r) => r < 1).length);
  prev = c;
  prev.t = t;
  const tot = stats.totals || {};
  setText("status", "updated " + new Date().toLocaleTimeString() + "; received " +
      (tot.jobs_received || 0) + " jobs, " + (tot.live_messages || 0) + " live messages");
  $("status").className = "small";
}

async function poll() {
  if (!token) return;
  try {
    const [text, stats, queues, suspensions] = await Promise.all([
      get("/metrics"), get("/api/admin/v1/stats"), get("/api/admin/v1/queues"),
      get("/api/admin/v1/suspensions")]);
    render(parseMetrics(text), stats, queues, suspensions, performance.now() / 1000);
  } catch (e) {
    setText("status", String(e.message || e));
    $("status").className = "small error";
  }
}

async function act(action, domain) {
  const body = new URLSearchParams({domain: domain});
  if (action === "suspend") body.set("reason", "suspended from the status page");
  try {
    const r = await fetch("/api/admin/v1/" + action, {method: "POST", body: body,
        headers: {"Authorization": "Bearer " + token}});
    const doc = await r.json();
    setText("action-result", action + " " + domain + ": " +
        (r.ok ? JSON.stringify(doc) : (doc.error || r.status)));
  } catch (e) {
    setText("action-result", action + " " + domain + ": " + e);
  }
  poll();
}

document.addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (b) act(b.dataset.action, b.dataset.domain);
});

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("sluice.token", token);
  $("token").value = "";
  prev = null;
  poll();
});

timer = setInterval(poll, POLL_MS);
poll();
</script>
</body>
</html>
)SLUICE_PAGE";

// 'sha256-BASE64' of the text between `open` and `close` in the page: the
// CSP source that allows exactly that inline element and nothing else.
std::string InlineHash(std::string_view open, std::string_view close) {
  const size_t start = kPage.find(open);
  SLUICE_CHECK(start != std::string_view::npos);
  const size_t from = start + open.size();
  const size_t end = kPage.find(close, from);
  SLUICE_CHECK(end != std::string_view::npos);
  dkim::Sha256 h;
  h.Update(kPage.substr(from, end - from));
  const dkim::Digest d = h.Final();
  const std::string raw(reinterpret_cast<const char*>(d.data()), d.size());
  return absl::StrCat("'sha256-", absl::Base64Escape(raw), "'");
}

// What the page may load: its own inline style and script (by hash, so no
// other inline code runs either), and fetches to this origin. Nothing from
// elsewhere, no plugins, no framing, no form posts.
const std::string& ContentSecurityPolicy() {
  static const std::string* csp = new std::string(
      absl::StrCat("default-src 'none'; script-src ", InlineHash("<script>", "</script>"),
                   "; style-src ", InlineHash("<style>", "</style>"),
                   "; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                   "frame-ancestors 'none'"));
  return *csp;
}

}  // namespace

std::string_view StatusPageHtml() { return kPage; }

http::Response StatusPageResponse() {
  http::Response r;
  r.content_type = "text/html; charset=utf-8";
  r.body = std::string(kPage);
  r.headers.emplace_back("Content-Security-Policy", ContentSecurityPolicy());
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace sluice::server
