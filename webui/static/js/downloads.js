// Downloads, as the node has them: the ones running or finished when the page opened, and
// every one started later (here or elsewhere); tracked across page changes. When one
// started in this tab completes, the browser saves the file under its original name.
import { api } from "./api.js";
import * as live from "./live.js";
import { logs, toast, triggerSave } from "./ui.js";

export const byRid = new Map(); // rid -> latest download JSON
const mine = new Set(); // download ids started in this tab
const saved = new Set();
const listeners = new Set();

export function onChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }
const notify = (dl) => { for (const fn of listeners) fn(dl); };

export const active = (dl) => Boolean(dl) && ["queued", "running"].includes(dl.state);
// how far a download has come: a message that arrives late (the POST's "queued" after the
// socket's "failed") must not take it back
const STAGE = { queued: 0, running: 1, interrupted: 1, completed: 2, failed: 2, cancelled: 2 };

function update(dl) {
  const previous = byRid.get(dl.rid);
  // another tab's download of the same file does not replace one of ours that runs
  if (previous && previous.id !== dl.id && !mine.has(dl.id) && mine.has(previous.id) && active(previous)) return;
  if (previous && previous.id === dl.id && STAGE[dl.state] < STAGE[previous.state]) return;
  byRid.set(dl.rid, dl);
  notify(dl);
  settle(dl);
}

/** What a download started in this tab does when it ends: saved, or said why not. */
function settle(dl) {
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

/** The node no longer knows this download (it was restarted): listeners get it with
 * state "gone" and show the file as not being downloaded. */
function forget(dl) {
  if (byRid.get(dl.rid)?.id !== dl.id) return;
  byRid.delete(dl.rid);
  if (active(dl)) logs.add("warning", `the node no longer has the download of ${dl.name} (it was restarted?)`);
  notify({ ...dl, state: "gone" });
}

/** What the node has now: at every (re)connection, so that a reloaded page shows the
 * downloads that run and a restarted node's are not polled for ever. */
async function sync() {
  let list;
  try { ({ downloads: list } = await api("/api/downloads")); } catch { return; }
  const known = new Set(list.map((d) => d.id));
  for (const dl of [...byRid.values()]) if (!known.has(dl.id)) forget(dl);
  const newest = new Map();
  for (const dl of list) if (!newest.has(dl.rid)) newest.set(dl.rid, dl); // newest first
  for (const dl of newest.values()) update(dl);
}

export async function cancel(dl) {
  try {
    update(await api(`/api/downloads/${dl.id}`, { method: "DELETE" }));
  } catch (err) {
    if (err.status === 404) forget(dl); // nothing to cancel any more
    else throw err;
  }
}

export async function start(file) {
  const dl = await api("/api/downloads", { method: "POST", json: { rid: file.rid } });
  mine.add(dl.id);
  logs.add("info", `downloading ${file.name} from ${file.providers} peer${file.providers === 1 ? "" : "s"}`);
  update(dl);
  const now = byRid.get(file.rid); // the socket may have told of its end before the POST answered
  if (now && now.id === dl.id) settle(now);
  // the WebSocket pushes progress; poll too, in case a message was missed
  const poll = setInterval(async () => {
    const current = byRid.get(file.rid);
    if (!current || current.id !== dl.id || !active(current)) {
      clearInterval(poll);
      return;
    }
    try { update(await api(`/api/downloads/${dl.id}`)); } catch (err) {
      if (err.status === 404) forget(current); // else the socket will catch up
    }
  }, 2000);
  return dl;
}

live.on("download", (m) => update(m.download));
live.on("hello", sync);
