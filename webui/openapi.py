"""A small OpenAPI 3.1 document of the API (request schemas generated from the msgspec structs)."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from p2pkit.version import __version__

from .schemas import DownloadRequest, HistoryCreate, PeerToggle

# (method, path, summary, request body schema name or None, success status)
ROUTES: tuple[tuple[str, str, str, str | None, int], ...] = (
    ("get", "/api/node", "This node: id, addresses, peers, rates, providers, settings", None, 200),
    ("get", "/api/files", "Local files (own shares and downloads)", None, 200),
    ("post", "/api/files", "Share a media file (multipart: file, title, description)", "multipart", 201),
    ("delete", "/api/files/{rid}", "Stop sharing and remove a local file", None, 200),
    ("get", "/api/network/files", "Files the network offers, with provider counts", None, 200),
    ("post", "/api/downloads", "Start downloading a file by rid", "DownloadRequest", 202),
    ("get", "/api/downloads", "Downloads of this session, newest first", None, 200),
    ("get", "/api/downloads/{id}", "One download: state, bytes, rate, peers", None, 200),
    ("delete", "/api/downloads/{id}", "Cancel a queued or running download (what it fetched stays)", None, 200),
    ("get", "/api/downloads/{id}/file", "The finished file (original name)", None, 200),
    ("get", "/api/search", "Search title, description and name (?q=)", None, 200),
    ("get", "/api/videos/{rid}", "Detail of one item (seed 004 video model)", None, 200),
    ("get", "/api/videos/{rid}/thumbnail", "JPEG thumbnail of a local item", None, 200),
    ("get", "/api/peers", "Peers: address, online, rates, bytes, enabled", None, 200),
    ("get", "/api/peers/stats", "Totals over the peers, NAT type", None, 200),
    ("put", "/api/peers/{pid}/toggle", "Switch a peer on or off (flip, or {enabled})", "PeerToggle", 200),
    ("get", "/api/history", "History of downloads and views, newest first", None, 200),
    ("post", "/api/history", "Record a view or a download", "HistoryCreate", 201),
    ("delete", "/api/history/{id}", "Delete a history entry", None, 200),
    ("delete", "/api/history", "Delete all history", None, 200),
    ("get", "/api/settings", "Runtime settings", None, 200),
    ("put", "/api/settings", "Partial update of settings (applied at once, persisted)", "Settings", 200),
    ("get", "/api/settings/schema", "Type and meaning of every setting", None, 200),
    ("get", "/api/logs", "Recent log lines", None, 200),
    ("get", "/api/health", "Liveness: {\"ok\": true} while the node serves", None, 200),
)

_ERROR = {"type": "object", "required": ["error", "message"], "properties": {
    "error": {"type": "string"}, "message": {"type": "string"}, "key": {"type": "string"}}}


@cache
def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [DownloadRequest, HistoryCreate, PeerToggle], ref_template="#/components/schemas/{name}")
    components["Error"] = _ERROR
    components["Settings"] = {"type": "object", "additionalProperties": False, "properties": {
        "p2p_enabled": {"type": "boolean"}, "upload_limit_kbps": {"type": "integer", "minimum": 0},
        "cache_limit_mb": {"type": "integer", "minimum": 1}, "max_connections": {"type": "integer", "minimum": 1}}}
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, status in ROUTES:
        op: dict[str, Any] = {"summary": summary, "responses": {
            str(status): {"description": "success"},
            "default": {"description": "error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}}}
        if body == "multipart":
            op["requestBody"] = {"content": {"multipart/form-data": {"schema": {
                "type": "object", "required": ["file"], "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "title": {"type": "string", "maxLength": 4096},
                    "description": {"type": "string", "maxLength": 4096}}}}}}
        elif body is not None:
            op["requestBody"] = {"content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{body}"}}}}
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                                for p in params]
        paths.setdefault(path, {})[method] = op
    return {"openapi": "3.1.0", "info": {"title": "p2pkit web UI", "version": __version__},
            "paths": paths, "components": {"schemas": components}}
