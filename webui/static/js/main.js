// The single-page app: navigation, the live connection, global notifications.
import { api } from "./api.js";
import * as live from "./live.js";
import { h, logs, shortId, toast } from "./ui.js";
import share from "./pages/share.js";
import search from "./pages/search.js";
import peers from "./pages/peers.js";
import history from "./pages/history.js";
import settings from "./pages/settings.js";

// Every page is { title, mount(root, params) -> unmount }. The player and AI pages will
// register here (PAGES.player = ..., PAGES.ai = ...) and appear in the navigation.
export const PAGES = { share, search, peers, history, settings };
const NAV = [
  ["share", "Share"], ["search", "Search"], ["peers", "Peers"], ["history", "History"], ["settings", "Settings"],
];

const root = document.getElementById("page");
let unmount = null;

function route() {
  const parts = location.pathname.split("/").filter(Boolean);
  const name = PAGES[parts[0]] ? parts[0] : "share";
  const page = PAGES[name];
  unmount?.();
  root.replaceChildren();
  document.title = `${page.title} · p2pkit`;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === name);
  unmount = page.mount(root, { path: parts.slice(1) }) || null;
}

export function navigate(path) {
  if (path !== location.pathname) history_.pushState({}, "", path);
  route();
}
const history_ = window.history;

function buildNav() {
  const nav = document.getElementById("nav");
  for (const [name, label] of NAV) {
    nav.append(h("a", { href: `/${name}`, dataset: { page: name, link: "" } }, label));
  }
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-link]");
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", route);

// ---- connection indicator ----
const conn = document.getElementById("conn");
function showConnection() {
  const s = live.state.status;
  conn.className = `conn ${live.state.connected ? "conn-online" : "conn-offline"}`;
  conn.lastElementChild.textContent = live.state.connected
    ? `online · ${s ? s.peers : 0} peer${s && s.peers === 1 ? "" : "s"}`
    : "disconnected — retrying";
}
live.on("connection", (m) => {
  showConnection();
  if (m.connected) logs.add("ok", "connected to the node");
  else { logs.add("warning", "lost the connection to the node"); toast("Lost the connection to the node", "error"); }
});
live.on("hello", showConnection);
live.on("status", showConnection);
live.on("peer.up", (m) => {
  if (live.state.status) live.state.status.peers += 1;
  showConnection();
  logs.add("ok", `peer ${shortId(m.peer_id)} connected from ${m.address}`);
  toast(`Peer ${shortId(m.peer_id, 8)} connected`, "ok");
});
live.on("peer.down", (m) => {
  if (live.state.status) live.state.status.peers = Math.max(0, live.state.status.peers - 1);
  showConnection();
  logs.add("warning", `peer ${shortId(m.peer_id)} left (${m.reason})`);
});
// The node's log lines: live ones as they come, and at every (re)connection the recent
// ones it kept — warnings from before this page was opened or reloaded were lost.
const seenLogs = new Set();
const logText = (m) => `${m.source ? m.source.replace(/^p2pkit\./, "") + ": " : ""}${m.message}`;
function firstSight(m) {
  const key = `${m.time}|${m.source}|${m.message}`;
  if (seenLogs.has(key)) return false;
  seenLogs.add(key);
  if (seenLogs.size > 2000) seenLogs.delete(seenLogs.values().next().value);
  return true;
}
live.on("log", (m) => { if (firstSight(m)) logs.add(m.level, logText(m), m.time); });
live.on("hello", async () => {
  let recent;
  try { ({ logs: recent } = await api("/api/logs")); } catch { return; }
  logs.merge(recent.filter(firstSight).map((m) => ({ level: m.level, message: logText(m), time: m.time })));
});
live.on("settings.changed", (m) => logs.add("info", `setting ${m.key} = ${JSON.stringify(m.value)}`));
live.on("files.changed", (m) => {
  if (!m.local && m.change === "added") logs.add("info", `the network offers ${m.name || shortId(m.rid)}`);
  if (!m.local && m.change === "removed") logs.add("info", `the network no longer offers ${shortId(m.rid)}`);
});

document.getElementById("node-id").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(document.body.dataset.nodeId);
    toast("Node id copied", "ok", 1500);
  } catch { toast(document.body.dataset.nodeId, "info", 6000); }
});

buildNav();
live.connect();
route();
