// Search (seed 004 §4.1.1): a search box, results, and a detail view per item.
import { api } from "../api.js";
import * as downloads from "../downloads.js";
import { navigate } from "../main.js";
import { categoryTag, cover, formatBytes, formatDuration, formatRate, h, toast } from "../ui.js";

let lastQuery = "";

export default {
  title: "Search",
  mount(root, { path }) {
    if (path[0]) return detail(root, path[0]);
    const input = h("input#search-input", { type: "search", placeholder: "Search titles, descriptions and names…",
      value: lastQuery, autofocus: true, maxLength: 200 });
    const results = h("div.results#search-results");
    const summary = h("span.sub");
    const form = h("form.searchbar", { onsubmit: (e) => { e.preventDefault(); run(); } },
      input, h("button.btn.primary", { type: "submit" }, "Search"));
    root.append(h("div.page-head", {}, h("h1", {}, "Search"), summary), form, results);

    let controller = null;
    async function run() {
      lastQuery = input.value.trim();
      controller?.abort();
      controller = new AbortController();
      summary.textContent = "searching the network…";
      // the last query's results stay visible but cannot be clicked: a click during a
      // search opened (and recorded a view of) an item the new query may not match
      results.classList.add("stale");
      results.setAttribute("aria-busy", "true");
      let data;
      try {
        data = await api(`/api/search?q=${encodeURIComponent(lastQuery)}`, { signal: controller.signal });
      } catch (err) {
        if (err.name !== "AbortError") {
          toast(err.message, "error");
          results.classList.remove("stale");
          results.removeAttribute("aria-busy");
        }
        return;
      }
      results.classList.remove("stale");
      results.removeAttribute("aria-busy");
      summary.textContent = `${data.count} result${data.count === 1 ? "" : "s"}${lastQuery ? ` for “${lastQuery}”` : ""}`;
      results.replaceChildren(...(data.results.length ? data.results.map(card)
        : [h("div.empty", {}, "Nothing found. Try another word, or share something on the Share page.")]));
    }
    function card(v) {
      return h("article.result", { dataset: { rid: v.rid }, tabIndex: 0,
        onclick: () => navigate(`/search/${v.rid}`),
        onkeydown: (e) => e.key === "Enter" && navigate(`/search/${v.rid}`) },
      withTag(cover("div.cover", v), v.category),
      h("div.body", {}, h("b", { title: v.title }, v.title),
        h("small", {}, [formatBytes(v.file_size), formatDuration(v.duration),
          v.local ? "on this node" : `${v.providers} provider${v.providers === 1 ? "" : "s"}`].filter(Boolean).join(" · "))));
    }
    input.addEventListener("input", () => { clearTimeout(input._t); input._t = setTimeout(run, 250); });
    run();
    return () => controller?.abort();
  },
};

function withTag(el, category) {
  el.append(categoryTag(category));
  return el;
}

function detail(root, rid) {
  const box = h("div");
  root.append(h("div.page-head", {}, h("h1", {}, "Detail"),
    h("a.btn", { href: "/search", dataset: { link: "" } }, "← Back to results")), box);
  let stopFollowing = () => {};
  let closed = false; // the page was left before the item came
  (async () => {
    let v;
    try { v = await api(`/api/videos/${encodeURIComponent(rid)}`); } catch (err) {
      box.append(h("div.card.empty", {}, err.message));
      return;
    }
    // whole here: saved from this node; begun here: the rest comes from the providers.
    // The button follows the file's download (started here or anywhere else).
    const status = h("span.sub#detail-status");
    const dlButton = h("button.btn.primary#detail-download", {
      onclick: async () => {
        const current = downloads.byRid.get(v.rid);
        dlButton.disabled = true;
        try {
          if (downloads.active(current)) await downloads.cancel(current);
          else await downloads.start({ rid: v.rid, name: v.name, providers: v.providers });
        } catch (err) { toast(err.message, "error"); }
        show(downloads.byRid.get(v.rid));
      },
    });
    function show(dl) {
      const busy = downloads.active(dl);
      if (dl?.state === "completed") v.local = true;
      const held = !v.local && v.progress > 0 ? ` (${Math.floor(v.progress * 100)}% here)` : "";
      dlButton.textContent = busy ? "Cancel" : v.local ? "Save" : `Download${held}`;
      dlButton.disabled = !busy && !v.local && v.providers === 0;
      status.textContent = !dl ? ""
        : busy ? `${Math.round((dl.progress || 0) * 100)}% · ${formatRate(dl.rate)} · ${dl.peers} peer${dl.peers === 1 ? "" : "s"}`
          : dl.state === "completed" ? "downloaded"
            : dl.state === "failed" ? `failed: ${dl.error}` : "";
      if (dl && !busy && dl.state !== "completed") v.progress = Math.max(v.progress || 0, dl.progress || 0);
    }
    show(downloads.byRid.get(v.rid));
    if (closed) return;
    stopFollowing = downloads.onChange((dl) => { if (dl.rid === v.rid) show(dl.state === "gone" ? null : dl); });
    box.append(h("div.card.detail#video-detail", { dataset: { rid: v.rid } },
      cover("div.cover", v),
      h("div", {},
        h("h2", {}, categoryTag(v.category), v.title),
        h("p", {}, v.description || h("span.sub", {}, "No description.")),
        h("dl", {},
          h("dt", {}, "rid"), h("dd.mono", {}, v.rid),
          h("dt", {}, "file"), h("dd", {}, v.name),
          h("dt", {}, "size"), h("dd", {}, `${formatBytes(v.file_size)} (${v.file_size.toLocaleString()} bytes)`),
          h("dt", {}, "duration"), h("dd", {}, formatDuration(v.duration) || "—"),
          h("dt", {}, "type"), h("dd", {}, v.mime || "—"),
          h("dt", {}, "providers"), h("dd", {}, String(v.providers))),
        h("p", {}, dlButton, " ", h("button.btn", { disabled: true, title: "the player comes with a later release" }, "▶ Play"),
          " ", status))));
    // seed 004 history: opening an item is a view
    api("/api/history", { method: "POST", json: { rid: v.rid, kind: "view", title: v.title, duration: v.duration ?? undefined } })
      .catch(() => {});
  })();
  return () => { closed = true; stopFollowing(); };
}
