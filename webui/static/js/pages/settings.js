// Settings (seed 004 §4.1.4): every change is sent at once (partial update) and persisted.
import { api } from "../api.js";
import * as live from "../live.js";
import { h, toast } from "../ui.js";

const FIELDS = [
  { key: "p2p_enabled", label: "P2P exchange", help: "Exchange pieces with peers. Off: this node neither serves nor fetches from peers.", kind: "bool" },
  { key: "cache_limit_mb", label: "Cache limit", help: "Disk space for downloaded content, in MiB.", kind: "int", min: 1, unit: "MiB" },
  { key: "upload_limit_kbps", label: "Upload limit", help: "Upload bandwidth to peers in KiB/s; 0 = automatic (just under what your line carries, found from its delay).", kind: "int", min: 0, unit: "KiB/s" },
  { key: "max_connections", label: "Connection limit", help: "Most peer sessions at once.", kind: "int", min: 1, unit: "peers" },
];

export default {
  title: "Settings",
  mount(root) {
    const form = h("section.card#settings-form");
    root.append(h("div.page-head", {}, h("h1", {}, "Settings"),
      h("span.sub", {}, "Applied at once and kept across restarts (unless the node's start configuration gives them).")), form);
    const inputs = {};

    for (const f of FIELDS) {
      const input = f.kind === "bool"
        ? h("input", { type: "checkbox", name: f.key, id: `setting-${f.key}` })
        : h("input", { type: "number", name: f.key, id: `setting-${f.key}`, min: f.min, step: 1 });
      const error = h("div.error", { hidden: true });
      const row = h("div.setting", { dataset: { key: f.key } },
        h("label", { htmlFor: `setting-${f.key}` }, h("b", {}, f.label), h("small", {}, f.help)),
        h("div.control", {}, f.kind === "bool" ? h("label.switch", {}, input, h("span")) : input,
          f.unit ? h("span.sub", {}, f.unit) : null),
        error);
      inputs[f.key] = input;
      input.addEventListener("change", async () => {
        let value;
        if (f.kind === "bool") value = input.checked;
        else {
          value = Number(input.value);
          if (input.value.trim() === "" || !Number.isInteger(value)) { showError(row, error, "enter a whole number"); return; }
        }
        try {
          const values = await api("/api/settings", { method: "PUT", json: { [f.key]: value } });
          fill(values);
          error.hidden = true;
          row.classList.add("saved");
          setTimeout(() => row.classList.remove("saved"), 2000);
          toast(`${f.label} saved`, "ok", 1800);
        } catch (err) { showError(row, error, err.message); }
      });
      form.append(row);
    }

    function showError(row, error, message) {
      row.classList.remove("saved");
      error.textContent = message;
      error.hidden = false;
    }
    function fill(values) {
      for (const [key, input] of Object.entries(inputs)) {
        if (!(key in values) || document.activeElement === input) continue;
        if (input.type === "checkbox") input.checked = Boolean(values[key]);
        else input.value = values[key];
      }
    }
    api("/api/settings").then(fill).catch((err) => toast(err.message, "error"));
    // a key the node's start configuration gave wins again at the next start: say so
    api("/api/settings/schema").then((schema) => {
      for (const f of FIELDS) {
        if (!schema[f.key]?.given_at_start) continue;
        const row = form.querySelector(`.setting[data-key="${f.key}"] label`);
        row?.append(h("small.given", { id: `given-${f.key}` },
          "Set when this node started (config file, environment or --set): a change here lasts until it restarts."));
      }
    }).catch(() => {});  // (only a hint: the fields work without it)
    return live.on("settings.changed", (m) => fill({ [m.key]: m.value }));
  },
};
