// Small helpers shared by every page: element builder, formatting, toasts, the log store.

/** h("div.card#x", {onclick}, child, ...) — a tiny DOM builder. */
export function h(tag, attrs = {}, ...children) {
  const [name, ...rest] = tag.split(/(?=[.#])/);
  const el = document.createElement(name || "div");
  for (const part of rest) {
    if (part[0] === ".") el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
export function formatBytes(n) {
  if (!Number.isFinite(n) || n < 0) return "–";
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) { n /= 1024; i++; }
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)} ${UNITS[i]}`;
}
export const formatRate = (n) => `${formatBytes(n || 0)}/s`;
export function formatDuration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "";
  s = Math.round(s);
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (x) => String(x).padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}
export function formatTime(ms) {
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}
export const shortId = (id, n = 12) => (id && id.length > n ? `${id.slice(0, n)}…` : id || "");

const ICONS = { audio: "♪", video: "▶", image: "▣" };
export const categoryIcon = (c) => ICONS[c] || "◆";
export function categoryTag(category) {
  const c = ["audio", "video", "image"].includes(category) ? category : "other";
  return h(`span.tag.tag-${c}`, { title: `category: ${category || "unknown"}` }, category || "file");
}

/** A cover element: the thumbnail if there is one, the category icon otherwise. */
export function cover(cls, file) {
  const el = h(cls, {}, file.thumbnail_url ? "" : categoryIcon(file.category));
  if (file.thumbnail_url) el.style.backgroundImage = `url("${file.thumbnail_url}")`;
  return el;
}

// ---- toasts ----
export function toast(message, kind = "info", ms = 4000) {
  (window.p2pkitToasts ||= []).push({ kind, message: String(message) }); // a record for tests
  const box = document.getElementById("toasts");
  if (!box) return;
  const el = h(`div.toast.${kind}`, { role: "status" }, message);
  box.append(el);
  while (box.children.length > 5) box.firstChild.remove();
  setTimeout(() => { el.classList.add("leaving"); setTimeout(() => el.remove(), 300); }, ms);
}

// ---- log store: lines survive page changes; the Share page shows them ----
// A listener gets each new line, or null when the lines changed as a whole (cleared, or
// older lines merged in): it shows `logs.lines` again.
const MAX_LINES = 500;
export const logs = {
  lines: [],
  listeners: new Set(),
  add(level, message, time = Date.now() / 1000) {
    const line = { level, message, time };
    this.lines.push(line);
    if (this.lines.length > MAX_LINES) this.lines.splice(0, this.lines.length - MAX_LINES);
    for (const fn of this.listeners) fn(line);
  },
  /** Lines from before this page was open (the node keeps its recent ones), in time order. */
  merge(lines) {
    if (!lines.length) return;
    this.lines = [...this.lines, ...lines].sort((a, b) => a.time - b.time).slice(-MAX_LINES);
    for (const fn of this.listeners) fn(null);
  },
  clear() { this.lines = []; for (const fn of this.listeners) fn(null); },
  subscribe(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); },
};

export function triggerSave(url, name) {
  const a = h("a", { href: url, download: name, style: { display: "none" } });
  document.body.append(a);
  a.click();
  a.remove();
}
