// The dashboard: plain JavaScript over the /api endpoints, no build step.
const KEY_STORE = "reactive-api-key";
const REFRESH_MS = 2000;
const FINISHED = new Set(["completed", "failed", "terminated"]);

const $ = (selector) => document.querySelector(selector);
const state = {
  key: localStorage.getItem(KEY_STORE) || "",
  app: null,
  selected: null,
  cursors: [null],   // cursors of the pages seen, the current one last
  next: null,
  timer: null,
};

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = {};
  if (state.key) headers["x-api-key"] = state.key;
  const init = { method, headers };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: text }; }
  }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `${response.status} ${response.statusText}`);
  }
  return { status: response.status, data };
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "className") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  }
  return node;
}

function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString();
}

function compact(value) {
  const text = JSON.stringify(value);
  return text === undefined ? "" : text.length > 120 ? text.slice(0, 117) + "..." : text;
}

function banner(message) {
  const node = $("#banner");
  node.textContent = message || "";
  node.hidden = !message;
}

function reportFailure(error) {
  if (error instanceof ApiError && error.status === 401) {
    banner("This server needs its API key: paste it in the API key field above.");
  } else {
    banner(String(error.message || error));
  }
}

// -- the application and the start form ---------------------------------------------

function template(schema) {
  const out = {};
  for (const [name, prop] of Object.entries((schema && schema.properties) || {})) {
    if ("default" in prop) { out[name] = prop.default; continue; }
    const type = prop.type || (prop.anyOf && prop.anyOf[0] && prop.anyOf[0].type);
    out[name] = { string: "", integer: 0, number: 0, boolean: false, array: [], object: {} }[type] ?? null;
  }
  return out;
}

async function loadApp() {
  const { data } = await api("GET", "/api/app");
  state.app = data;
  $("#app-name").textContent = data.name;
  document.title = `${data.name} · Reactive Machine`;
  const select = $("#start-name");
  const filter = $("#filter-name");
  select.replaceChildren();
  for (const orchestration of data.orchestrations) {
    select.append(el("option", { value: orchestration.name }, orchestration.name));
    filter.append(el("option", { value: orchestration.name }, orchestration.name));
  }
  fillTemplate();
}

function fillTemplate() {
  const name = $("#start-name").value;
  const found = state.app && state.app.orchestrations.find((o) => o.name === name);
  $("#start-input").value = JSON.stringify(found ? template(found.schema) : {}, null, 2);
}

async function startInstance(event) {
  event.preventDefault();
  const message = $("#start-message");
  const name = $("#start-name").value;
  const input = $("#start-input").value.trim() || "{}";
  const id = $("#start-id").value.trim();
  const path = `/api/orchestrations/${encodeURIComponent(name)}` + (id ? `?id=${encodeURIComponent(id)}` : "");
  message.className = "message";
  message.textContent = "starting...";
  try {
    const { data } = await api("POST", path, input);
    message.textContent = data.created ? `started ${data.id}` : `${data.id} already exists`;
    message.dataset.instance = data.id;
    await select(data.id);
    await refreshInstances();
  } catch (error) {
    message.className = "message failed";
    message.textContent = error.message;
  }
}

// -- instances ---------------------------------------------------------------------

function localToIso(value) {
  return value ? new Date(value).toISOString() : "";
}

function statusBadge(status) {
  return el("span", { className: `status ${status}` }, status);
}

async function refreshInstances() {
  const params = new URLSearchParams({ limit: "50" });
  const status = $("#filter-status").value;
  const name = $("#filter-name").value;
  const since = localToIso($("#filter-since").value);
  const until = localToIso($("#filter-until").value);
  if (status) params.set("status", status);
  if (name) params.set("name", name);
  if (since) params.set("since", since);
  if (until) params.set("until", until);
  const cursor = state.cursors[state.cursors.length - 1];
  if (cursor) params.set("cursor", cursor);
  const { data } = await api("GET", `/api/instances?${params}`);
  const body = $("#instances tbody");
  body.replaceChildren();
  for (const item of data.items) {
    const outcome = item.status === "completed" ? compact(item.result) : item.error ? item.error.text : "";
    const row = el("tr", { dataset: { id: item.id }, className: item.id === state.selected ? "selected" : "" },
      el("td", {}, el("a", { href: `#instance=${encodeURIComponent(item.id)}` }, item.id)),
      el("td", {}, item.name),
      el("td", {}, statusBadge(item.status)),
      el("td", {}, when(item.created)),
      el("td", {}, when(item.updated)),
      el("td", { className: "outcome" }, outcome));
    row.addEventListener("click", (event) => { event.preventDefault(); select(item.id); });
    body.append(row);
  }
  if (!data.items.length) body.append(el("tr", {}, el("td", { colspan: "6", className: "muted" }, "no instances")));
  state.next = data.next;
  $("#page-next").disabled = !data.next;
  $("#page-first").disabled = state.cursors.length <= 1;
  $("#page-info").textContent = `page ${state.cursors.length}`;
}

// -- one instance --------------------------------------------------------------------

function show(selector, visible) { $(selector).hidden = !visible; }

function describeWait(wait) {
  if (typeof wait === "string") return wait;
  if (wait && typeof wait === "object") {
    const kind = wait.kind || wait.type || "";
    const rest = Object.entries(wait).filter(([k]) => k !== "kind" && k !== "type")
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ");
    return kind ? `${kind}${rest ? ": " + rest : ""}` : rest;
  }
  return JSON.stringify(wait);
}

function eventName(wait) {
  // "event 'decision'" (the host's words) or {"kind": "event", "name": "decision"}
  if (typeof wait === "string") {
    const match = /^event '(.*)'$/.exec(wait);
    return match ? match[1] : null;
  }
  return wait && wait.kind === "event" ? wait.name : null;
}

function historyRow(index, entry) {
  if (entry && typeof entry === "object" && !Array.isArray(entry)) {
    const what = entry.kind || entry.type || entry.event || entry.name || "";
    const rest = Object.fromEntries(Object.entries(entry).filter(([k, v]) => v !== what && k !== "n"));
    return el("tr", {}, el("td", {}, String(index + 1)), el("td", {}, String(what)), el("td", {}, compact(rest)));
  }
  return el("tr", {}, el("td", {}, String(index + 1)), el("td", {}, ""), el("td", {}, compact(entry)));
}

async function loadInstance(id) {
  let response;
  let note = "";
  try {
    response = await api("GET", `/api/instances/${encodeURIComponent(id)}?history=true`);
  } catch (error) {
    if (error.status !== 501) throw error;
    note = "this server keeps no histories";
    response = await api("GET", `/api/instances/${encodeURIComponent(id)}`);
  }
  return { data: response.data, note };
}

async function refreshDetail() {
  const id = state.selected;
  if (!id) return;
  let loaded;
  try {
    loaded = await loadInstance(id);
  } catch (error) {
    if (error.status === 404) {
      $("#detail-status").textContent = "unknown (purged?)";
      $("#detail-status").className = "status";
      return;
    }
    throw error;
  }
  const { data, note } = loaded;
  if (state.selected !== id) return;
  $("#detail-id").textContent = data.id;
  $("#detail-name").textContent = data.name;
  const badge = $("#detail-status");
  badge.textContent = data.status;
  badge.className = `status ${data.status}`;
  $("#detail-created").textContent = when(data.created);
  $("#detail-updated").textContent = when(data.updated);
  $("#detail-partition").textContent = String(data.partition);
  show("#detail-custom", data.custom_status !== undefined && data.custom_status !== null);
  $("#detail-custom pre").textContent = JSON.stringify(data.custom_status, null, 2);
  show("#detail-result", data.status === "completed");
  $("#detail-result pre").textContent = JSON.stringify(data.result, null, 2);
  show("#detail-error", Boolean(data.error));
  $("#detail-error .error-text").textContent = data.error ? data.error.text : "";
  const traceback = data.error && data.error.traceback ? data.error.traceback : "";
  $("#detail-error .traceback").textContent = traceback;
  $("#detail-error .traceback").hidden = !traceback;
  const waits = Array.isArray(data.waiting_for) ? data.waiting_for : data.waiting_for ? [data.waiting_for] : [];
  show("#detail-waits", !FINISHED.has(data.status) && waits.length > 0);
  $("#detail-waits ul").replaceChildren(...waits.map((w) => el("li", {}, describeWait(w))));
  const awaited = waits.map(eventName).find(Boolean);
  if (awaited && !$("#event-name").value) $("#event-name").value = awaited;
  const rows = Array.isArray(data.history) ? data.history : [];
  $("#detail-history tbody").replaceChildren(...rows.map((entry, i) => historyRow(i, entry)));
  const empty = data.history === null ? "histories are kept while an instance is live" : "no history rows";
  $("#history-note").textContent = note || (rows.length ? "" : empty);
  show("#event-form", !FINISHED.has(data.status));
  show("#terminate-form", !FINISHED.has(data.status));
  show("#purge-form", FINISHED.has(data.status));
}

async function select(id) {
  state.selected = id;
  show("#detail-panel", true);
  $("#action-message").textContent = "";
  history.replaceState(null, "", `#instance=${encodeURIComponent(id)}`);
  for (const row of document.querySelectorAll("#instances tbody tr")) {
    row.classList.toggle("selected", row.dataset.id === id);
  }
  await refreshDetail();
}

async function act(event, method, suffix, body, done) {
  event.preventDefault();
  const message = $("#action-message");
  const id = state.selected;
  message.className = "message";
  try {
    await api(method, `/api/instances/${encodeURIComponent(id)}${suffix}`, body);
    message.textContent = done;
    await refreshAll();
  } catch (error) {
    message.className = "message failed";
    message.textContent = error.message;
  }
}

// -- partitions --------------------------------------------------------------------

function bytes(n) {
  if (n == null) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

async function refreshPartitions() {
  const { data } = await api("GET", "/api/partitions");
  const body = $("#partitions tbody");
  body.replaceChildren(...data.partitions.map((p) => el("tr", {},
    el("td", {}, String(p.partition)),
    el("td", {}, p.commit),
    el("td", {}, when(p.committed_at)),
    el("td", {}, when(p.next_due)),
    el("td", {}, p.backlog == null ? "" : String(p.backlog)),
    el("td", {}, String(p.live_runs)),
    el("td", {}, bytes(p.snapshot_bytes)),
    el("td", { className: p.dead_letters ? "failed" : "" }, String(p.dead_letters)),
    // messages waiting for an earlier one from the same sender: a gap in its stream
    el("td", { className: p.held ? "failed" : "", title: p.held_since ? `oldest since ${when(p.held_since)}` : "" },
      String(p.held ?? 0)))));
  if (!data.partitions.length) body.append(el("tr", {}, el("td", { colspan: "9", className: "muted" }, "no commits yet")));
}

// -- refreshing ----------------------------------------------------------------------

async function refreshAll() {
  try {
    if (!state.app) await loadApp();
    await Promise.all([refreshInstances(), refreshPartitions(), refreshDetail()]);
    banner("");
    $("#last-refresh").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    reportFailure(error);
  }
}

function schedule() {
  clearInterval(state.timer);
  state.timer = $("#auto-refresh").checked ? setInterval(refreshAll, REFRESH_MS) : null;
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("key")) {
    state.key = params.get("key");
    localStorage.setItem(KEY_STORE, state.key);
    params.delete("key");
    history.replaceState(null, "", params.toString() ? `#${params}` : location.pathname);
  }
  return params.get("instance");
}

function init() {
  const instance = readHash();
  $("#api-key").value = state.key;
  $("#api-key").addEventListener("change", (event) => {
    state.key = event.target.value.trim();
    localStorage.setItem(KEY_STORE, state.key);
    state.app = null;
    refreshAll();
  });
  $("#auto-refresh").addEventListener("change", schedule);
  $("#refresh").addEventListener("click", refreshAll);
  $("#start-name").addEventListener("change", fillTemplate);
  $("#start-form").addEventListener("submit", startInstance);
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.cursors = [null];
    refreshInstances().catch(reportFailure);
  });
  $("#page-next").addEventListener("click", () => {
    if (!state.next) return;
    state.cursors.push(state.next);
    refreshInstances().catch(reportFailure);
  });
  $("#page-first").addEventListener("click", () => {
    state.cursors = [null];
    refreshInstances().catch(reportFailure);
  });
  $("#event-form").addEventListener("submit", (event) => {
    const raw = $("#event-value").value.trim() || "null";
    try { JSON.parse(raw); } catch (error) {
      event.preventDefault();
      $("#action-message").className = "message failed";
      $("#action-message").textContent = `the value is not valid JSON: ${error.message}`;
      return;
    }
    act(event, "POST", `/events/${encodeURIComponent($("#event-name").value.trim())}`, raw, "event raised");
  });
  $("#terminate-form").addEventListener("submit", (event) =>
    act(event, "POST", "/terminate", { reason: $("#terminate-reason").value }, "terminating"));
  $("#purge-form").addEventListener("submit", (event) =>
    act(event, "DELETE", "", undefined, "purged"));
  if (instance) select(instance).catch(reportFailure);
  refreshAll();
  schedule();
}

init();
