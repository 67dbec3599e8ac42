// History (seed 004 §4.1.3): downloads and views, newest first, with delete.
import { api } from "../api.js";
import * as live from "../live.js";
import { formatDuration, formatTime, h, shortId, toast } from "../ui.js";

export default {
  title: "History",
  mount(root) {
    const body = h("tbody");
    root.append(
      h("div.page-head", {}, h("h1", {}, "History"),
        h("button.btn.danger#clear-history", { onclick: clear }, "Clear all")),
      h("section.card", {}, h("table.data#history-table", {},
        h("thead", {}, h("tr", {}, ...["When", "What", "Title", "rid", "Position", ""].map((t) => h("th", {}, t)))),
        body)));

    async function refresh() {
      let history;
      try { ({ history } = await api("/api/history")); } catch (err) { toast(err.message, "error"); return; }
      body.replaceChildren(...(history.length ? history.map(row)
        : [h("tr", {}, h("td.empty", { colSpan: 6 }, "Nothing yet: downloads and viewed items appear here."))]));
    }
    function row(e) {
      return h("tr", { dataset: { id: e.id, rid: e.rid } },
        h("td", {}, formatTime(e.play_time)), h("td", {}, h(`span.tag.tag-${e.kind}`, {}, e.kind)),
        h("td", {}, h("a", { href: `/search/${e.rid}`, dataset: { link: "" } }, e.title || shortId(e.rid))),
        h("td.mono", { title: e.rid }, shortId(e.rid)),
        h("td", {}, e.kind === "view" && e.position ? formatDuration(e.position) : ""),
        h("td", {}, h("button.btn.danger.delete", { onclick: () => remove(e) }, "Delete")));
    }
    async function remove(e) {
      try { await api(`/api/history/${e.id}`, { method: "DELETE" }); } catch (err) { toast(err.message, "error"); }
      refresh();
    }
    async function clear() {
      if (!confirm("Delete the whole history?")) return;
      try { await api("/api/history", { method: "DELETE" }); } catch (err) { toast(err.message, "error"); }
      refresh();
    }
    const stop = live.on("history.changed", refresh);
    refresh();
    return stop;
  },
};
