// The Trellis console: one small script, no framework, no build step. Each view has its own
// URL (/ui/, /ui/services/NAME, /ui/logs, /ui/functions, /ui/send); the data comes from
// /ui/api/... (JSON), /ui/api/logs and /ui/api/function-logs (server-sent events). Text from
// the server is only ever put in the page as text (textContent), never as HTML.
"use strict";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  // Children may be nested lists at any depth (a list of [separator, link] pairs, say): all
  // are flattened, never turned into a comma-joined string.
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}

const main = document.getElementById("main");
let timers = [];
function every(ms, f) { f(); timers.push(setInterval(f, ms)); }
function show(...nodes) { main.replaceChildren(...nodes); }
function badge(status) { return el("span", { class: `badge ${status}` }, status); }
function codeClass(code) { return `c${Math.floor(code / 100)}`; }

let directoryCache = null;
async function directory() {
  if (!directoryCache) directoryCache = await getJSON("/ui/api/directory");
  document.getElementById("region").textContent = `region ${directoryCache.region}`;
  return directoryCache;
}

// ---- Directory -------------------------------------------------------------------------
async function viewDirectory() {
  const d = await directory();
  const services = el("table", {},
    el("tr", {}, el("th", {}, "Service"), el("th", {}, "DNS names"), el("th", {}, "Listeners"),
      el("th", {}, "Auth"), el("th", {}, "Networks")),
    d.services.map(s => el("tr", { class: "service-row" },
      el("td", {}, el("a", { href: `/ui/services/${encodeURIComponent(s.name)}` }, s.name)),
      el("td", { class: "mono" }, s.dnsName, s.customDomainName ? [el("br"), s.customDomainName] : null,
        el("br"), el("span", { class: "muted" }, `${s.name}.trellis.localhost`)),
      el("td", {}, s.listeners.map(l => el("div", {}, `${l.name}: ${l.protocol} :${l.port}`))),
      el("td", {}, s.authType),
      el("td", {}, s.networks.join(", ") || el("span", { class: "muted" }, "none")))));
  const networks = el("table", {},
    el("tr", {}, el("th", {}, "Service network"), el("th", {}, "Auth"), el("th", {}, "Services"),
      el("th", {}, "VPC associations")),
    d.networks.map(n => el("tr", { class: "network-row", "data-network": n.name },
      el("td", {}, n.name), el("td", {}, n.authType),
      el("td", { class: "network-services" }, n.services.map((s, i) => [i ? ", " : "", el("a", { href: `/ui/services/${encodeURIComponent(s)}` }, s)])),
      el("td", {}, n.vpcs.map(v => el("div", {}, `${v.name} (${v.id}) `, el("span", { class: "mono muted" }, v.cidrs.join(" "))))))));
  show(el("h1", {}, "Directory"),
    el("h2", {}, "Services"), el("div", { class: "card" }, services),
    el("h2", {}, "Service networks"), el("div", { class: "card" }, d.networks.length ? networks : el("p", { class: "muted" }, "No service networks.")));
}

// ---- One service: routing picture, live health, traffic charts --------------------------
function targetLine(t, type) {
  const probe = t.lastProbe
    ? `last probe ${new Date(t.lastProbe.at * 1000).toLocaleTimeString()}: ${t.lastProbe.detail}`
    : "";
  const label = type === "LAMBDA" ? t.id : `${t.id}:${t.port}`;
  return el("div", { class: "target", "data-target": label },
    el("span", { class: "mono" }, label), badge(t.status),
    t.reasonCode ? el("span", { class: "muted" }, t.reasonCode) : null,
    el("span", { class: "muted" }, probe));
}

function actionView(action) {
  if (action.fixedResponse !== undefined)
    return el("div", { class: "groups" }, el("div", { class: "group" },
      el("div", { class: "head" }, `fixed response ${action.fixedResponse}`)));
  return el("div", { class: "groups" }, action.forward.map(g => el("div", { class: "group", "data-group": g.targetGroup },
    el("div", { class: "head" },
      el("div", {}, el("b", {}, g.targetGroup), " ", el("span", { class: "muted" }, g.type)),
      el("div", {}, "weight ", el("span", { class: "weight" }, g.weight), ` · ${Math.round(g.sharePercent)}%`),
      el("div", { class: "share" }, el("div", { style: `width:${g.sharePercent}%` })),
      g.healthCheck ? el("div", { class: "muted" }, `checks ${g.healthCheck.path} every ${g.healthCheck.intervalSeconds}s`) : null),
    el("div", { class: "arrow" }, "→"),
    el("div", { class: "targets" }, g.targets.length ? g.targets.map(t => targetLine(t, g.type)) : el("span", { class: "muted" }, "no targets")))));
}

function routingView(svc) {
  return svc.listeners.map(l => el("div", { class: "card" },
    el("div", { class: "listener-head" }, `Listener ${l.name} · ${l.protocol} :${l.port}`),
    l.rules.map(r => el("div", { class: "route" },
      el("div", { class: "rule" }, el("div", { class: "name" }, `${r.priority} · ${r.name}`),
        r.conditions.map(c => el("div", { class: "mono" }, c))),
      el("div", { class: "arrow" }, "→"), actionView(r.action))),
    el("div", { class: "route" },
      el("div", { class: "rule default" }, el("div", { class: "name" }, "default action"),
        el("div", { class: "muted" }, "when no rule matches")),
      el("div", { class: "arrow" }, "→"), actionView(l.defaultAction))));
}

// A small line chart of the last minute, one point a second, the newest at the right edge; a
// null value (a second without requests, for latency) leaves a gap. `log` draws on a log2
// scale: latencies are histogram bucket bounds, which double.
function drawLines(canvas, lines, unit, log) {
  const dpr = devicePixelRatio;
  const w = canvas.width = canvas.clientWidth * dpr;
  const h = canvas.height = canvas.clientHeight * dpr;
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, w, h);
  const values = lines.flatMap(l => l.values).filter(v => v !== null && v !== undefined);
  const f = log ? v => Math.log2(Math.max(v, 0.01)) : v => v;
  const lo = log ? f(Math.min(0.5, ...values)) : 0;
  const max = Math.max(1, ...values);
  const hi = Math.max(lo + 1, f(max));
  const x = (i, n) => w - 2 - ((n - 1 - i) / 59) * (w - 4);
  const y = v => h - 3 - ((f(v) - lo) / (hi - lo)) * (h - 16 * dpr);
  g.strokeStyle = "#e3e7ee"; g.lineWidth = dpr;
  g.beginPath(); g.moveTo(0, h - 2); g.lineTo(w, h - 2); g.stroke();
  g.lineWidth = 1.5 * dpr;
  for (const { values: vs, color } of lines) {
    const n = vs.length;
    g.strokeStyle = color; g.fillStyle = color; g.beginPath();
    let drawing = false;
    vs.forEach((v, i) => {
      if (v === null || v === undefined) { drawing = false; return; }
      const next = vs[i + 1], prev = vs[i - 1];
      // A lone value between gaps is a dot, not an invisible zero-length line.
      if ((prev === null || prev === undefined) && (next === null || next === undefined)) g.fillRect(x(i, n) - dpr, y(v) - dpr, 2 * dpr, 2 * dpr);
      drawing ? g.lineTo(x(i, n), y(v)) : g.moveTo(x(i, n), y(v));
      drawing = true;
    });
    g.stroke();
  }
  g.fillStyle = "#6b7280"; g.font = `${10 * dpr}px system-ui`;
  g.fillText(`${log ? fmtMs(max) : max.toFixed(1)} ${unit}`, 4, 11 * dpr);
}

function fmtMs(v) { return v === null || v === undefined ? "–" : `≤${v < 10 ? v.toFixed(1) : Math.round(v)} ms`; }

const CLASSES = [["2XX", "#1a7f37"], ["3XX", "#2f6fdb"], ["4XX", "#b26a00"], ["5XX", "#c62828"]];

// One traffic card (the service's total, or one target group): requests/s by status class
// and p50/p99 latency, each a chart of the last minute, and the numbers under them. The card
// carries its data as attributes too (data-requests: requests in the window; the latency
// chart's data-t, data-p50, data-p99: its newest second with requests) for tests and scripts.
function trafficCard(title, attrs) {
  const card = {
    classes: el("canvas", { class: "classes" }),
    latency: el("canvas", { class: "latency" }),
    stats: el("div", { class: "stats" }),
  };
  card.node = el("div", { class: "card traffic", ...attrs }, el("b", {}, title),
    el("div", { class: "chart-label muted" }, "requests/s: ", CLASSES.map(([c]) => el("span", { class: `c${c[0]}` }, ` ${c}`))),
    card.classes,
    el("div", { class: "chart-label muted" }, "latency: ", el("span", { class: "p50" }, "p50"), " ", el("span", { class: "p99" }, "p99")),
    card.latency, card.stats);
  return card;
}

function updateTrafficCard(card, points) {
  const rate = (p, c) => { const n = Object.values(p.classes).reduce((a, b) => a + b, 0); return n ? p.classes[c] * p.rps / n : 0; };
  const recent = points.slice(-60);
  // A class with no requests in the window is not drawn (its line would hide the others' at 0).
  drawLines(card.classes, CLASSES.map(([c, color]) => ({ values: recent.map(p => rate(p, c)), color }))
    .filter(l => l.values.some(v => v > 0)), "req/s", false);
  drawLines(card.latency, [{ values: recent.map(p => p.p50Ms), color: "#0f8b8d" }, { values: recent.map(p => p.p99Ms), color: "#8e44ad" }], "", true);
  const sums = Object.fromEntries(CLASSES.map(([c]) => [c, recent.reduce((a, p) => a + (p.classes[c] || 0), 0)]));
  const requests = recent.reduce((a, p) => a + p.requests, 0);
  const last = recent[recent.length - 1] || { rps: 0 };
  const timed = recent.filter(p => p.p50Ms !== null && p.p50Ms !== undefined).pop();
  card.node.dataset.requests = requests;
  if (timed) Object.assign(card.latency.dataset, { t: timed.t, p50: timed.p50Ms, p99: timed.p99Ms ?? "" });
  card.stats.replaceChildren(
    el("div", {}, el("span", { class: "rps" }, `now ${last.rps.toFixed(1)} req/s`),
      el("span", { class: "p50" }, `p50 ${fmtMs(timed?.p50Ms)}`), el("span", { class: "p99" }, `p99 ${fmtMs(timed?.p99Ms)}`)),
    el("div", {}, el("span", { class: "muted" }, `last minute: ${requests} requests`),
      CLASSES.map(([c]) => el("span", { class: `c${c[0]}` }, `${c} ${sums[c]}`))));
}

async function viewService(name) {
  directory().catch(() => {});
  const title = el("h1", {}, `Service ${name}`);
  const info = el("div", { class: "muted" });
  const picture = el("div", { id: "routing" });
  const charts = el("div", { class: "charts" });
  show(title, info, el("h2", {}, "Routing"), picture,
    el("h2", {}, "Traffic (last minute: the whole service, then each target group)"), charts,
    el("p", {}, el("a", { href: `/ui/logs?service=${encodeURIComponent(name)}` }, "Live log of this service →")));
  every(1000, async () => {
    try {
      const svc = await getJSON(`/ui/api/services/${encodeURIComponent(name)}`);
      info.textContent = `${svc.dnsName}${svc.customDomainName ? " · " + svc.customDomainName : ""} · auth ${svc.authType}`;
      picture.replaceChildren(...routingView(svc));
    } catch (e) { picture.replaceChildren(el("p", { class: "notice" }, String(e.message))); }
  });
  const total = trafficCard(`all of ${name}`, { "data-traffic-service": name });
  const cards = new Map();
  every(1000, async () => {
    const t = await getJSON(`/ui/api/traffic?service=${encodeURIComponent(name)}`);
    const service = t.services.find(s => s.service === name);
    if (!service) {
      if (!charts.childElementCount) charts.replaceChildren(el("p", { class: "muted" }, "No requests yet."));
      return;
    }
    if (!total.node.isConnected) charts.replaceChildren(total.node);
    updateTrafficCard(total, service.points);
    // Target groups by name, then the requests that reached none.
    const routes = [...t.routes].sort((a, b) => (a.targetGroup === "-") - (b.targetGroup === "-") || a.targetGroup.localeCompare(b.targetGroup));
    for (const r of routes) {
      let card = cards.get(r.targetGroup);
      if (!card) {
        card = trafficCard(r.targetGroup === "-" ? "no target group (fixed responses, refusals)" : r.targetGroup, { "data-traffic": r.targetGroup });
        cards.set(r.targetGroup, card);
        charts.append(card.node);
      }
      updateTrafficCard(card, r.points);
    }
  });
}

// ---- Live log --------------------------------------------------------------------------
function logLine(rec, names) {
  const pre = el("pre", { class: "mono", hidden: "" }, JSON.stringify(rec, null, 2));
  const svc = names.services.get(rec.serviceArn) || rec.serviceArn;
  const tg = names.groups.get(rec.targetGroupArn) || rec.targetGroupArn;
  const row = el("div", { class: "rec mono", "data-request-id": rec.requestId },
    el("span", {}, `${rec.startTime} `), el("b", { class: codeClass(rec.responseCode) }, rec.responseCode), " ",
    `${rec.requestMethod} ${rec.requestPath} · ${svc} → ${tg} ${rec.targetIpPort} · ${rec.duration} ms`, pre);
  row.addEventListener("click", e => { if (e.target !== pre) pre.hidden = !pre.hidden; });
  return row;
}

async function names() {
  const d = await directory();
  const services = new Map(d.services.map(s => [s.arn, s.name]));
  const groups = new Map();
  const tgs = await getJSON("/ui/api/target-groups").catch(() => ({ targetGroups: [] }));
  for (const g of tgs.targetGroups) groups.set(g.arn, g.name);
  return { services, groups };
}

let source = null;
function tail(query, onRecord, onNotice) {
  if (source) source.close();
  source = new EventSource(`/ui/api/logs?${query}`);
  source.addEventListener("record", e => onRecord(JSON.parse(e.data)));
  source.addEventListener("dropped", e => onNotice(`${JSON.parse(e.data).dropped} records dropped: this page fell behind`));
  source.onopen = () => onNotice(null);
}

async function viewLogs() {
  const params = new URLSearchParams(location.search);
  const d = await directory();
  const n = await names();
  const service = el("select", { id: "service" }, el("option", { value: "" }, "all services"),
    d.services.map(s => el("option", { value: s.name }, s.name)));
  service.value = params.get("service") || "";
  const status = el("select", { id: "status" }, ["", "2XX", "3XX", "4XX", "5XX"].map(s => el("option", { value: s }, s || "any status")));
  status.value = params.get("status") || "";
  const state = el("span", { class: "muted", id: "state" }, "connecting…");
  const log = el("div", { id: "log", class: "card" });
  const notice = el("div", { class: "notice" });
  const connect = () => {
    const q = new URLSearchParams();
    if (service.value) q.set("service", service.value);
    if (status.value) q.set("status", status.value);
    history.replaceState(null, "", `/ui/logs${q.toString() ? "?" + q : ""}`);
    log.replaceChildren();
    tail(q.toString(), rec => {
      log.prepend(logLine(rec, n));
      while (log.childElementCount > 500) log.lastChild.remove();
    }, msg => { if (msg) notice.textContent = msg; state.textContent = "live"; });
  };
  service.addEventListener("change", connect);
  status.addEventListener("change", connect);
  show(el("h1", {}, "Live access log"),
    el("div", { class: "filters" }, "Service", service, "Status", status, state,
      el("span", { class: "muted" }, "newest first; click a record for its JSON")), notice, log);
  connect();
}

// ---- Functions -------------------------------------------------------------------------
// Each function's card: its environments (starting / idle / busy, from the runtime), cold
// starts, invocations by outcome, its last invocations (from the runtime, kept across page
// loads) and its log tail (/ui/api/function-logs: what it prints and its START/END/REPORT lines).
function fmtDuration(ms) { return ms === null || ms === undefined ? "–" : `${ms < 10 ? ms.toFixed(2) : ms.toFixed(1)} ms`; }

function invocationRow(r) {
  const status = r.status === null ? el("span", { class: "muted" }, "running") : el("b", { class: codeClass(r.status) }, r.status);
  return el("tr", { class: "invocation", "data-request-id": r.requestId },
    el("td", { class: "mono" }, new Date(r.startTime * 1000).toLocaleTimeString()),
    el("td", { class: "mono id" }, r.requestId),
    el("td", {}, status, " ", el("span", { class: r.outcome === "success" ? "c2" : "c5" }, r.outcome ?? "")),
    el("td", { class: "duration" }, fmtDuration(r.durationMs ?? r.totalMs)),
    el("td", {}, r.coldStart ? el("span", { class: "badge cold" }, `cold · init ${fmtDuration(r.initDurationMs)}`) : el("span", { class: "muted" }, "warm")),
    el("td", { class: "muted error" }, r.error ?? ""));
}

function functionCard(name) {
  const card = {
    info: el("span", { class: "muted" }),
    stats: el("div", { class: "stats" }),
    invocations: el("tbody"),
    log: el("div", { class: "fn-log mono", "data-function-log": name }),
    notice: el("div", { class: "notice" }),
  };
  card.node = el("div", { class: "card", "data-function": name },
    el("b", {}, name), " ", card.info, card.stats,
    el("div", { class: "fn-panels" },
      el("div", {}, el("h2", {}, "Last invocations"),
        el("div", { class: "fn-scroll" }, el("table", { class: "invocations" },
          el("thead", {}, el("tr", {}, ["Start", "Request id", "Status", "Duration", "Cold start", "Error"].map(h => el("th", {}, h)))),
          card.invocations))),
      el("div", {}, el("h2", {}, "Log"), card.notice, card.log)));
  card.log.append(el("div", { class: "muted" }, "Lines appear here as the function writes them."));
  return card;
}

function updateCard(card, fn) {
  card.info.textContent = `${fn.runtime} · ${fn.memorySizeMb} MB · timeout ${fn.timeoutSeconds}s · concurrency ${fn.concurrency} · target groups: ${fn.targetGroups.join(", ") || "none"}`;
  const env = fn.environments;
  card.stats.replaceChildren(
    ...(env ? [el("span", { class: "env-starting" }, `starting ${env.starting}`), el("span", { class: "env-idle" }, `idle ${env.idle}`),
      el("span", { class: "env-busy" }, `busy ${env.busy}`), el("span", {}, `queued ${env.queued}`)]
      : [el("span", { class: "muted" }, "a fresh WebAssembly instance per invocation")]),
    el("span", { class: "cold-starts" }, `cold starts ${fn.coldStarts}`),
    ...Object.entries(fn.invocations).filter(([, v]) => v > 0).map(([k, v]) => el("span", { class: k === "success" ? "c2" : "c5" }, `${k} ${v}`)));
  card.invocations.replaceChildren(...(fn.lastInvocations.length ? fn.lastInvocations.map(invocationRow)
    : [el("tr", {}, el("td", { class: "muted", colspan: "6" }, "No invocations yet."))]));
}

async function viewFunctions() {
  const list = el("div");
  show(el("h1", {}, "Functions"), list);
  const cards = new Map();
  every(1000, async () => {
    const f = await getJSON("/ui/api/functions");
    if (!f.functions.length) { list.replaceChildren(el("p", { class: "muted" }, "No functions in this config.")); return; }
    for (const fn of f.functions) {
      let card = cards.get(fn.name);
      if (!card) { card = functionCard(fn.name); cards.set(fn.name, card); list.append(card.node); }
      updateCard(card, fn);
    }
  });
  if (source) source.close();
  source = new EventSource("/ui/api/function-logs");
  source.addEventListener("line", e => {
    const line = JSON.parse(e.data);
    const card = cards.get(line.function);
    if (!card) return;
    if (card.log.firstChild && card.log.firstChild.classList.contains("muted")) card.log.replaceChildren();
    card.log.append(el("div", { class: "fn-line" },
      el("span", { class: "muted" }, `${new Date(line.at * 1000).toLocaleTimeString()} `), line.text));
    while (card.log.childElementCount > 200) card.log.firstChild.remove();
    card.log.scrollTop = card.log.scrollHeight;
  });
  source.addEventListener("dropped", e => {
    const n = JSON.parse(e.data).dropped;
    for (const card of cards.values()) card.notice.textContent = `${n} log lines dropped: this page fell behind`;
  });
}

// ---- Send a request --------------------------------------------------------------------
async function viewSend() {
  const d = await directory();
  const params = new URLSearchParams(location.search);
  const service = el("select", { name: "service", id: "send-service" }, d.services.map(s => el("option", { value: s.name }, s.name)));
  if (params.get("service")) service.value = params.get("service");
  const method = el("select", { name: "method", id: "send-method" }, ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"].map(m => el("option", {}, m)));
  const path = el("input", { name: "path", id: "send-path", value: params.get("path") || "/" });
  const headers = el("textarea", { name: "headers", id: "send-headers", placeholder: "Name: value (one a line)" });
  const body = el("textarea", { name: "body", id: "send-body" });
  // Signed by Trellis as one of the config's identities (SigV4, vpc-lattice-svcs), or not at all.
  const identity = el("select", { name: "identity", id: "send-identity" },
    el("option", { value: "" }, "unsigned (anonymous)"),
    (d.identities || []).map(i => el("option", { value: i.accessKeyId }, `${i.principal} (${i.accessKeyId})`)));
  if (params.get("identity")) identity.value = params.get("identity");
  const answer = el("div", { id: "answer" });
  const button = el("button", { type: "submit", id: "send-button" }, "Send");
  const form = el("form", { class: "send card" },
    el("label", {}, "Service"), service, el("label", {}, "Method"), method, el("label", {}, "Path"), path,
    el("label", {}, "Headers"), headers, el("label", {}, "Body"), body, el("label", {}, "Sign as"), identity,
    el("span"), el("div", {}, button,
      el("span", { class: "muted" }, " sent to the service's first HTTP listener (else its HTTPS one, over TLS), Host set to its DNS name")));
  form.addEventListener("submit", async e => {
    e.preventDefault();
    answer.replaceChildren(el("p", { class: "muted" }, "sending…"));
    const pairs = headers.value.split("\n").map(l => l.trim()).filter(Boolean).map(l => {
      const i = l.indexOf(":"); return i < 0 ? [l, ""] : [l.slice(0, i).trim(), l.slice(i + 1).trim()];
    });
    const r = await fetch("/ui/api/send", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: service.value, method: method.value, path: path.value, headers: pairs, body: body.value, identity: identity.value }) });
    const a = await r.json();
    if (!r.ok) { answer.replaceChildren(el("p", { class: "notice" }, a.error)); return; }
    answer.replaceChildren(el("div", { class: "card" },
      el("h2", {}, el("span", { class: codeClass(a.status), id: "answer-status" }, a.status), ` from ${a.url}`),
      el("div", { id: "answer-route" }, `rule: ${a.rule ?? "–"} · target group: ${a.targetGroup ?? "–"} · target: ${a.target ?? "–"} · ${a.elapsedMs.toFixed(1)} ms · request id `, el("span", { class: "mono" }, a.requestId)),
      el("div", { id: "answer-signed" }, a.signedAs ? `signed (SigV4) as ${a.signedAs}` : "unsigned"),
      el("h2", {}, "Headers"), el("pre", { class: "mono" }, a.headers.map(([k, v]) => `${k}: ${v}`).join("\n")),
      el("h2", {}, "Body"), el("pre", { class: "mono", id: "answer-body" }, a.body),
      el("details", {}, el("summary", {}, "access-log record"), el("pre", { class: "mono" }, JSON.stringify(a.record, null, 2)))));
  });
  show(el("h1", {}, "Send a request"), form, answer);
}

// ---- Router ----------------------------------------------------------------------------
(async function route() {
  const p = location.pathname;
  let view = "directory";
  for (const a of document.querySelectorAll("header nav a")) {
    if (a.getAttribute("href") === p) { a.classList.add("active"); view = a.dataset.view; }
  }
  try {
    if (p.startsWith("/ui/services/")) await viewService(decodeURIComponent(p.slice("/ui/services/".length)));
    else if (view === "logs") await viewLogs();
    else if (view === "functions") await viewFunctions();
    else if (view === "send") await viewSend();
    else await viewDirectory();
  } catch (e) {
    show(el("p", { class: "notice" }, `The console could not load: ${e.message}`));
  }
})();
