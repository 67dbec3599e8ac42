"""The single-page UI: one HTML shell for every page path, ES modules and CSS as static files."""

from __future__ import annotations

from quart import Blueprint, jsonify, render_template
from quart.typing import ResponseReturnValue

from ..app import web_ui
from ..openapi import openapi_document

bp = Blueprint("pages", __name__)
# Client-side pages (static/js/main.js PAGES); the player and AI pages join this list.
PAGES = ("share", "search", "peers", "history", "settings")


@bp.get("/")
@bp.get(f"/<any({', '.join(PAGES)}):page>")
@bp.get("/search/<rid>")
async def index(page: str = "share", rid: str = "") -> ResponseReturnValue:
    web = web_ui()
    response = await render_template("index.html", node_id=web.node.id, version=web.node.version)
    return response, 200, {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@bp.get("/api/openapi.json")
async def openapi() -> ResponseReturnValue:
    return jsonify(openapi_document())


@bp.get("/api/health")
async def health() -> ResponseReturnValue:
    return jsonify({"ok": True})
