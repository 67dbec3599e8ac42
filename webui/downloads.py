"""Downloads started from the UI: run in the node's nursery, observed by the browser.

A download is queued → running → completed | failed | cancelled, or interrupted when the
node stops meanwhile (it is taken up again, under its id, when the node restarts: see
unfinished.py). Content this node already holds
completely (an own share, an earlier download) is exported from the store without
touching the network; anything else goes through ``node.download`` (the swarm). Progress
is pushed to WebSocket clients at most a few times a second per download.

A download that fails — a full disk or store included — is over: its row says why and
what to do, and the next start does not take it up again; what it fetched stays in the
store, so starting it again goes on from there. The bookkeeping around a download (the
history, the downloads to take up again) is SQLite on the same disk: a write there that
fails is a warning in the log, never the download's failure nor the node's end.
"""

from __future__ import annotations

import importlib
import logging
import secrets
import shutil
import sqlite3
from collections import OrderedDict
from pathlib import Path
from typing import Any

import trio

from p2pkit._exceptions import CapabilityError, P2PKitError
from p2pkit.diskerrors import is_disk_full
from p2pkit.rates import RateMeter

from .database import write_problem
from .history import History
from .hub import Hub
from .unfinished import Unfinished, UnfinishedDownloads

log = logging.getLogger("p2pkit.webui.downloads")
PUBLISH_INTERVAL = 0.25  # seconds between progress messages of one download
MAX_REMEMBERED = 200


def _store_error(exc: BaseException, name: str) -> bool:
    """Is ``exc``, or an error it was raised from, the store plugin's ``name`` error?"""
    try:
        wanted = getattr(importlib.import_module("p2pkit.plugins.store"), name)
    except (ImportError, AttributeError):
        return False
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, wanted):
            return True
        seen = seen.__cause__
    return False


def _is_store_full(exc: BaseException) -> bool:
    return _store_error(exc, "StoreFullError")


def failure_message(exc: BaseException) -> str:
    """What a failed download's row says: for a full disk or store, also what to do."""
    detail = str(exc) or type(exc).__name__
    if _store_error(exc, "DiskFullError"):
        return detail  # the store said which disk and what to do
    if is_disk_full(exc):
        return (f"the disk is full ({detail}): free some space, then start the download "
                "again")
    if _is_store_full(exc):
        return (f"the store is full ({detail}): raise the cache limit on the Settings page "
                "or remove shared files, then start the download again")
    return detail


class Download:
    def __init__(self, rid: str, name: str, size: int, title: str, download_id: str | None = None,
                 category: str = "") -> None:
        self.id = download_id or secrets.token_hex(8)
        self.rid = rid
        self.name = name
        self.title = title
        self.category = category  # for a row of a file the network stopped offering
        self.resumed = False  # taken up again after a restart: ``elapsed`` is since then
        self.total = size
        self.done = 0
        self.state = "queued"
        self.error = ""
        self.peers = 0
        self.path: Path | None = None
        self.exported: tuple[int, int] | None = None  # (size, mtime_ns) of the export made
        self.started = trio.current_time()
        self.finished: float | None = None
        self._meter = RateMeter(window=3.0, resolution=0.2)
        # from the first progress report on: what was here before it (a download taken
        # up again) is not speed — counted from 0, a resumed one showed 1.5 MiB/s for 100 KiB/s
        self._measured = False
        self._last_publish = -1e9
        self._scope: trio.CancelScope | None = None  # the running task's, for cancel()
        self.waiting = ""  # why a running download does not move (DownloadManager.explain)

    @property
    def rate(self) -> float:
        if self.state != "running" or not self._measured:
            return 0.0
        return self._meter.rate(trio.current_time(), self.done)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "rid": self.rid, "name": self.name, "title": self.title,
            "category": self.category, "resumed": self.resumed,
            "state": self.state, "bytes": self.done, "total": self.total,
            "progress": (self.done / self.total) if self.total else (1.0 if self.state == "completed" else 0.0),
            "rate": round(self.rate, 1), "peers": self.peers, "error": self.error,
            "elapsed": round((self.finished or trio.current_time()) - self.started, 3),
            "file_url": f"/api/downloads/{self.id}/file" if self.state == "completed" else None,
            "waiting": self.waiting,
        }


class DownloadManager:
    def __init__(self, node: Any, hub: Hub, history: History, root: Path,
                 unfinished: UnfinishedDownloads) -> None:
        self._node = node
        self._hub = hub
        self._history = history
        self._root = root
        self._unfinished = unfinished
        self._downloads: OrderedDict[str, Download] = OrderedDict()

    def get(self, download_id: str) -> Download | None:
        return self._downloads.get(download_id)

    def all(self) -> list[Download]:
        return list(reversed(self._downloads.values()))

    def active_for(self, rid: str) -> Download | None:
        for dl in self._downloads.values():
            if dl.rid == rid and dl.state in ("queued", "running"):
                return dl
        return None

    def completed_for(self, rid: str) -> Download | None:
        """The latest completed download of ``rid`` whose export is still there as it was
        made: saving the file again reuses it (each Save wrote another full copy)."""
        for dl in reversed(self._downloads.values()):
            if dl.rid == rid and dl.state == "completed" and dl.path is not None:
                try:
                    st = dl.path.stat()
                except OSError:
                    continue
                if (st.st_size, st.st_mtime_ns) == dl.exported:
                    return dl
        return None

    def explain(self, dl: Download) -> Download:
        """Say in ``dl.waiting`` why a running download does not move ("" while it does):
        a download whose only provider was switched off sat at "0 peers" with no hint."""
        dl.waiting = ""
        if dl.state != "running" or dl.rate > 0:
            return dl
        peers = self._node.peers
        off = sum(1 for p in peers.all() if not p.enabled) if peers is not None else 0
        swarm = self._node.swarm
        report = swarm.diagnose(dl.rid) if swarm is not None else None
        if report is None:
            reason = "asking the peers for the file"
        elif report["requested"]:
            reason = "waiting for the blocks asked for"
        elif report["only_choking_peers"] and not report["nobody"]:
            reason = "waiting for a peer to let us download"
        else:
            reason = "no peer we download from offers it yet"
        if off:
            reason += f" ({off} peer{'s' if off > 1 else ''} switched off on the Peers page)"
        dl.waiting = reason
        return dl

    def cancel(self, dl: Download) -> bool:
        """Stop a queued or running download (what it fetched stays in the store, so a
        later download resumes); False if it had already ended."""
        if dl.state not in ("queued", "running"):
            return False
        self._unfinished.remove(dl.id)
        dl.state, dl.error = "cancelled", ""
        dl.finished = trio.current_time()  # a queued one never reaches its run's finally
        if dl._scope is not None:
            dl._scope.cancel()
        self._publish(dl, force=True)
        log.info("download %s cancelled: %s", dl.id, dl.name)
        return True

    def start(self, rid: str, name: str, size: int, title: str = "", category: str = "") -> Download:
        dl = Download(rid, name, size, title or name, category=category)
        self._unfinished.add(Unfinished(dl.id, dl.rid, dl.name, dl.total, dl.title))
        return self._launch(dl)

    def resume_unfinished(self) -> None:
        """Take up the downloads an earlier run of this node left unfinished (it stopped
        or crashed meanwhile), under their ids; what they fetched is in the store."""
        for item in self._unfinished.all():
            if item.id not in self._downloads and self.active_for(item.rid) is None:
                log.info("resuming the download of %s", item.name)
                store = self._node.store
                manifest = store.manifest(item.rid) if store is not None else None
                dl = Download(item.rid, item.name, item.size, item.title, item.id,
                              category=str(getattr(manifest, "category", "") or ""))
                dl.resumed = True
                self._launch(dl)
            else:
                self._unfinished.remove(item.id)

    def _launch(self, dl: Download) -> Download:
        dl.done = self._held(dl.rid)  # a partial file goes on from its whole pieces
        self._downloads[dl.id] = dl
        self._forget_old()
        self._node.nursery.start_soon(self._run, dl)
        self._publish(dl, force=True)
        return dl

    def _forget_old(self) -> None:
        while len(self._downloads) > MAX_REMEMBERED:
            old_id, old = next(iter(self._downloads.items()))
            if old.state in ("queued", "running"):
                break
            del self._downloads[old_id]
            shutil.rmtree(self._root / old_id, ignore_errors=True)

    def on_swarm_progress(self, data: dict[str, Any]) -> None:
        """``download.progress`` events of the swarm carry the peer count."""
        rid = data.get("rid")
        dl = self.active_for(rid) if isinstance(rid, str) else None
        if dl is None:
            return
        peers = data.get("peers")
        if isinstance(peers, int) and not isinstance(peers, bool):
            dl.peers = peers
        elif isinstance(peers, list | tuple | set):
            dl.peers = len(peers)
        done = data.get("done", data.get("bytes"))
        if isinstance(done, int) and not isinstance(done, bool) and done >= dl.done:
            self._progress(dl, done, dl.total)

    def _held(self, rid: str) -> int:
        """Bytes of ``rid`` the store holds as whole pieces: what a download taken up
        again starts from."""
        store = self._node.store
        manifest = store.manifest(rid) if store is not None else None
        if manifest is None:
            return 0
        return int(manifest.size) - sum(int(manifest.piece_length(i)) for i in store.missing_pieces(rid))

    def _progress(self, dl: Download, done: int, total: int) -> None:
        if done < dl.done and total in (0, dl.total):
            return  # a report from before the swarm read the store (it said 0 at first)
        dl.done, dl.total = done, total or dl.total
        dl._meter.sample(trio.current_time(), done)
        dl._measured = True
        self._publish(dl)

    def _publish(self, dl: Download, force: bool = False) -> None:
        now = trio.current_time()
        if not force and now - dl._last_publish < PUBLISH_INTERVAL:
            return
        dl._last_publish = now
        self._hub.publish({"type": "download", "download": dl.as_dict()})

    async def _run(self, dl: Download) -> None:
        with trio.CancelScope() as dl._scope:
            if dl.state == "queued":  # not cancelled before it could start
                await self._fetch_and_export(dl)

    async def _fetch_and_export(self, dl: Download) -> None:
        dest = self._root / dl.id
        dl.state = "running"
        self._publish(dl, force=True)
        log.info("download %s started: %s", dl.id, dl.name)
        try:
            # in the try: a full disk (ext4 needs a block for a directory) fails the
            # download; outside it, the OSError took the node down
            dest.mkdir(parents=True, exist_ok=True)
            store = self._node.store
            if store is not None and dl.rid in store and store.is_complete(dl.rid):
                dl.path = Path(await store.export_async(dl.rid, dest))
            else:
                dl.path = Path(await self._node.download(
                    dl.rid, dest, progress=lambda done, total: self._progress(dl, done, total)))
            st = dl.path.stat()
            dl.done = dl.total = st.st_size
            dl.exported = (st.st_size, st.st_mtime_ns)
            dl.state = "completed"
            self._record_in_history(dl)
            log.info("download %s completed: %s (%d bytes)", dl.id, dl.name, dl.total)
        except CapabilityError as exc:
            dl.state, dl.error = "failed", f"this node cannot download: {exc}"
        except (P2PKitError, OSError) as exc:
            dl.state, dl.error = "failed", failure_message(exc)
            log.warning("download %s failed: %s", dl.id, dl.error)
        except Exception as exc:
            dl.state, dl.error = "failed", f"internal error: {type(exc).__name__}"
            log.exception("download %s failed", dl.id)
        finally:
            dl.finished = trio.current_time()
            stopping = self._node.state.value in ("stopping", "stopped")
            # cancelled by the node's stop, or failed as its sessions closed: not "failed",
            # which a page took as over (it did not save the file the restarted node got)
            if dl.state == "running" or (stopping and dl.state == "failed"):
                dl.state, dl.error = "interrupted", "the node stopped; the download goes on when it restarts"
            if dl.state != "interrupted":
                self._unfinished.remove(dl.id)  # (a failure to record it is only a warning)
            self._publish(dl, force=True)
            if dl.state == "completed":
                self._hub.publish({"type": "history.changed"})

    def _record_in_history(self, dl: Download) -> None:
        try:
            self._history.add(dl.rid, "download", dl.title)
        except sqlite3.Error as exc:  # the file is there all the same
            log.warning("the download of %s completed but is not in the history: %s",
                        dl.name, write_problem(exc))
