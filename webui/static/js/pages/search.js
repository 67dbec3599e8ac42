// Search (seed 004 §4.1.1): a search box, results, and a detail view per item.
import { api } from "../api.js";
import * as downloads from "../downloads.js";
import { navigate } from "../main.js";
import { categoryTag, cover, formatBytes, formatDuration, h, toast } from "../ui.js";

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
  (async () => {
    let v;
    try { v = await api(`/api/videos/${encodeURIComponent(rid)}`); } catch (err) {
      box.append(h("div.card.empty", {}, err.message));
      return;
    }
    // whole here: saved from this node; begun here: the rest comes from the providers
    const held = !v.local && v.progress > 0 ? ` (${Math.floor(v.progress * 100)}% here)` : "";
    const dlButton = h("button.btn.primary#detail-download", {
      disabled: !v.local && v.providers === 0,
      onclick: async () => {
        dlButton.disabled = true;
        try {
          await downloads.start({ rid: v.rid, name: v.name, providers: v.providers });
          toast(v.local ? `Saving ${v.name}` : `Downloading ${v.name}`);
        } catch (err) { toast(err.message, "error"); dlButton.disabled = false; }
      },
    }, v.local ? "Save" : `Download${held}`);
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
        h("p", {}, dlButton, " ", h("button.btn", { disabled: true, title: "the player comes with a later release" }, "▶ Play")))));
    // seed 004 history: opening an item is a view
    api("/api/history", { method: "POST", json: { rid: v.rid, kind: "view", title: v.title, duration: v.duration ?? undefined } })
      .catch(() => {});
  })();
  return null;
}
