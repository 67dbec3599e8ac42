// Downloads started in this tab: tracked across page changes; when one completes the
// browser saves the file under its original name.
import { api } from "./api.js";
import * as live from "./live.js";
import { logs, toast, triggerSave } from "./ui.js";

export const byRid = new Map(); // rid -> latest download JSON
const mine = new Set(); // download ids started in this tab
const saved = new Set();
const listeners = new Set();

export function onChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function update(dl) {
  const previous = byRid.get(dl.rid);
  if (previous && previous.id !== dl.id && !mine.has(dl.id)) return;
  byRid.set(dl.rid, dl);
  for (const fn of listeners) fn(dl);
  if (!mine.has(dl.id) || saved.has(dl.id)) return;
  if (dl.state === "completed") {
    saved.add(dl.id);
    logs.add("ok", `downloaded ${dl.name} (${dl.total} bytes) — saving`);
    toast(`Downloaded ${dl.name}`, "ok");
    triggerSave(dl.file_url, dl.name);
  } else if (dl.state === "failed") {
    saved.add(dl.id);
    logs.add("error", `download of ${dl.name} failed: ${dl.error}`);
    toast(`Download of ${dl.name} failed: ${dl.error}`, "error", 7000);
  } else if (dl.state === "cancelled") {
    saved.add(dl.id);
    logs.add("info", `download of ${dl.name} cancelled`);
  }
}

export const active = (dl) => Boolean(dl) && ["queued", "running"].includes(dl.state);

export async function cancel(dl) {
  update(await api(`/api/downloads/${dl.id}`, { method: "DELETE" }));
}

export async function start(file) {
  const dl = await api("/api/downloads", { method: "POST", json: { rid: file.rid } });
  mine.add(dl.id);
  logs.add("info", `downloading ${file.name} from ${file.providers} peer${file.providers === 1 ? "" : "s"}`);
  update(dl);
  // the WebSocket pushes progress; poll too, in case a message was missed
  const poll = setInterval(async () => {
    const current = byRid.get(file.rid);
    if (!current || current.id !== dl.id || !active(current)) {
      clearInterval(poll);
      return;
    }
    try { update(await api(`/api/downloads/${dl.id}`)); } catch { /* the socket will catch up */ }
  }, 2000);
  return dl;
}

live.on("download", (m) => update(m.download));
