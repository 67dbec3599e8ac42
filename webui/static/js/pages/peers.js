// Peers (seed 004 §4.1.2): header stats and a table with an enabled toggle per peer.
import { api } from "../api.js";
import * as live from "../live.js";
import { formatBytes, formatRate, h, shortId, toast } from "../ui.js";

export default {
  title: "Peers",
  mount(root) {
    const stats = h("div.stats#peer-stats");
    const body = h("tbody");
    root.append(
      h("div.page-head", {}, h("h1", {}, "Peers"), h("span.sub", {}, "Nodes this node has a session with.")),
      stats,
      h("section.card", {}, h("table.data#peer-table", {},
        h("thead", {}, h("tr", {}, ...["Peer", "Address", "Status", "Up", "Down", "Sent", "Received", "NAT", "Enabled"]
          .map((t) => h("th", {}, t)))),
        body)));

    const stat = (value, label) => h("div.stat", {}, h("b", {}, value), h("span", {}, label));
    async function refresh() {
      let peers, s;
      try {
        [{ peers }, s] = await Promise.all([api("/api/peers"), api("/api/peers/stats")]);
      } catch (err) { return; }
      stats.replaceChildren(stat(`${s.online} / ${s.total}`, "online / known"), stat(formatRate(s.up_rate), "upload"),
        stat(formatRate(s.down_rate), "download"), stat(formatBytes(s.bytes_sent + s.bytes_received), "exchanged"),
        stat(s.nat_type, "NAT type"));
      if (!peers.length) {
        body.replaceChildren(h("tr", {}, h("td.empty", { colSpan: 9 },
          "No peers yet. Start another node with --bootstrap pointing here.")));
        return;
      }
      // update rows in place: a table rebuilt every 2 s would flicker under the pointer
      const rows = new Map([...body.querySelectorAll("tr[data-peer]")].map((tr) => [tr.dataset.peer, tr]));
      const ordered = peers.map((p) => {
        const tr = rows.get(p.id) || row(p);
        fillRow(tr, p);
        return tr;
      });
      const same = ordered.length === body.children.length && ordered.every((tr, i) => body.children[i] === tr);
      if (!same) body.replaceChildren(...ordered);
    }
    function fillRow(tr, p) {
      const cells = tr.children;
      cells[1].textContent = p.address;
      cells[2].replaceChildren(h(`span.dot${p.online ? ".on" : ""}`), p.online ? "online" : "offline");
      cells[3].textContent = formatRate(p.up_rate);
      cells[4].textContent = formatRate(p.down_rate);
      cells[5].textContent = formatBytes(p.bytes_sent);
      cells[6].textContent = formatBytes(p.bytes_received);
      cells[7].textContent = p.nat_type || "unknown";
      const toggle = cells[8].querySelector("input");
      if (document.activeElement !== toggle) toggle.checked = p.enabled;
    }
    function row(p) {
      const toggle = h("input", { type: "checkbox", checked: p.enabled, "aria-label": `enable peer ${p.id}` });
      toggle.addEventListener("change", async () => {
        try {
          const r = await api(`/api/peers/${p.id}/toggle`, { method: "PUT", json: { enabled: toggle.checked } });
          toast(`Peer ${shortId(p.id, 8)} ${r.enabled ? "enabled" : "disabled"}`, "ok", 2000);
        } catch (err) { toast(err.message, "error"); toggle.checked = !toggle.checked; }
      });
      return h("tr", { dataset: { peer: p.id } },
        h("td.mono", { title: p.id }, shortId(p.id, 16)), h("td.mono"), h("td"), h("td"), h("td"),
        h("td"), h("td"), h("td"), h("td", {}, h("label.switch", {}, toggle, h("span"))));
    }
    const timer = setInterval(refresh, 2000);
    const stops = ["peer.up", "peer.down", "peer.toggled"].map((t) => live.on(t, refresh));
    refresh();
    return () => { clearInterval(timer); stops.forEach((f) => f()); };
  },
};
