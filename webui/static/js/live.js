// The WebSocket to this node: reconnects by itself, fans messages out by type, and keeps
// the connection indicator in the top bar honest.

const listeners = new Map();
let socket = null;
let retry = 500;
export const state = { connected: false, status: null };

export function on(type, fn) {
  if (!listeners.has(type)) listeners.set(type, new Set());
  listeners.get(type).add(fn);
  return () => listeners.get(type).delete(fn);
}

function dispatch(message) {
  const seen = (window.p2pkitLive ||= []); // a short record of message types, for tests
  seen.push(message.type);
  if (seen.length > 200) seen.shift();
  for (const key of [message.type, "*"]) {
    for (const fn of listeners.get(key) || []) {
      try { fn(message); } catch (err) { console.error("live listener failed", err); }
    }
  }
}

function setConnected(connected) {
  state.connected = connected;
  dispatch({ type: "connection", connected });
}

export function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`);
  socket.onopen = () => { retry = 500; setConnected(true); };
  socket.onmessage = (e) => {
    let message;
    try { message = JSON.parse(e.data); } catch { return; }
    if (message.type === "hello" || message.type === "status") state.status = message.status;
    dispatch(message);
  };
  socket.onclose = () => {
    if (state.connected) setConnected(false);
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 8000);
  };
}
