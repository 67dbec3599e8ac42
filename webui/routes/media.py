"""Seed 004 §4.1.1: search and the video detail model."""

from __future__ import annotations

import logging
from typing import Any

import trio
from quart import Blueprint, Response, jsonify, request
from quart.typing import ResponseReturnValue

from ..app import WebUI, web_ui
from ..errors import ApiError
from ..schemas import check_rid
from ..views import local_files, network_file, network_files, video_model

bp = Blueprint("media", __name__)
log = logging.getLogger("p2pkit.webui.media")
MAX_QUERY = 200
SEARCH_TIMEOUT = 5.0


def _matches(file: dict[str, Any], needle: str) -> bool:
    return any(needle in str(file.get(k) or "").casefold() for k in ("title", "description", "name"))


@bp.get("/api/search")
async def search() -> ResponseReturnValue:
    query = request.args.get("q", "")
    if len(query) > MAX_QUERY:
        raise ApiError(422, f"q is longer than {MAX_QUERY} characters", key="q")
    if "\x00" in query:
        raise ApiError(422, "q contains NUL", key="q")
    web = web_ui()
    needle = query.strip().casefold()
    results: dict[str, dict[str, Any]] = {}
    for file in network_files(web):
        if _matches(file, needle):
            results[file["rid"]] = file
    if web.node.discovery is not None and needle:
        with trio.move_on_after(SEARCH_TIMEOUT):
            try:
                for entry in await web.node.search(query.strip()):
                    results.setdefault(str(entry.get("rid")), network_file(web, entry))
            except Exception:
                log.exception("network search for %r failed", query)
    for file in local_files(web):
        if _matches(file, needle):
            results.setdefault(file["rid"], file)
    items = [video_model(f) for f in results.values()]
    items.sort(key=lambda v: str(v["title"]).casefold())
    return jsonify({"query": query, "count": len(items), "results": items})


def find_video(web: WebUI, rid: str) -> dict[str, Any] | None:
    for file in local_files(web):
        if file["rid"] == rid:
            net = {f["rid"]: f for f in network_files(web)}.get(rid)
            return {**file, "providers": net["providers"] if net else 0}
    for file in network_files(web):
        if file["rid"] == rid:
            return file
    return None


@bp.get("/api/videos/<rid>")
async def get_video(rid: str) -> ResponseReturnValue:
    web = web_ui()
    rid = check_rid(rid)
    file = find_video(web, rid)
    if file is None:
        raise ApiError(404, f"no content with rid {rid} is known")
    return jsonify(video_model(file))


@bp.get("/api/videos/<rid>/thumbnail")
async def get_thumbnail(rid: str) -> ResponseReturnValue:
    store = web_ui().node.store
    manifest = store.manifest(check_rid(rid)) if store is not None else None
    if manifest is None or not manifest.thumbnail:
        raise ApiError(404, "no thumbnail for this content")
    response = Response(manifest.thumbnail, mimetype="image/jpeg")
    response.headers["Cache-Control"] = "max-age=86400, immutable"  # the rid pins the content
    return response
