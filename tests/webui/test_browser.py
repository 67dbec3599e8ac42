"""The UI in real headless Chromium (Debian ``chromium``) against two real node processes.

A shares through the page; B sees it without reloading, downloads it with the progress
bar, and the browser saves a byte-identical file under the original name; removing it on
A makes it disappear from B; every page is exercised and screenshotted (under the test's
output directory; also into docs/img/ when P2PKIT_DOCS_SCREENSHOTS=1).
"""

from __future__ import annotations

import base64
import io
import math
import os
import shutil
import struct
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from .nodeproc import NodeProcess

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 30_000
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
]


def noise_png(path: Path, width: int = 900, height: int = 600) -> Path:
    rng = np.random.default_rng(7)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    cv2.circle(image, (width // 2, height // 2), height // 3, (40, 120, 250), -1)
    cv2.imwrite(str(path), image)
    return path


def tone_wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(seconds * rate))))
    return buf.getvalue()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeProcess, NodeProcess]]:
    root = tmp_path_factory.mktemp("nodes")
    a = NodeProcess(root / "a")
    try:
        # (max_connections given at start, as its default: the settings page says so)
        b = NodeProcess(root / "b", "--bootstrap", f"127.0.0.1:{a.udp_port}",
                        "--set", "cfg.max_connections=50")
    except BaseException:
        a.stop()
        raise
    try:
        yield a, b
    finally:
        b.stop()
        a.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True, timeout=TIMEOUT_MS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("screenshots")

    def take(page: Any, name: str, toasts: bool = False) -> Path:
        path = out / f"webui-{name}.png"
        if not toasts:
            page.evaluate("document.getElementById('toasts').replaceChildren()")
        page.wait_for_timeout(300)  # let transitions settle
        page.screenshot(path=str(path), full_page=True)
        if os.environ.get("P2PKIT_DOCS_SCREENSHOTS") == "1":
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, DOCS_IMG / path.name)
        return path

    return take


def open_page(browser: Any, url: str, width: int = 1280) -> Any:
    context = browser.new_context(accept_downloads=True, viewport={"width": width, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def on_console(msg: Any) -> None:
        if msg.type == "error" and "Content Security Policy" in msg.text:
            errors.append(msg.text)

    page.on("console", on_console)
    page.goto(url)
    page.wait_for_selector("#conn.conn-online")
    page.js_errors = errors  # type: ignore[attr-defined]
    return page


def wait_until(page: Any, expression: str, limit: float = TIMEOUT_MS / 1000) -> Any:
    """Poll a JS expression (promises awaited) until truthy. Playwright's wait_for_function
    evaluates strings in the page, which the UI's Content-Security-Policy rightly forbids."""
    deadline = time.monotonic() + limit
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {limit} s: {expression}")
        page.wait_for_timeout(100)


def error_toasts(page: Any) -> list[str]:
    messages: list[str] = page.evaluate(
        "(window.p2pkitToasts || []).filter(t => t.kind === 'error').map(t => t.message)")
    return messages


def test_share_download_remove_across_two_nodes(nodes: tuple[NodeProcess, NodeProcess], browser: Any,
                                                shots: Any, tmp_path: Path) -> None:
    a, b = nodes
    original = noise_png(tmp_path / "Sunset noise.png")
    page_a = open_page(browser, a.base + "/share")
    page_b = open_page(browser, b.base + "/share")
    page_b.wait_for_selector("#conn:has-text('1 peer')")

    # upload on A through the picker, with a title
    page_a.fill("#upload-title", "Sunset over noise")
    page_a.set_input_files("#file-input", str(original))
    row_a = page_a.wait_for_selector("#my-files li[data-rid]")
    rid = row_a.get_attribute("data-rid")
    assert rid and len(rid) == 64
    assert row_a.query_selector(".tag-image") is not None
    assert "KiB" in row_a.inner_text() or "MiB" in row_a.inner_text()
    page_a.wait_for_selector(".toast.ok")
    shots(page_a, "share", toasts=True)

    # B sees it without reloading, and downloads it with a live progress bar
    row_b = page_b.wait_for_selector(f"#network-files li[data-rid='{rid}']")
    assert "Sunset over noise" in row_b.inner_text() and "1 provider" in row_b.inner_text()
    assert "files.changed" in page_b.evaluate("window.p2pkitLive")  # pushed, not polled
    # A uploads at most 400 KiB/s, so the 1.2 MiB take a few seconds and the bar is seen moving
    assert a.api("/api/settings", method="PUT", json={"upload_limit_kbps": 400}).status_code == 200
    with page_b.expect_download(timeout=60_000) as info:
        page_b.click(f"#network-files li[data-rid='{rid}'] button.download")
        running = page_b.wait_for_selector(
            f"#network-files li[data-rid='{rid}'] .progress[data-state=running]:has-text('1 peer')")
        assert "/s" in running.inner_text()
        shots(page_b, "share-downloading")
    download = info.value
    a.api("/api/settings", method="PUT", json={"upload_limit_kbps": 0})
    assert download.suggested_filename == "Sunset noise.png"
    saved = tmp_path / "saved.png"
    download.save_as(str(saved))
    assert saved.read_bytes() == original.read_bytes()
    page_b.wait_for_selector(f"#network-files li[data-rid='{rid}'] .progress[data-state=completed]")
    page_b.wait_for_selector(f"#my-files li[data-rid='{rid}']")  # B holds it now
    shots(page_b, "share-downloaded")

    # search and detail on B
    page_b.click("#nav a[data-page=search]")
    page_b.fill("#search-input", "sunset")
    page_b.wait_for_selector(f"#search-results article[data-rid='{rid}']")
    shots(page_b, "search")
    page_b.click(f"#search-results article[data-rid='{rid}']")
    detail = page_b.wait_for_selector(f"#video-detail[data-rid='{rid}']")
    assert rid in detail.inner_text() and "Sunset over noise" in detail.inner_text()
    shots(page_b, "detail")

    # history on B: the download and the view, newest first; delete one
    page_b.click("#nav a[data-page=history]")
    page_b.wait_for_selector("#history-table tr[data-id] >> nth=1")
    kinds = page_b.eval_on_selector_all("#history-table tr[data-id] .tag", "els => els.map(e => e.textContent)")
    assert kinds == ["view", "download"]
    shots(page_b, "history")
    page_b.click("#history-table tr[data-id] >> nth=0 >> button.delete")
    wait_until(page_b, "document.querySelectorAll('#history-table tr[data-id]').length === 1")
    assert [e["kind"] for e in b.api("/api/history").json()["history"]] == ["download"]

    # peers on B: A is online; the toggle switches it off and on
    page_b.click("#nav a[data-page=peers]")
    row = page_b.wait_for_selector(f"#peer-table tr[data-peer='{a.node_id}']")
    assert "online" in row.inner_text()
    shots(page_b, "peers")
    page_b.click(f"#peer-table tr[data-peer='{a.node_id}'] label.switch")
    wait_until(page_b, f"""fetch('/api/peers').then(r => r.json()).then(
        d => d.peers.some(p => p.id === '{a.node_id}' && p.enabled === false))""")
    page_b.wait_for_selector(".toast.ok:has-text('disabled')")
    page_b.click(f"#peer-table tr[data-peer='{a.node_id}'] label.switch")
    page_b.wait_for_selector(".toast.ok:has-text('enabled')")
    assert all(p["enabled"] for p in b.api("/api/peers").json()["peers"])

    # remove on A: it disappears from B's network list without a reload
    page_b.click("#nav a[data-page=share]")
    page_b.wait_for_selector(f"#network-files li[data-rid='{rid}']")
    page_a.click(f"#my-files li[data-rid='{rid}'] button.remove")
    page_a.wait_for_selector(f"#my-files li[data-rid='{rid}']", state="detached")
    page_b.wait_for_selector(f"#network-files li[data-rid='{rid}']", state="detached")
    assert page_a.js_errors == [] and page_b.js_errors == []
    assert error_toasts(page_a) == [] and error_toasts(page_b) == []


def test_settings_round_trip(nodes: tuple[NodeProcess, NodeProcess], browser: Any, shots: Any) -> None:
    _, b = nodes
    page = open_page(browser, b.base + "/settings")
    wait_until(page, "document.querySelector('#setting-cache_limit_mb').value !== ''")
    # a key the start configuration gave is replaced there at the next start: said
    page.wait_for_selector("#given-max_connections")
    assert page.query_selector("#given-cache_limit_mb") is None
    page.fill("#setting-cache_limit_mb", "1234")
    page.press("#setting-cache_limit_mb", "Tab")
    page.wait_for_selector(".setting.saved[data-key=cache_limit_mb]")
    page.click(".setting[data-key=p2p_enabled] label.switch")
    wait_until(page, "fetch('/api/settings').then(r => r.json()).then(s => s.p2p_enabled === false)")
    assert b.api("/api/settings").json()["cache_limit_mb"] == 1234
    page.reload()
    wait_until(page, "document.querySelector('#setting-cache_limit_mb').value === '1234'")
    assert page.is_checked("#setting-p2p_enabled") is False
    page.fill("#setting-max_connections", "0")
    page.press("#setting-max_connections", "Tab")
    error = page.wait_for_selector(".setting[data-key=max_connections] .error:not([hidden])")
    assert "max_connections" in error.inner_text()
    shots(page, "settings")
    page.click(".setting[data-key=p2p_enabled] label.switch")
    wait_until(page, "fetch('/api/settings').then(r => r.json()).then(s => s.p2p_enabled === true)")
    assert page.js_errors == []
    b.api("/api/settings", method="PUT", json={"cache_limit_mb": 2048})


def test_drag_and_drop_and_refusals(nodes: tuple[NodeProcess, NodeProcess], browser: Any) -> None:
    a, _ = nodes
    page = open_page(browser, a.base + "/share")
    wav = base64.b64encode(tone_wav()).decode()
    page.evaluate(
        """(data) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], "tone 440.wav", { type: "audio/wav" }));
            document.querySelector("#drop-zone").dispatchEvent(
                new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""", wav)
    page.wait_for_selector("#uploads li .tag-audio")  # the detected category, as a tag
    row = page.wait_for_selector("#my-files li[data-rid]:has(.tag-audio)")
    assert "tone 440" in row.inner_text()
    page.set_input_files("#file-input", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                                "buffer": b"not media at all\n" * 100}])
    page.wait_for_selector(".toast.error:has-text('not an audio')")
    page.wait_for_selector("#uploads li:has-text('not media')")
    assert page.js_errors == []


@pytest.mark.parametrize("path", ["/", "/search", "/peers", "/history", "/settings"])
def test_a_phone_wide_screen_never_scrolls_sideways(nodes: tuple[NodeProcess, NodeProcess],
                                                    browser: Any, path: str) -> None:
    # at 375 px the page was 413 px wide: the nav cut off, the peers table's switch and
    # the history table off-screen, the node id sticking out of the footer
    a, _ = nodes
    page = open_page(browser, a.base + path, width=375)
    page.wait_for_timeout(500)  # the page's first data has come
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    assert page.js_errors == []


def test_results_of_the_last_search_cannot_be_clicked_while_a_new_one_runs(
        nodes: tuple[NodeProcess, NodeProcess], browser: Any) -> None:
    # a click during a search opened (and recorded a view of) an item of the old query
    a, _ = nodes
    page = open_page(browser, a.base + "/search")
    page.wait_for_selector("#search-results:not(.stale)")
    held: list[Any] = []
    page.route("**/api/search?q=held*", lambda route: held.append(route))  # answered later
    page.fill("#search-input", "held")
    wait_until(page, "document.querySelector('#search-results').classList.contains('stale')")
    assert page.evaluate("getComputedStyle(document.querySelector('#search-results')).pointerEvents") == "none"
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    held[0].continue_()
    page.wait_for_selector("#search-results:not(.stale)")
    assert page.js_errors == []


def test_a_running_download_can_be_cancelled_from_its_row(nodes: tuple[NodeProcess, NodeProcess],
                                                           browser: Any, tmp_path: Path) -> None:
    # there was no way to stop a download: its button only said "Downloading…"
    a, b = nodes
    image = noise_png(tmp_path / "to cancel.png", 1200, 900)
    with image.open("rb") as f:
        shared = a.api("/api/files", method="POST", files={"file": ("to cancel.png", f, "image/png")})
    rid = shared.json()["rid"]
    assert a.api("/api/settings", method="PUT", json={"upload_limit_kbps": 16}).status_code == 200
    try:
        page = open_page(browser, b.base + "/share")
        # page.click finds the button again when the list is redrawn between finding and
        # clicking it (an element handle then points at a detached node: CI on 774281f)
        page.click(f"#network-files li[data-rid='{rid}'] button.download")
        page.wait_for_selector(f"#network-files li[data-rid='{rid}'] .progress[data-state=running]")
        page.click(f"#network-files li[data-rid='{rid}'] button.download:has-text('Cancel')")
        page.wait_for_selector(f"#network-files li[data-rid='{rid}'] .progress[data-state=cancelled]")
        assert page.inner_text(f"#network-files li[data-rid='{rid}'] button.download") == "Download"
        states = {d["rid"]: d["state"] for d in b.api("/api/downloads").json()["downloads"]}
        assert states[rid] == "cancelled" and page.js_errors == []
    finally:
        a.api("/api/settings", method="PUT", json={"upload_limit_kbps": 0})
        a.api(f"/api/files/{rid}", method="DELETE")


def test_the_log_panel_shows_what_the_node_said_before_the_page_was_opened(
        nodes: tuple[NodeProcess, NodeProcess], browser: Any, tmp_path: Path) -> None:
    # warnings and notices reached only pages that were open then: a page opened (or
    # reloaded) later never showed them, though the node keeps its recent lines for it
    a, _ = nodes
    image = noise_png(tmp_path / "said before.png", 300, 200)
    with image.open("rb") as f:
        rid = a.api("/api/files", method="POST", files={"file": ("said before.png", f, "image/png")}).json()["rid"]
    try:
        page = open_page(browser, a.base + "/share")
        page.wait_for_selector("#log div:has-text('shared said before.png')")
        page.reload()
        page.wait_for_selector("#conn.conn-online")
        line = page.wait_for_selector("#log div:has-text('shared said before.png')")
        assert page.eval_on_selector_all("#log div", "els => els.length") >= 2  # also "connected"
        assert "said before.png" in line.inner_text()
        assert len(page.query_selector_all("#log div:has-text('shared said before.png')")) == 1
        assert page.js_errors == []
    finally:
        a.api(f"/api/files/{rid}", method="DELETE")


def test_a_title_typed_for_several_files_is_not_put_on_each(nodes: tuple[NodeProcess, NodeProcess],
                                                            browser: Any, tmp_path: Path) -> None:
    a, _ = nodes
    first, second = noise_png(tmp_path / "first.png", 200, 120), noise_png(tmp_path / "second.png", 220, 100)
    page = open_page(browser, a.base + "/share")
    page.fill("#upload-title", "One title")
    page.set_input_files("#file-input", [str(first), str(second)])
    wait_until(page, "document.querySelectorAll('#uploads li .tag-image').length === 2")
    titles = {f["name"]: f["title"] for f in a.api("/api/files").json()["files"]}
    try:
        assert titles["first.png"] == "first" and titles["second.png"] == "second"
        page.wait_for_selector("#log div:has-text('titled by their names')")
        # one file: the title is its own
        page.fill("#upload-title", "Second, titled")
        page.set_input_files("#file-input", str(second))
        wait_until(page, """fetch('/api/files').then(r => r.json()).then(
            d => d.files.some(f => f.title === 'Second, titled'))""")
        assert page.js_errors == []
    finally:
        for f in a.api("/api/files").json()["files"]:
            if f["name"] in ("first.png", "second.png"):
                a.api(f"/api/files/{f['rid']}", method="DELETE")


def free_tcp_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_download_row_follows_the_node_through_a_restart_and_its_provider_leaving(
        browser: Any, tmp_path: Path) -> None:
    # a download was lost with a restart; when the node forgot one, its row kept the old
    # progress and polled it (404 every 2 s); and a running download's row vanished when
    # its only provider left
    provider = NodeProcess(tmp_path / "provider")
    port = free_tcp_port()
    downloader_args = ("--bootstrap", f"127.0.0.1:{provider.udp_port}", "--http-port", str(port),
                       "--set", "swarm.provider_wait_s=4")
    downloader = NodeProcess(tmp_path / "downloader", *downloader_args)
    try:
        image = noise_png(tmp_path / "slow.png", 1200, 900)
        with image.open("rb") as f:
            rid = provider.api("/api/files", method="POST", files={"file": ("slow.png", f, "image/png")}).json()["rid"]
        assert provider.api("/api/settings", method="PUT", json={"upload_limit_kbps": 16}).status_code == 200
        row = f"#network-files li[data-rid='{rid}']"
        page = open_page(browser, downloader.base + "/share")
        page.click(f"{row} button.download")
        page.wait_for_selector(f"{row} .progress[data-state=running]")

        downloader.stop()  # the restarted node takes the download up again, under its id
        downloader = NodeProcess(tmp_path / "downloader", *downloader_args)
        page.wait_for_selector("#conn.conn-online", timeout=60_000)  # the page reconnected
        page.wait_for_selector("#log div:has-text('resuming the download of slow.png')")
        page.wait_for_selector(f"{row} .progress[data-state=running]")
        page.wait_for_selector(f"{row} button.download:has-text('Cancel')")

        downloader.stop()  # one whose node forgot it (its web UI database went)
        for path in (tmp_path / "downloader").glob("webui.sqlite*"):
            path.unlink()
        downloader = NodeProcess(tmp_path / "downloader", *downloader_args)
        page.wait_for_selector("#log div:has-text('no longer has the download')", timeout=60_000)
        page.wait_for_selector(f"{row} button.download:has-text('Download')")
        assert page.query_selector(f"{row} .progress") is None

        page.click(f"{row} button.download")  # again, on the restarted node
        page.wait_for_selector(f"{row} .progress[data-state=running]")
        provider.stop()
        wait_until(page, f"""fetch('/api/network/files').then(r => r.json()).then(
            d => !d.files.some(f => f.rid === '{rid}'))""")
        page.wait_for_timeout(500)  # a refresh of the list happened meanwhile
        page.click("#refresh-network")
        page.wait_for_timeout(500)
        assert page.query_selector(f"{row} .progress[data-state=running]") is not None
        assert page.query_selector(f"{row} .tag-image") is not None  # what it is, still
        # nothing comes and nobody offers it for swarm.provider_wait_s: it fails, and its
        # row says so after the next refresh too (it vanished), Download disabled (a 404)
        page.wait_for_selector(f"{row} .progress[data-state=failed]:has-text('no peer offered')")
        page.click("#refresh-network")
        page.wait_for_timeout(500)
        assert "no peer offered" in page.inner_text(f"{row} .progress[data-state=failed]")
        assert page.is_disabled(f"{row} button.download:has-text('Download')")
        states = {d["rid"]: d["state"] for d in downloader.api("/api/downloads").json()["downloads"]}
        assert states[rid] == "failed"
        assert page.js_errors == []
        assert error_toasts(page)[:2] == ["Lost the connection to the node"] * 2
    finally:
        downloader.stop()
        provider.stop()


def test_the_detail_view_follows_the_download_it_started(nodes: tuple[NodeProcess, NodeProcess],
                                                         browser: Any, tmp_path: Path) -> None:
    # the button stayed disabled with "Download" while the file came and after it was saved
    a, b = nodes
    image = noise_png(tmp_path / "detailed.png", 1000, 700)
    with image.open("rb") as f:
        rid = a.api("/api/files", method="POST", files={"file": ("detailed.png", f, "image/png")}).json()["rid"]
    assert a.api("/api/settings", method="PUT", json={"upload_limit_kbps": 400}).status_code == 200
    try:
        wait_until_listed = f"""fetch('/api/network/files').then(r => r.json()).then(
            d => d.files.some(f => f.rid === '{rid}' && f.providers > 0))"""
        page = open_page(browser, b.base + f"/search/{rid}")
        wait_until(page, wait_until_listed)
        page.reload()
        page.wait_for_selector("#conn.conn-online")
        with page.expect_download(timeout=60_000) as info:
            page.click("#detail-download:has-text('Download')")
            page.wait_for_selector("#detail-download:has-text('Cancel')")
            page.wait_for_selector("#detail-status:has-text('%')")
        assert info.value.suggested_filename == "detailed.png"
        page.wait_for_selector("#detail-download:has-text('Save'):not([disabled])")
        page.wait_for_selector("#detail-status:has-text('downloaded')")
        assert page.js_errors == [] and error_toasts(page) == []
        # removed here: its row no longer says "done" under a Download button
        assert b.api(f"/api/files/{rid}", method="DELETE").status_code == 200
        share = open_page(browser, b.base + "/share")
        share.wait_for_selector(f"#network-files li[data-rid='{rid}'] button.download:has-text('Download')")
        assert share.query_selector(f"#network-files li[data-rid='{rid}'] .progress") is None
    finally:
        a.api("/api/settings", method="PUT", json={"upload_limit_kbps": 0})
        a.api(f"/api/files/{rid}", method="DELETE")
        for f in b.api("/api/files").json()["files"]:
            if f["rid"] == rid:
                b.api(f"/api/files/{rid}", method="DELETE")
