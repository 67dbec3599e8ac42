"""Own files (upload, list, remove), network files, downloads."""

from __future__ import annotations

import importlib
import logging
import mimetypes
import shutil
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import trio
from quart import Blueprint, jsonify, send_file
from quart.typing import ResponseReturnValue

from p2pkit.diskerrors import is_disk_full

from ..app import web_ui
from ..downloads import Download
from ..errors import ApiError, disk_full_message
from ..schemas import DownloadRequest, check_rid, read_json
from ..uploads import UploadReceiver, unsupported_media_message
from ..views import local_file, local_files, network_files

bp = Blueprint("files", __name__)
log = logging.getLogger("p2pkit.webui.files")
FILE_CHUNK = 256 * 1024


def _store() -> Any:
    store = web_ui().node.store
    if store is None:
        raise ApiError(503, "this node has no store plugin, so it cannot share files")
    return store


@bp.get("/api/files")
async def list_files() -> ResponseReturnValue:
    return jsonify({"files": local_files(web_ui())})


@bp.post("/api/files")
async def upload_file() -> ResponseReturnValue:
    web = web_ui()
    store = _store()
    store_api: Any = importlib.import_module("p2pkit.plugins.store")
    StoreFullError, UnsupportedMedia, sniff = (
        store_api.StoreFullError, store_api.UnsupportedMedia, store_api.sniff)

    if web.upload_slots.available_tokens == 0:
        raise ApiError(503, "too many uploads at once; try again shortly")
    async with web.upload_slots:
        receiver = UploadReceiver(web.uploads_dir, web.config.max_upload_mb * 1024 * 1024, sniff,
                                  store_api.SNIFF_BYTES)
        web.uploads_in_progress.add(receiver.dir)
        try:
            upload = await receiver.receive()
            try:
                manifest = await web.node.share(upload.path, title=upload.title or None,
                                                description=upload.description)
            except UnsupportedMedia as exc:
                raise ApiError(415, unsupported_media_message(exc), key="file") from None
            except StoreFullError as exc:
                raise ApiError(507, f"the store is full: {exc}") from None
        except BaseException as exc:
            shutil.rmtree(receiver.dir, ignore_errors=True)
            # receiving it or storing it ran out of disk (a raw OSError, or the store's
            # error or SQLite's around one): say so — the partial upload is gone again
            if isinstance(exc, OSError | store_api.StoreError | sqlite3.Error) and is_disk_full(exc):
                log.warning("an upload found no room: %s", exc)
                raise ApiError(507, disk_full_message(exc) + " (the partial upload was removed)") from None
            raise
        finally:
            web.uploads_in_progress.discard(receiver.dir)
    info = store.item(manifest.rid)
    if info is None or info.source != str(upload.path.resolve()):
        shutil.rmtree(receiver.dir, ignore_errors=True)  # the same content was already shared
    _sweep()
    log.info("shared %s (%s, %d bytes) as %s", manifest.name, manifest.category, manifest.size, manifest.rid[:12])
    return jsonify(local_file(web, store.item(manifest.rid))), 201


def _sweep() -> None:
    web_ui().sweep_uploads()


@bp.delete("/api/files/<rid>")
async def remove_file(rid: str) -> ResponseReturnValue:
    store = _store()
    rid = check_rid(rid)
    info = store.item(rid)
    if info is None:
        raise ApiError(404, f"no local file with rid {rid[:80]!r}")
    await web_ui().node.unshare(rid)
    _sweep()
    log.info("removed %s (%s)", info.name, rid[:12])
    return jsonify({"rid": rid, "removed": True})


@bp.get("/api/network/files")
async def list_network_files() -> ResponseReturnValue:
    return jsonify({"files": network_files(web_ui())})


@bp.post("/api/downloads")
async def start_download() -> ResponseReturnValue:
    web = web_ui()
    body = await read_json(DownloadRequest)
    existing = web.downloads.active_for(body.rid) or web.downloads.completed_for(body.rid)
    if existing is not None:
        return jsonify(existing.as_dict()), 200
    known = {f["rid"]: f for f in network_files(web)}
    entry = known.get(body.rid)
    store = web.node.store
    info = store.item(body.rid) if store is not None else None
    if entry is None and (info is None or not info.complete):
        raise ApiError(404, f"no file with rid {body.rid} is known on the network", key="rid")
    if entry is None and info is not None:
        entry = {"name": info.name, "size": info.size, "title": info.title}
    assert entry is not None
    if web.node.swarm is None and (info is None or not info.complete):
        raise ApiError(503, "this node has no swarm plugin, so it cannot download")
    # (a partial file too: resuming it needs the same room)
    needs_room = store is not None and (info is None or not info.complete)
    room = store.room_for_download(body.rid) if needs_room else None
    if room is not None and int(entry["size"]) > room:  # else 202, then failed at once
        raise ApiError(507, f"{entry['name']} ({entry['size']} bytes) cannot fit: the storage "
                            f"limit leaves {room} bytes for downloads (beside pinned files "
                            "and the downloads running)")
    dl = web.downloads.start(body.rid, entry["name"], int(entry["size"]), entry.get("title", ""),
                             str(entry.get("category") or (info.category if info is not None else "")))
    return jsonify(dl.as_dict()), 202


@bp.delete("/api/downloads/<download_id>")
async def cancel_download(download_id: str) -> ResponseReturnValue:
    dl = _download(download_id)
    if not web_ui().downloads.cancel(dl):
        raise ApiError(409, f"download {download_id} is {dl.state} already")
    return jsonify(dl.as_dict())


@bp.get("/api/downloads")
async def list_downloads() -> ResponseReturnValue:
    downloads = web_ui().downloads
    return jsonify({"downloads": [downloads.explain(d).as_dict() for d in downloads.all()]})


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name (browsers use the latter)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _mime(dl: Download) -> str:
    """The type the manifest names (read from the content's bytes: what /api/files and the
    network list say) — not a guess from the name, which said audio/x-wav for audio/wav."""
    store = web_ui().node.store
    manifest = store.manifest(dl.rid) if store is not None else None
    if manifest is not None:
        return str(manifest.mime)
    return mimetypes.guess_type(dl.name)[0] or "application/octet-stream"


def _download(download_id: str) -> Download:
    dl = web_ui().downloads.get(download_id)
    if dl is None:
        raise ApiError(404, f"no download with id {download_id[:80]!r}")
    return dl


@bp.get("/api/downloads/<download_id>")
async def get_download(download_id: str) -> ResponseReturnValue:
    return jsonify(web_ui().downloads.explain(_download(download_id)).as_dict())


@bp.get("/api/downloads/<download_id>/file")
async def download_file(download_id: str) -> ResponseReturnValue:
    dl = _download(download_id)
    if dl.state != "completed" or dl.path is None:
        raise ApiError(409, f"download {download_id} is {dl.state}, not completed")
    path = trio.Path(dl.path)
    if not await path.is_file():
        raise ApiError(410, "the downloaded file is gone from disk")
    response = await send_file(Path(path), mimetype=_mime(dl), conditional=True)
    response.headers["Content-Disposition"] = content_disposition(dl.name)
    response.headers["Accept-Ranges"] = "bytes"  # also on a 200: players may seek
    # the user's own download, behind the UI's access checks: no shared cache keeps it
    response.headers["Cache-Control"] = "private, no-cache"
    # quart-trio reads files through a worker thread per chunk; its default 8 KiB chunks
    # cost a thread hop per 8 KiB
    response.response.buffer_size = FILE_CHUNK  # type: ignore[attr-defined]
    return response
