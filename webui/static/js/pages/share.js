// Share (seed 000): upload, my files, network files with download, log panel.
import { api, upload } from "../api.js";
import * as downloads from "../downloads.js";
import * as live from "../live.js";
import {
  categoryIcon, categoryTag, formatBytes, formatDuration, formatRate, formatTime, h, logs, shortId, toast,
} from "../ui.js";

const ACCEPT = "audio/*,video/*,image/*";
const AUTO_REFRESH_MS = 10000;

export default {
  title: "Share",
  mount(root) {
    const status = live.state.status;
    const myList = h("ul.files#my-files");
    const netList = h("ul.files#network-files");
    const myCount = h("span.count");
    const netCount = h("span.count");
    const uploads = h("ul.uploads#uploads");
    const title = h("input#upload-title", { type: "text", placeholder: "Title (optional)", maxLength: 4096 });
    const description = h("input#upload-description", { type: "text", placeholder: "Description (optional)", maxLength: 4096 });
    const picker = h("input#file-input", { type: "file", accept: ACCEPT, multiple: true, hidden: true });
    const drop = h("div.drop#drop-zone", { role: "button", tabIndex: 0 },
      h("strong", {}, "Drop audio, video or images here"), h("br"), "or click to choose files",
      h("br"), h("small#upload-limit", {}, status ? `up to ${formatBytes(status.max_upload_bytes)} each` : ""));
    const logBox = h("pre.log#log");

    root.append(
      h("div.page-head", {}, h("h1", {}, "Share"),
        h("span.sub", {}, "Files you share are announced to the network; peers fetch them from you directly.")),
      h("div.grid", {},
        h("section.card", {}, h("h2", {}, "Upload"), drop, picker,
          h("div.upload-fields", {}, title, description), uploads),
        h("section.card", {}, h("h2", {}, "My files", myCount), myList),
        h("section.card.wide", {},
          h("h2", {}, "Network files", netCount, h("span.spacer"),
            h("button.btn#refresh-network", { onclick: () => refreshNetwork(true) }, "⟳ Refresh")),
          netList),
        h("section.card.wide", {},
          h("h2", {}, "Log", h("span.spacer"),
            h("button.btn#clear-log", { onclick: () => logs.clear() }, "Clear")),
          logBox)));

    // ---- upload ----
    const sendFiles = (files) => {
      // a title names one file: typed for a batch, it went on every file of it
      const fields = { title: files.length === 1 ? title.value : "", description: description.value };
      if (files.length > 1 && title.value) {
        logs.add("info", `the title is for one file at a time: the ${files.length} files are titled by their names`);
      }
      for (const file of files) uploadOne(file, fields);
    };
    drop.addEventListener("click", () => picker.click());
    drop.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && picker.click());
    picker.addEventListener("change", () => { sendFiles([...picker.files]); picker.value = ""; });
    drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      sendFiles([...e.dataTransfer.files]);
    });

    async function uploadOne(file, fields) {
      const bar = h("i");
      const label = h("span", {}, "0%");
      const row = h("li", {}, h("span.n", { title: file.name }, file.name), h("div.bar", {}, bar), label);
      uploads.prepend(row);
      logs.add("info", `uploading ${file.name} (${formatBytes(file.size)})`);
      try {
        const item = await upload(file, fields, (done, total) => {
          const pct = Math.round((done / total) * 100);
          bar.style.width = `${pct}%`;
          label.textContent = `${pct}%`;
        });
        bar.parentElement.classList.add("done");
        bar.style.width = "100%";
        label.replaceChildren(categoryTag(item.category), ` ${formatBytes(item.size)}`);
        logs.add("ok", `shared ${item.name} as ${item.category} (${formatBytes(item.size)}), rid ${shortId(item.rid)}`);
        toast(`Shared ${item.name}`, "ok");
        title.value = "";
        description.value = "";
        refreshMine();
        refreshNetwork();
        setTimeout(() => row.remove(), 4000);
      } catch (err) {
        bar.parentElement.classList.add("failed");
        bar.style.width = "100%";
        label.textContent = err.status === 415 ? "not media" : err.status === 413 ? "too large" : "failed";
        logs.add("error", `upload of ${file.name} failed: ${err.message}`);
        toast(err.message.includes(file.name) ? err.message : `${file.name}: ${err.message}`, "error", 7000);
      }
    }

    // ---- my files ----
    async function refreshMine() {
      let files;
      try { ({ files } = await api("/api/files")); } catch (err) { toast(err.message, "error"); return; }
      myCount.textContent = files.length ? `${files.length}` : "";
      myList.replaceChildren(...(files.length ? files.map(myRow) : [h("li.empty", {}, "Nothing shared yet.")]));
    }
    function myRow(f) {
      const meta = [formatBytes(f.size), f.mime, formatDuration(f.duration)].filter(Boolean);
      const held = f.shared ? "shared" : f.complete ? "downloaded" : `${Math.round(f.progress * 100)}% downloaded`;
      return h("li.file", { dataset: { rid: f.rid } },
        thumb(f),
        h("div.name", { title: f.name }, categoryTag(f.category), " ", f.title || f.name),
        h("div.actions", {}, h("button.btn.danger.remove", { onclick: () => remove(f) }, "Remove")),
        h("div.meta", {}, ...meta.map((m) => h("span", {}, m)), h("span.held", {}, held)));
    }
    async function remove(f) {
      try {
        await api(`/api/files/${f.rid}`, { method: "DELETE" });
        logs.add("info", `removed ${f.name}`);
        toast(`Removed ${f.name}`, "ok");
      } catch (err) { toast(err.message, "error"); }
      refreshMine();
      refreshNetwork();
    }

    // ---- network files ----
    let netTimer = null;
    let loading = null; // one request at a time; a refresh asked for meanwhile runs after it
    let again = false;
    function refreshNetwork(manual = false) {
      if (loading) { again = true; return loading; }
      loading = loadNetwork(manual).finally(() => {
        loading = null;
        if (again) { again = false; refreshNetwork(); }
      });
      return loading;
    }
    async function loadNetwork(manual) {
      let files;
      try { ({ files } = await api("/api/network/files")); } catch (err) { if (manual) toast(err.message, "error"); return; }
      const others = files.filter((f) => f.providers > 0 || !f.local);
      // a download that runs stays listed when the network stops offering its file (its
      // only provider left): it may find another, and it can be cancelled; one that
      // failed, to say why (its row vanished at the next refresh)
      const listed = new Set(others.map((f) => f.rid));
      for (const dl of downloads.byRid.values()) {
        if ((downloads.active(dl) || dl.state === "failed") && !listed.has(dl.rid)) {
          others.push({ rid: dl.rid, name: dl.name, title: dl.title, size: dl.total, category: dl.category,
            providers: 0, local: false });
        }
      }
      netCount.textContent = others.length ? `${others.length}` : "";
      netList.replaceChildren(...(others.length ? others.map(netRow)
        : [h("li.empty", {}, "No files on the network yet. Files other nodes share appear here by themselves.")]));
      if (manual) logs.add("info", `network files refreshed: ${others.length}`);
    }
    function netRow(f) {
      const dl = downloads.byRid.get(f.rid);
      const busy = downloads.active(dl);
      const button = h("button.btn.primary.download", {
        disabled: !busy && f.providers === 0,
        onclick: async () => {
          const current = downloads.byRid.get(f.rid);
          button.disabled = true;
          try {
            if (downloads.active(current)) await downloads.cancel(current);
            else await downloads.start(f);
          } catch (err) {
            toast(err.message, "error");
            logs.add("error", `download of ${f.name} refused: ${err.message}`);
          }
          button.disabled = false;
        },
      }, busy ? "Cancel" : f.local ? "Save" : "Download");
      return h("li.file", { dataset: { rid: f.rid, local: f.local ? "yes" : "", providers: f.providers } },
        thumb(f),
        h("div.name", { title: f.name }, categoryTag(f.category), " ", f.title || f.name),
        h("div.actions", {}, button),
        h("div.meta", {}, h("span", {}, formatBytes(f.size)), f.duration ? h("span", {}, formatDuration(f.duration)) : null,
          h("span.providers", {}, `${f.providers} provider${f.providers === 1 ? "" : "s"}`),
          f.local ? h("span.tag.tag-soft", {}, "on this node") : null),
        // a finished download of a file no longer here (removed) says nothing more
        dl && !(dl.state === "completed" && !f.local) ? progressRow(dl) : null);
    }
    function progressRow(dl) {
      const pct = Math.round((dl.progress || 0) * 100);
      const bar = h(`div.bar${dl.state === "completed" ? ".done" : dl.state === "failed" ? ".failed" : ""}`, {},
        h("i", { style: { width: `${dl.state === "failed" ? 100 : pct}%` } }));
      const text = dl.state === "completed"
        ? `done · ${formatBytes(dl.total)}${dl.resumed ? " (taken up again after a restart)" : ` in ${dl.elapsed.toFixed(1)} s`}`
        : dl.state === "failed" ? `failed: ${dl.error}`
          : dl.state === "cancelled" ? `cancelled at ${pct}%`
          : `${pct}% · ${formatRate(dl.rate)} · ${dl.peers} peer${dl.peers === 1 ? "" : "s"}`
            + (dl.waiting ? ` — ${dl.waiting}` : "");  // why it does not move, if it does not
      return h("div.progress", { dataset: { state: dl.state } }, bar, h("span.progress-text", {}, text));
    }
    const stopDownloads = downloads.onChange((dl) => {
      const row = netList.querySelector(`li[data-rid="${dl.rid}"]`);
      if (!row) {
        if (downloads.active(dl)) refreshNetwork(); // one started elsewhere, of a file not listed
        return;
      }
      row.querySelector(".progress")?.remove();
      const button = row.querySelector("button.download");
      if (dl.state === "gone") { // the node restarted: what it holds of the file is in My files
        button.textContent = row.dataset.local ? "Save" : "Download";
        refreshMine();
        return;
      }
      row.append(progressRow(dl));
      const busy = downloads.active(dl);
      button.textContent = busy ? "Cancel" : dl.state === "completed" || row.dataset.local ? "Save" : "Download";
      // nobody offers it (any more): Download could only be refused
      button.disabled = !busy && row.dataset.providers === "0" && !row.dataset.local;
      if (dl.state === "completed") refreshMine();
      const held = myList.querySelector(`li[data-rid="${dl.rid}"] .held`); // My files' row of it
      if (held && busy) held.textContent = `${Math.round((dl.progress || 0) * 100)}% downloaded`;
    });

    function thumb(f) {
      return f.thumbnail_url ? h("img.thumb", { src: f.thumbnail_url, alt: "", loading: "lazy" })
        : h("div.thumb", {}, categoryIcon(f.category));
    }

    // ---- log panel ----
    const logLine = (line) => h(`div.${line.level}`, {},
      h("span.t", {}, formatTime(line.time * 1000).padEnd(10)), " ", line.message);
    const showAll = () => {
      logBox.replaceChildren(...logs.lines.map(logLine));
      logBox.scrollTop = logBox.scrollHeight;
    };
    showAll();
    const stopLogs = logs.subscribe((line) => {
      if (line === null) { showAll(); return; }
      const stick = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 20;
      logBox.append(logLine(line));
      while (logBox.childElementCount > 500) logBox.firstChild.remove();
      if (stick) logBox.scrollTop = logBox.scrollHeight;
    });

    // ---- live updates ----
    const stopFiles = live.on("files.changed", (m) => {
      if (m.local) refreshMine();
      refreshNetwork();
    });
    const stopPeers = [live.on("peer.up", () => refreshNetwork()), live.on("peer.down", () => refreshNetwork())];
    const stopHello = live.on("hello", (m) => {
      drop.querySelector("#upload-limit").textContent = `up to ${formatBytes(m.status.max_upload_bytes)} each`;
      refreshMine();
      refreshNetwork();
    });
    netTimer = setInterval(refreshNetwork, AUTO_REFRESH_MS);
    refreshMine();
    refreshNetwork();
    return () => {
      clearInterval(netTimer);
      stopDownloads(); stopLogs(); stopFiles(); stopHello(); stopPeers.forEach((f) => f());
    };
  },
};
