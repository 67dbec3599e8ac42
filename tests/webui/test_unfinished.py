"""The downloads a restarted node takes up again (``webui/unfinished.py``)."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from p2pkit.webui import WebConfig, WebUI
from p2pkit.webui.unfinished import MAX_UNFINISHED, Unfinished, UnfinishedDownloads

from p2pkit._exceptions import ConfigError
from p2pkit.config import NodeConfig
from p2pkit.node import open_node
from tests.fulldisk import FullDisk

from .conftest import multipart, node_config, png_bytes, wait_for

RID = "ab" * 32


def item(n: int) -> Unfinished:
    return Unfinished(f"id{n}", RID, f"file {n}.png", 1000 + n, f"File {n}")


def test_rows_outlive_the_connection_oldest_first_and_go_when_removed(tmp_path: Path) -> None:
    db = tmp_path / "webui.sqlite"
    kept = UnfinishedDownloads(db)
    for n in range(3):
        kept.add(item(n))
    kept.remove("id1")
    kept.close()
    again = UnfinishedDownloads(db)
    assert again.all() == [item(0), item(2)]
    again.close()


def test_the_rows_are_bounded_and_odd_rows_are_skipped(tmp_path: Path) -> None:
    kept = UnfinishedDownloads(None)
    for n in range(MAX_UNFINISHED + 5):
        kept.add(item(n))
    assert len(kept.all()) == MAX_UNFINISHED
    kept.close()
    db = tmp_path / "webui.sqlite"
    UnfinishedDownloads(db).close()
    with sqlite3.connect(db) as raw:  # a hand-edited file: a size that is not a number
        raw.execute("INSERT INTO unfinished_downloads VALUES ('x', ?, 'n', 'big', 't', 0)", (RID,))
    assert UnfinishedDownloads(db).all() == []


def test_a_damaged_database_is_a_clear_error(tmp_path: Path) -> None:
    damaged = tmp_path / "webui.sqlite"
    damaged.write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="damaged"):
        UnfinishedDownloads(damaged)


# ---------------------------------------------------------------------------- a full disk


def fill_the_disk(ui: WebUI) -> None:
    """From now on the web UI's database and the store's exports find no room."""
    ui.unfinished._db = FullDisk(ui.unfinished._db)  # type: ignore[assignment]
    ui.history._db = FullDisk(ui.history._db)  # type: ignore[assignment]

    async def export_async(rid: str, dest: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    ui.node.store.export_async = export_async


@contextlib.asynccontextmanager
async def sharing_a_png(config: NodeConfig, name: str) -> AsyncIterator[tuple[WebUI, Any, str]]:
    """A node with its web UI, sharing a PNG uploaded as ``name``: (ui, client, rid)."""
    async with open_node(config) as node:
        ui = WebUI(node, WebConfig(http_port=0))
        await node.nursery.start(ui.run_background)
        client = ui.app.test_client()
        body, headers = multipart({}, name, png_bytes())
        rid = (await (await client.post("/api/files", data=body, headers=headers)).get_json())["rid"]
        yield ui, client, rid


async def ended(client: Any, download_id: str) -> dict[str, Any]:
    async def state() -> dict[str, Any] | None:
        dl: dict[str, Any] = await (await client.get(f"/api/downloads/{download_id}")).get_json()
        return dl if dl["state"] not in ("queued", "running") else None
    dl = await wait_for(state)
    assert dl is not None
    return dl


async def test_a_full_disk_fails_the_download_and_neither_the_node_nor_its_next_starts(
        tmp_path: Path) -> None:
    # the reviewer's node on a full tmpfs: the download failed with ENOSPC, forgetting it
    # raised "database or disk is full" into the node's nursery (rc=1), and every restart
    # took the download up again and died the same way: the UI never came up again
    config = node_config(ephemeral=False, data_dir=str(tmp_path), repeater="off")
    async with sharing_a_png(config, "full.png") as (ui, client, rid):
        store = ui.node.store
        real_export = store.export_async

        async def export_filling_the_disk(rid: str, dest: object) -> None:
            fill_the_disk(ui)  # the download takes the last free bytes
            raise OSError(errno.ENOSPC, "No space left on device")

        store.export_async = export_filling_the_disk
        started = await client.post("/api/downloads", json={"rid": rid})
        assert started.status_code == 202
        dl = await ended(client, (await started.get_json())["id"])
        assert dl["state"] == "failed"
        assert "disk is full" in dl["error"] and "start the download again" in dl["error"]
        assert (await client.get("/api/node")).status_code == 200  # the node is still up
        logs = (await (await client.get("/api/logs")).get_json())["logs"]
        assert any(line["level"] == "warning" and "disk holding the web UI database is full"
                   in line["message"] for line in logs)  # the page's log panel says why
        del store.export_async
        assert store.export_async == real_export

    # the row that could not be removed: the next start takes the download up again; the
    # disk is still full, so it fails again — and the node starts all the same
    async with open_node(config) as node:
        ui = WebUI(node, WebConfig(http_port=0))
        fill_the_disk(ui)
        await node.nursery.start(ui.run_background)
        client = ui.app.test_client()
        again = await ended(client, dl["id"])
        assert again["state"] == "failed" and "disk is full" in again["error"]
        listed = (await (await client.get("/api/downloads")).get_json())["downloads"]
        assert [d["id"] for d in listed] == [dl["id"]]

    # space freed: the next start finishes it, and then forgets it
    async with open_node(config) as node:
        ui = WebUI(node, WebConfig(http_port=0))
        await node.nursery.start(ui.run_background)
        client = ui.app.test_client()
        assert (await ended(client, dl["id"]))["state"] == "completed"
        assert ui.unfinished.all() == []


async def test_a_download_directory_that_cannot_be_made_fails_the_download_not_the_node(
        tmp_path: Path) -> None:
    # on a full ext4 disk making the download's directory failed (a directory needs a
    # block) outside the download's try: the OSError took the node down
    config = node_config(ephemeral=False, data_dir=str(tmp_path / "node"), repeater="off")
    async with sharing_a_png(config, "no room.png") as (ui, client, rid):
        blocker = tmp_path / "a file"
        blocker.write_text("not a directory")
        ui.downloads._root = blocker / "downloads"  # mkdir fails, as on a full disk
        started = await client.post("/api/downloads", json={"rid": rid})
        dl = await ended(client, (await started.get_json())["id"])
        assert dl["state"] == "failed" and "Not a directory" in dl["error"]
        assert (await client.get("/api/node")).status_code == 200


def test_writes_on_a_full_disk_are_warnings(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kept = UnfinishedDownloads(tmp_path / "webui.sqlite")
    kept.add(item(1))
    kept._db = FullDisk(kept._db)  # type: ignore[assignment]
    assert kept.add(item(2)) is False
    assert kept.remove("id1") is False
    assert kept.all() == [item(1)]
    assert sum("disk holding the web UI database is full" in r.getMessage() for r in caplog.records) == 2
    kept.close()


def test_a_download_failed_by_the_store_s_full_disk_says_what_to_do_once() -> None:
    from p2pkit.plugins.store import DiskFullError
    from p2pkit.plugins.swarm import SwarmError
    from p2pkit.webui.downloads import failure_message

    full = DiskFullError("writing piece 3 failed: the disk holding the store /d is full "
                         "(No space left on device); free some space and try again", Path("/d"))
    full.__cause__ = OSError(errno.ENOSPC, "No space left on device")  # as the store raises it
    failed = SwarmError(f"download of abc failed: {full}")
    failed.__cause__ = full
    message = failure_message(failed)
    assert message.count("free some space") == 1 and "the store /d is full" in message
