// The supervision dashboard: the tree from /api/tree, refreshed when /api/events
// says something happened. Actions (restart, stop, start) need the token given in
// the URL's fragment (#token=...), which the browser never sends to a server.
"use strict";

(function () {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  const body = document.querySelector("#tree tbody");
  const eventList = document.getElementById("events");
  let canAct = false;
  let pending = null;
  let lastRestarts = new Map();

  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value === null || value === undefined ? "-" : String(value);
    if (cls) el.className = cls;
    return el;
  }

  function duration(s) {
    if (s === null || s === undefined) return "-";
    if (s < 60) return s.toFixed(1) + "s";
    const m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
    if (d) return d + "d" + String(h % 24).padStart(2, "0") + "h";
    if (h) return h + "h" + String(m % 60).padStart(2, "0") + "m";
    return m + "m" + String(Math.round(s % 60)).padStart(2, "0") + "s";
  }

  function bytes(n) {
    if (n === null || n === undefined) return "-";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  function lastExit(e) {
    if (!e) return "-";
    let s = e.reason;
    if (e.exit_status !== null && e.exit_status !== undefined) s += " (status " + e.exit_status + ")";
    else if (e.signal !== null && e.signal !== undefined) s += " (signal " + e.signal + ")";
    return s + ", " + duration(e.ago) + " ago";
  }

  function bar(intensity) {
    const cell = document.createElement("td");
    if (!intensity) { cell.textContent = "-"; return cell; }
    const outer = document.createElement("span");
    const ratio = intensity.used_ratio;
    outer.className = "bar" + (ratio >= 1 ? " full" : ratio >= 0.5 ? " hot" : "");
    const inner = document.createElement("span");
    inner.style.width = Math.round(ratio * 100) + "%";
    outer.appendChild(inner);
    cell.appendChild(outer);
    cell.appendChild(document.createTextNode(intensity.restarts + "/" + intensity.intensity + " in " + intensity.period + "s"));
    return cell;
  }

  function button(action, path) {
    const b = document.createElement("button");
    b.textContent = action;
    b.dataset.action = action;
    b.addEventListener("click", () => act(action, path));
    return b;
  }

  function row(node, depth) {
    const tr = document.createElement("tr");
    tr.dataset.path = node.path;
    tr.dataset.status = node.status;
    const path = text("td", node.path, "path");
    path.style.paddingLeft = (10 + depth * 18) + "px";
    tr.appendChild(path);
    tr.appendChild(text("td", node.kind, "kind"));
    const status = document.createElement("td");
    status.appendChild(text("span", node.status, "badge status s-" + node.status));
    if (node.health) status.appendChild(text("span", " " + node.health, "health"));
    tr.appendChild(status);
    tr.appendChild(text("td", node.pid, "pid"));
    tr.appendChild(text("td", duration(node.uptime), "uptime"));
    const r = node.resources;
    tr.appendChild(text("td", r ? r.cpu_percent.toFixed(1) : "-", "num cpu"));
    tr.appendChild(text("td", r ? bytes(r.rss_bytes) : "-", "num rss"));
    tr.appendChild(text("td", node.restarts, "num restarts"));
    tr.appendChild(bar(node.intensity));
    tr.appendChild(text("td", lastExit(node.last_exit), "last-exit"));
    const actions = document.createElement("td");
    actions.className = "actions";
    if (node.status === "terminated") actions.appendChild(button("start", node.path));
    else {
      actions.appendChild(button("restart", node.path));
      actions.appendChild(button("stop", node.path));
    }
    tr.appendChild(actions);
    const before = lastRestarts.get(node.path);
    if (before !== undefined && before !== node.restarts) tr.classList.add("flash");
    lastRestarts.set(node.path, node.restarts);
    return tr;
  }

  let primed = false;

  function render(status) {
    if (!primed) {  // the events that happened before the page opened
      primed = true;
      for (const e of status.events || []) note(e);
    }
    document.getElementById("name").textContent = status.name;
    const state = document.getElementById("state");
    const shown = status.escalating ? "escalating" : status.state;
    state.textContent = shown;
    state.className = "badge s-" + shown;
    const h = status.health || {};
    let summary = "pid " + status.pid + ", up " + duration(status.uptime) +
      (h.ready ? ", ready" : ", not ready: " + (h.reason || "?"));
    if (status.intensity) {
      summary += ", root intensity " + status.intensity.restarts + "/" + status.intensity.intensity;
    }
    document.getElementById("summary").textContent = summary;
    const rows = [];
    const walk = (nodes, depth) => {
      for (const node of nodes || []) {
        rows.push(row(node, depth));
        walk(node.children, depth + 1);
      }
    };
    walk(status.children, 0);
    body.replaceChildren(...rows);
    document.body.dataset.loaded = "true";
  }

  async function refresh() {
    pending = null;
    try {
      const response = await fetch("/api/tree", { cache: "no-store" });
      if (response.ok) render(await response.json());
    } catch (e) {
      document.getElementById("state").textContent = "unreachable";
    }
  }

  function soon() {
    if (pending === null) pending = setTimeout(refresh, 100);
  }

  async function act(action, path) {
    const response = await fetch("/api/" + action, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer " + (token || "") },
      body: JSON.stringify({ path: path }),
    });
    if (!response.ok) {
      const error = await response.json().catch(() => ({ message: response.statusText }));
      note({ event: "refused", path: path, message: action + ": " + response.status + " " + error.message });
    }
    soon();
  }

  function note(e) {
    const li = document.createElement("li");
    const when = (e.at ? new Date(e.at * 1000) : new Date()).toLocaleTimeString();
    let details = e.reason ? " " + e.reason : "";
    if (e.exit_status !== null && e.exit_status !== undefined) details += " status " + e.exit_status;
    if (e.signal !== null && e.signal !== undefined) details += " signal " + e.signal;
    if (e.pid) details += " pid " + e.pid;
    if (e.message) details += " " + e.message;
    if (e.error) details += " " + e.error;
    li.textContent = when + "  " + e.path + "  " + e.event + details;
    li.dataset.event = e.event;
    li.dataset.path = e.path;
    if (e.reason === "crash" || e.event === "SupervisorGaveUp" || e.event === "refused") li.className = "crash";
    eventList.prepend(li);
    while (eventList.children.length > 200) eventList.lastChild.remove();
  }

  async function checkToken() {
    if (!token) return false;
    const response = await fetch("/api/auth", { headers: { "Authorization": "Bearer " + token } });
    return response.ok;
  }

  async function main() {
    canAct = await checkToken();
    document.body.classList.toggle("readonly", !canAct);
    document.getElementById("mode").textContent = canAct
      ? "actions enabled"
      : "read-only (open the URL that 'supervision dashboard' prints to act on the tree)";
    const events = new EventSource("/api/events");
    events.addEventListener("tree", (m) => { note(JSON.parse(m.data)); soon(); });
    events.addEventListener("end", () => { events.close(); soon(); });
    // The server subscribes before it answers: once open, no event is missed.
    events.addEventListener("open", () => { document.body.dataset.live = "true"; soon(); });
    events.addEventListener("error", () => { document.body.dataset.live = "false"; });
    await refresh();
  }

  main();
})();
