// pyggy console: plain ES module over the REST API (no build step). One page of messages per
// request at most; the same logins as the TCP and Kafka doors (a JWT kept in sessionStorage).

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s).replace(/[&<>"']/g,
  (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const MAX_PAGE = 100;
const TRACE_URL = localStorage.getItem("pyggy.traceUrl") || "http://localhost:16686";
let timers = [];

function clearTimers() { timers.forEach(clearInterval); timers = []; }

async function api(method, path, body) {
  const headers = {};
  const token = sessionStorage.getItem("pyggy.token");
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers,
    body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  // u128 message ids exceed a JS number: keep their exact digits (JSON.parse source access)
  const data = text ? JSON.parse(text, (k, v, ctx) => k === "id" && typeof v === "number" &&
    !Number.isSafeInteger(v) && ctx?.source ? ctx.source : v) : null;
  if (res.status === 401 && !path.startsWith("/users/login")) { showLogin(); }
  if (!res.ok) throw Object.assign(new Error(data?.reason || res.statusText), { status: res.status });
  return data;
}

// -- formatting -----------------------------------------------------------------------------
const b64bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const utf8 = (bytes) => new TextDecoder("utf-8", { fatal: false }).decode(bytes);
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
const size = (n) => n < 1024 ? `${n} B` : n < 1 << 20 ? `${(n / 1024).toFixed(1)} KiB`
  : `${(n / (1 << 20)).toFixed(1)} MiB`;
const time = (us) => new Date(Number(us) / 1000).toISOString().replace("T", " ").replace("Z", "");

function payloadAs(b64, format) {
  const bytes = b64bytes(b64);
  if (format === "hex") return hex(bytes);
  const text = utf8(bytes);
  if (format === "json") {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return `(not JSON) ${text}`; }
  }
  return text;
}

function headerValue(v) {
  const bytes = b64bytes(v.value);
  const view = new DataView(bytes.buffer);
  switch (v.kind) {
    case "bool": return bytes[0] ? "true" : "false";
    case "int8": return view.getInt8(0); case "uint8": return view.getUint8(0);
    case "int16": return view.getInt16(0, true); case "uint16": return view.getUint16(0, true);
    case "int32": return view.getInt32(0, true); case "uint32": return view.getUint32(0, true);
    case "int64": return view.getBigInt64(0, true); case "uint64": return view.getBigUint64(0, true);
    case "float32": return view.getFloat32(0, true); case "float64": return view.getFloat64(0, true);
    case "raw": return hex(bytes);
    default: return utf8(bytes);
  }
}

function headersCell(headers) {
  if (typeof headers === "string") return `<span class="muted">raw ${esc(headers)}</span>`;
  return headers.map((h) => {
    const key = utf8(b64bytes(h.key.value));
    const value = String(headerValue(h.value));
    let shown = esc(value);
    const m = key === "traceparent" && /^[0-9a-f]{2}-([0-9a-f]{32})-/.exec(value);
    if (m) shown = `<a class="trace" href="${esc(TRACE_URL)}/trace/${m[1]}" target="_blank"
                       rel="noopener">${esc(value)}</a>`;
    return `<div class="header-kv" data-key="${esc(key)}">${esc(key)} = ${shown}</div>`;
  }).join("");
}

// -- views ------------------------------------------------------------------------------------
function showLogin() {
  clearTimers();
  sessionStorage.removeItem("pyggy.token");
  $("#nav").hidden = true;
  $("#throughput-panel").hidden = true;
  $("#view").innerHTML = "";
  $("#login-view").hidden = false;
}

async function streamsView() {
  const streams = await api("GET", "/streams");
  $("#view").innerHTML = `<div class="card"><h2>Streams</h2><table id="streams">
    <tr><th>Id</th><th>Name</th><th>Topics</th><th>Messages</th><th>Size</th></tr>
    ${streams.map((s) => `<tr><td class="num">${s.id}</td>
      <td><a class="stream-link" href="#/stream/${s.id}">${esc(s.name)}</a></td>
      <td class="num">${s.topics_count}</td><td class="num">${s.messages_count}</td>
      <td class="num">${size(s.size)}</td></tr>`).join("")}</table></div>`;
}

async function streamView(sid) {
  const s = await api("GET", `/streams/${sid}`);
  $("#view").innerHTML = `<div class="card"><h2><a href="#/streams">Streams</a> /
    ${esc(s.name)}</h2><table id="topics">
    <tr><th>Id</th><th>Topic</th><th>Partitions</th><th>Messages</th><th>Size</th></tr>
    ${s.topics.map((t) => `<tr><td class="num">${t.id}</td>
      <td><a class="topic-link" href="#/topic/${s.id}/${t.id}">${esc(t.name)}</a></td>
      <td class="num">${t.partitions_count}</td><td class="num">${t.messages_count}</td>
      <td class="num">${size(t.size)}</td></tr>`).join("")}</table></div>`;
}

async function topicView(sid, tid) {
  const [s, t] = await Promise.all([api("GET", `/streams/${sid}`),
    api("GET", `/streams/${sid}/topics/${tid}`)]);
  const base = `/streams/${sid}/topics/${tid}`;
  $("#view").innerHTML = `
    <div class="card"><h2><a href="#/streams">Streams</a> /
      <a href="#/stream/${sid}">${esc(s.name)}</a> / <span id="topic-name">${esc(t.name)}</span>
    </h2>
    <table id="partitions"><tr><th>Partition</th><th>Messages</th><th>Current offset</th>
      <th>Size</th><th>Segments</th></tr>
      ${t.partitions.map((p) => `<tr><td class="num">${p.id}</td>
        <td class="num">${p.messages_count}</td><td class="num">${p.current_offset}</td>
        <td class="num">${size(p.size)}</td><td><button class="segments-button"
        data-partition="${p.id}">${p.segments_count} segments</button></td></tr>`).join("")}
    </table><div id="segments"></div></div>
    <div class="card"><h2>Consumers and lag <small>(Iggy and Kafka, refreshed every 2 s)</small>
      </h2><table id="lag"></table></div>
    <div class="card"><h2>Messages</h2>
      <div class="controls">
        <label>Partition <select id="partition">${t.partitions.map((p) =>
          `<option value="${p.id}">${p.id}</option>`).join("")}</select></label>
        <label>From <select id="mode"><option value="offset">offset</option>
          <option value="timestamp">timestamp (µs)</option></select></label>
        <label>Value <input id="from" type="number" min="0" value="0"></label>
        <label>Page size <input id="page-size" type="number" min="1" max="${MAX_PAGE}"
          value="20"></label>
        <label>Payload as <select id="format"><option>text</option><option>json</option>
          <option>hex</option></select></label>
        <button id="load" type="button">Load</button>
        <button id="next-page" type="button" disabled>Next page</button>
      </div>
      <table id="messages"></table></div>`;
  let last = [];
  const render = () => {
    const format = $("#format").value;
    $("#messages").innerHTML = `<tr><th>Offset</th><th>Timestamp</th><th>Id</th>
      <th>Payload</th><th>Headers</th></tr>` + last.map((m) => `<tr class="message">
      <td class="num">${m.header.offset}</td><td>${time(m.header.timestamp)}</td>
      <td class="num id">${esc(m.header.id)}</td>
      <td class="payload">${esc(payloadAs(m.payload, format))}</td>
      <td>${headersCell(m.user_headers)}</td></tr>`).join("");
  };
  const load = async (kind, value) => {
    const count = Math.min(MAX_PAGE, Math.max(1, Number($("#page-size").value) || 20));
    const polled = await api("GET", `${base}/messages?partition_id=${$("#partition").value}` +
      `&kind=${kind}&value=${value}&count=${count}`);
    last = polled.messages;
    $("#next-page").disabled = last.length === 0;
    render();
  };
  $("#load").onclick = () => load($("#mode").value, Number($("#from").value) || 0);
  $("#next-page").onclick = () => {
    const next = last.length ? Number(last[last.length - 1].header.offset) + 1 : 0;
    $("#mode").value = "offset"; $("#from").value = next;
    load("offset", next);
  };
  $("#format").onchange = render;
  document.querySelectorAll(".segments-button").forEach((b) => b.onclick = async () => {
    const segs = await api("GET", `${base}/partitions/${b.dataset.partition}/segments`);
    $("#segments").innerHTML = `<table><tr><th>Partition ${b.dataset.partition}: first offset
      </th><th>Next offset</th><th>Size</th><th>Sealed</th><th>Tier</th></tr>
      ${segs.map((g) => `<tr><td class="num">${g.start_offset}</td>
        <td class="num">${g.next_offset}</td><td class="num">${size(g.size)}</td>
        <td>${g.sealed ? "yes" : "open"}</td><td class="tier-${g.tier}">${g.tier}</td></tr>`)
        .join("")}</table>`;
  });
  const lag = async () => {
    const rows = await api("GET", `${base}/lag`);
    $("#lag").innerHTML = `<tr><th>Door</th><th>Consumer</th><th>Partition</th><th>Next offset</th>
      <th>End</th><th>Lag</th><th>Members</th></tr>` + (rows.length ? rows.map((r) => `
      <tr class="lag-row" data-door="${r.door}" data-group="${esc(r.group)}"
          data-partition="${r.partition}"><td>${r.door}</td>
        <td>${esc(r.group)} <span class="muted">${r.kind}</span></td>
        <td class="num">${r.partition}</td><td class="num">${r.next_offset}</td>
        <td class="num">${r.end_offset}</td>
        <td class="num lag ${r.lag ? "lag-some" : "lag-zero"}">${r.lag}</td>
        <td>${r.members.map((m) => esc(m.client_id ? `${m.client_id}@${m.host}`
          : `client ${m.member_id}`)).join("<br>") || '<span class="muted">none</span>'}</td>
      </tr>`).join("") : `<tr><td colspan="7" class="muted">no consumer has committed an offset
      </td></tr>`);
  };
  await lag();
  timers.push(setInterval(() => lag().catch(() => {}), 2000));
}

async function usersView() {
  const users = await api("GET", "/users");
  $("#view").innerHTML = `<div class="card"><h2>Users</h2><table id="users">
    <tr><th>Id</th><th>User</th><th>Status</th><th>Created</th></tr>
    ${users.map((u) => `<tr><td class="num">${u.id}</td>
      <td><a class="user-link" href="#/user/${u.id}">${esc(u.username)}</a></td>
      <td>${u.status}</td><td>${time(u.created_at)}</td></tr>`).join("")}</table></div>
    <div id="user-detail"></div>`;
}

async function userView(id) {
  await usersView();
  const u = await api("GET", `/users/${id}`);
  const p = u.permissions;
  const flags = (o) => Object.entries(o || {}).filter(([k, v]) => typeof v === "boolean")
    .map(([k, v]) => `<tr><td>${k}</td><td>${v ? "✔" : ""}</td></tr>`).join("");
  $("#user-detail").innerHTML = `<div class="card"><h2>${esc(u.username)}: permissions</h2>
    ${p ? `<table id="global-permissions"><tr><th>Global</th><th></th></tr>${flags(p.global)}
      </table>${Object.entries(p.streams || {}).map(([sid, sp]) => `<table>
        <tr><th>Stream ${sid}</th><th></th></tr>${flags(sp)}</table>`).join("")}`
      : '<p class="muted">no permissions</p>'}</div>`;
}

// -- throughput chart (from /stats, every 2 s) ------------------------------------------------
function startThroughput() {
  const points = [];
  let prev = null;
  const draw = () => {
    const c = $("#throughput"), g = c.getContext("2d");
    g.clearRect(0, 0, c.width, c.height);
    const max = Math.max(1, ...points);
    g.strokeStyle = "#d1495b"; g.lineWidth = 2; g.beginPath();
    points.forEach((v, i) => {
      const x = (i / 59) * c.width, y = c.height - 4 - (v / max) * (c.height - 8);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  };
  const tick = async () => {
    const s = await api("GET", "/stats");
    const now = performance.now();
    if (prev) {
      const rate = (s.messages_count - prev.messages) / ((now - prev.at) / 1000);
      points.push(Math.max(0, rate)); if (points.length > 60) points.shift();
      $("#throughput-now").textContent = `${rate.toFixed(1)} messages/s, ` +
        `${s.messages_count} stored`;
      draw();
    }
    prev = { messages: s.messages_count, at: now };
  };
  tick().then(() => {
    $("#throughput-panel").hidden = false;
    setInterval(() => tick().catch(() => {}), 2000);
  }).catch(() => {});  // no read_servers permission: no chart
}

// -- routing ----------------------------------------------------------------------------------
async function route() {
  clearTimers();
  if (!sessionStorage.getItem("pyggy.token")) return showLogin();
  $("#login-view").hidden = true;
  $("#nav").hidden = false;
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  try {
    if (parts[0] === "stream") await streamView(parts[1]);
    else if (parts[0] === "topic") await topicView(parts[1], parts[2]);
    else if (parts[0] === "users") await usersView();
    else if (parts[0] === "user") await userView(parts[1]);
    else await streamsView();
  } catch (e) {
    if (e.status !== 401) $("#view").innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const identity = await api("POST", "/users/login",
      { username: $("#username").value, password: $("#password").value });
    sessionStorage.setItem("pyggy.token", identity.access_token.token);
    sessionStorage.setItem("pyggy.user", $("#username").value);
    $("#login-error").textContent = "";
    $("#whoami").textContent = $("#username").value;
    startThroughput();
    route();
  } catch (e) { $("#login-error").textContent = e.message; }
});
$("#logout").onclick = async () => {
  try { await api("DELETE", "/users/logout"); } finally { showLogin(); }
};
window.addEventListener("hashchange", route);
if (sessionStorage.getItem("pyggy.token")) {
  $("#whoami").textContent = sessionStorage.getItem("pyggy.user") || "";
  startThroughput();
}
route();
