"""The JSON API against the real app and a real node: settings, history, downloads,
peers, errors, the event socket."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from p2pkit.webui import WebConfig, WebUI
from quart_trio.testing import TrioClient

from p2pkit.config import NodeConfig
from p2pkit.node import open_node
from tests.fulldisk import FullDisk, sqlite_full_error

from .conftest import multipart, node_config, png_bytes

RID = "ab" * 32


# ---------------------------------------------------------------------------- settings


async def test_settings_get_and_partial_update(client: TrioClient, web: WebUI) -> None:
    before = await (await client.get("/api/settings")).get_json()
    assert set(before) == {"p2p_enabled", "upload_limit_kbps", "cache_limit_mb", "max_connections"}
    response = await client.put("/api/settings", json={"max_connections": 7})
    assert response.status_code == 200
    after = await response.get_json()
    assert after == {**before, "max_connections": 7}
    assert web.node.settings.max_connections == 7  # applied at once
    after = await (await client.put("/api/settings", json={"p2p_enabled": False, "upload_limit_kbps": 64})).get_json()
    assert after["p2p_enabled"] is False and after["upload_limit_kbps"] == 64 and after["max_connections"] == 7


@pytest.mark.parametrize(("body", "key"), [
    ({"no_such_setting": 1}, "no_such_setting"),
    ({"p2p_enabled": "yes"}, "p2p_enabled"),
    ({"max_connections": True}, "max_connections"),
    ({"upload_limit_kbps": -1}, "upload_limit_kbps"),
    ({"cache_limit_mb": 0}, "cache_limit_mb"),
    ({"cache_limit_mb": 1.5}, "cache_limit_mb"),
    ({"max_connections": 5, "cache_limit_mb": -3}, "cache_limit_mb"),
])
async def test_bad_settings_are_422_naming_the_key_and_change_nothing(
        client: TrioClient, web: WebUI, body: dict[str, object], key: str) -> None:
    before = web.node.settings.as_dict()
    response = await client.put("/api/settings", json=body)
    assert response.status_code == 422
    error = await response.get_json()
    assert error["key"] == key and key in error["message"]
    assert web.node.settings.as_dict() == before


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b"\"text\"", b"\xff\xfe", b"{}", b""])
async def test_malformed_settings_body(client: TrioClient, raw: bytes) -> None:
    response = await client.put("/api/settings", data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    assert "message" in await response.get_json()


@pytest.mark.parametrize("mimetype", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_json_body_must_say_it_is_json(client: TrioClient, web: WebUI, mimetype: str | None) -> None:
    # what another site's form can send without a preflight was taken as JSON
    before = web.node.settings.as_dict()
    headers = {"Content-Type": mimetype} if mimetype else {}
    response = await client.put("/api/settings", data=b'{"cache_limit_mb": 77}', headers=headers)
    assert response.status_code == 415 and "application/json" in (await response.get_json())["message"]
    assert web.node.settings.as_dict() == before


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/api/settings"), ("POST", "/api/history"), ("POST", "/api/downloads"),
    ("PUT", f"/api/peers/{RID}/toggle"),
])
@pytest.mark.parametrize("raw", [b"[" * 60_000, b'{"a":' * 12_000])
async def test_deeply_nested_json_is_400_not_a_server_error(client: TrioClient, method: str, path: str,
                                                            raw: bytes) -> None:
    # msgspec raises RecursionError, not DecodeError, past its nesting limit
    response = await client.open(path, method=method, data=raw,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "malformed JSON" in (await response.get_json())["message"]


async def test_large_body_outside_uploads_is_413(client: TrioClient) -> None:
    response = await client.post("/api/history", data=b"x" * 200_000, headers={"Content-Type": "application/json"})
    assert response.status_code == 413


async def test_huge_json_body_is_413(client: TrioClient) -> None:
    response = await client.put("/api/settings", data=b"{\"x\": \"" + b"a" * 100_000 + b"\"}",
                                headers={"Content-Type": "application/json"})
    assert response.status_code == 413


async def test_the_schema_says_which_settings_the_start_configuration_gave() -> None:
    # a value set on the page was replaced at the next start by the one the config file
    # gave, and the page said "kept across restarts"
    config = NodeConfig.from_mapping({"node": {"host": "127.0.0.1", "port": 0, "ephemeral": True},
                                      "cfg": {"cache_limit_mb": 64}})
    async with open_node(config) as node:
        ui = WebUI(node, WebConfig(http_port=0))
        await node.nursery.start(ui.run_background)
        schema = await (await ui.app.test_client().get("/api/settings/schema")).get_json()
    assert {key for key, spec in schema.items() if spec["given_at_start"]} == {"cache_limit_mb"}
    assert schema["cache_limit_mb"]["type"] == "int"


async def test_settings_and_history_persist_across_restarts(tmp_path: Path) -> None:
    config = node_config(ephemeral=False, data_dir=str(tmp_path), repeater="off")
    async with open_node(config) as node:
        ui = WebUI(node, WebConfig(http_port=0))
        await node.nursery.start(ui.run_background)
        client = ui.app.test_client()
        assert (await client.put("/api/settings", json={"cache_limit_mb": 123})).status_code == 200
        assert (await client.post("/api/history", json={"rid": RID, "title": "kept"})).status_code == 201
    async with open_node(node_config(ephemeral=False, data_dir=str(tmp_path), repeater="off")) as node:
        ui = WebUI(node, WebConfig(http_port=0))
        await node.nursery.start(ui.run_background)
        client = ui.app.test_client()
        assert (await (await client.get("/api/settings")).get_json())["cache_limit_mb"] == 123
        history = (await (await client.get("/api/history")).get_json())["history"]
        assert [e["title"] for e in history] == ["kept"]


# ---------------------------------------------------------------------------- history


async def test_history_newest_first_views_merge_and_delete(client: TrioClient) -> None:
    first = await (await client.post("/api/history", json={"rid": RID, "title": "one", "kind": "view"})).get_json()
    other = "cd" * 32
    await trio.sleep(0.002)  # play_time is wall-clock milliseconds
    second = await (await client.post("/api/history", json={"rid": other, "title": "two", "kind": "download"})).get_json()
    await trio.sleep(0.002)
    again = await client.post("/api/history", json={"rid": RID, "title": "one", "kind": "view", "position": 42.5})
    assert again.status_code == 201
    assert (await again.get_json())["id"] == first["id"]  # a view of the same rid is updated, not duplicated
    capitals = await client.post("/api/history", json={"rid": RID.upper(), "kind": "view"})
    assert (await capitals.get_json())["id"] == first["id"]  # the same rid, copied in capitals
    history = (await (await client.get("/api/history")).get_json())["history"]
    assert [e["id"] for e in history] == [first["id"], second["id"]]
    assert history[0]["position"] == 42.5
    only_downloads = (await (await client.get("/api/history?kind=download")).get_json())["history"]
    assert [e["id"] for e in only_downloads] == [second["id"]]
    assert (await client.delete(f"/api/history/{second['id']}")).status_code == 200
    assert (await client.delete(f"/api/history/{second['id']}")).status_code == 404
    assert len((await (await client.get("/api/history")).get_json())["history"]) == 1
    assert (await (await client.delete("/api/history")).get_json())["deleted"] == 1


@pytest.mark.parametrize("body", [
    {"rid": "short", "title": "x"}, {"rid": RID, "kind": "stream"}, {"rid": RID, "position": -1},
    {"rid": RID, "extra": 1}, {"title": "no rid"},
])
async def test_bad_history_is_422(client: TrioClient, body: dict[str, object]) -> None:
    response = await client.post("/api/history", json=body)
    assert response.status_code == 422
    assert "key" in await response.get_json()


async def test_bad_history_query(client: TrioClient) -> None:
    assert (await client.get("/api/history?limit=0")).status_code == 422
    assert (await client.get("/api/history?limit=abc")).status_code == 422
    assert (await client.get("/api/history?limit=%C2%B2")).status_code == 422  # '²' is a digit, not a number
    assert (await client.get("/api/history?kind=nope")).status_code == 422


# ---------------------------------------------------------------------------- downloads


async def test_download_errors(client: TrioClient) -> None:
    response = await client.post("/api/downloads", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and (await response.get_json())["error"] == "bad_request"
    response = await client.post("/api/downloads", json={"rid": 5})
    assert response.status_code == 422 and (await response.get_json())["key"] == "rid"
    response = await client.post("/api/downloads", json={"rid": "../../etc/passwd"})
    assert response.status_code == 422  # said as for a rid in a path, not in msgspec's words
    assert (await response.get_json())["message"] == "rid must match ^[0-9a-f]{64}$"
    response = await client.post("/api/downloads", json={"rid": RID})
    assert response.status_code == 404 and (await response.get_json())["key"] == "rid"
    response = await client.post("/api/downloads", json={"rid": RID.upper()})
    assert response.status_code == 404 and RID in (await response.get_json())["message"]
    assert (await client.get("/api/downloads/nope")).status_code == 404
    assert (await client.get("/api/downloads/nope/file")).status_code == 404


async def shared_and_downloaded(client: TrioClient, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Upload a PNG as ``name``, download it through the API: (the item, the download)."""
    body, headers = multipart({}, name, png_bytes())
    item = await (await client.post("/api/files", data=body, headers=headers)).get_json()
    started = await client.post("/api/downloads", json={"rid": item["rid"]})
    assert started.status_code == 202
    dl = await started.get_json()
    with trio.fail_after(10):
        while dl["state"] not in ("completed", "failed"):
            await trio.sleep(0.05)
            dl = await (await client.get(f"/api/downloads/{dl['id']}")).get_json()
    assert dl["state"] == "completed", dl
    return item, dl


@pytest.mark.parametrize(("name", "disposition"), [
    ("mine.png", "filename*=UTF-8''mine.png"), ("日本.png", "filename*=UTF-8''%E6%97%A5%E6%9C%AC.png"), ("été 2024.png", "filename*=UTF-8''%C3%A9t%C3%A9%202024.png")])
async def test_download_of_local_content_exports_it(client: TrioClient, web: WebUI, name: str,
                                                    disposition: str) -> None:
    item, dl = await shared_and_downloaded(client, name)
    assert dl["bytes"] == dl["total"] == item["size"]
    saved = await client.get(dl["file_url"])
    assert saved.status_code == 200
    assert await saved.get_data() == png_bytes()
    assert disposition in saved.headers["Content-Disposition"]
    assert saved.mimetype == item["mime"] == "image/png"


async def test_a_download_is_served_as_the_type_its_content_is(client: TrioClient) -> None:
    # the name says nothing (or the wrong thing): the manifest's type, read from the
    # bytes, is what /api/files says and what the file is served as
    item, dl = await shared_and_downloaded(client, "holiday.bin")
    saved = await client.get(dl["file_url"])
    assert item["mime"] == "image/png" and saved.mimetype == "image/png"
    history = (await (await client.get("/api/history")).get_json())["history"]
    assert history[0]["kind"] == "download" and history[0]["rid"] == item["rid"]


async def test_saving_a_file_again_reuses_its_export_while_it_is_there(
        client: TrioClient, web: WebUI) -> None:
    # every Save wrote another full copy (up to 200 kept, none counted by the cache limit)
    item, dl = await shared_and_downloaded(client, "again.png")
    again = await client.post("/api/downloads", json={"rid": item["rid"]})
    assert again.status_code == 200
    assert (await again.get_json())["id"] == dl["id"]
    exports = [p for p in web.downloads_dir.rglob("*") if p.is_file()]
    assert len(exports) == 1
    # the export was changed or removed meanwhile: a fresh one
    download = web.downloads.get(dl["id"])
    assert download is not None and download.path is not None
    download.path.write_bytes(b"edited by someone")
    fresh = await client.post("/api/downloads", json={"rid": item["rid"]})
    assert fresh.status_code == 202
    assert (await fresh.get_json())["id"] != dl["id"]


async def test_a_downloaded_file_removed_from_disk_is_410_gone(client: TrioClient, web: WebUI) -> None:
    _item, dl = await shared_and_downloaded(client, "gone.png")
    download = web.downloads.get(dl["id"])
    assert download is not None and download.path is not None
    download.path.unlink()
    response = await client.get(dl["file_url"])
    assert response.status_code == 410
    assert (await response.get_json())["error"] == "gone"


@pytest.mark.parametrize(("asked", "first", "last"), [
    ("bytes=0-99", 0, 99), ("bytes=100-", 100, None), ("bytes=-50", -50, None),
    # a last position past the end means "to the end" (RFC 9110 14.1.2); the 206 had said
    # "bytes 0-9999/SIZE", promising bytes that never came
    ("bytes=0-999999", 0, None), ("bytes=100-99999999999999999999", 100, None),
])
async def test_ranges_of_a_downloaded_file_stay_inside_it(client: TrioClient, asked: str, first: int,
                                                          last: int | None) -> None:
    _item, dl = await shared_and_downloaded(client, "ranged.png")
    data = png_bytes()
    size = len(data)
    first = first % size
    last = size - 1 if last is None else last
    response = await client.get(dl["file_url"], headers={"Range": asked})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
    assert int(response.headers["Content-Length"]) == last - first + 1
    assert await response.get_data() == data[first:last + 1]


@pytest.mark.parametrize("asked", ["items=0-9", "bytes=10-5", "garbage", "bytes=0-0,5-9"])
async def test_a_range_we_do_not_serve_gets_the_whole_file(client: TrioClient, asked: str) -> None:
    # RFC 9110 14.2: ignored (another unit MUST be), not 416 — the client got nothing
    _item, dl = await shared_and_downloaded(client, "whole.png")
    response = await client.get(dl["file_url"], headers={"Range": asked})
    assert response.status_code == 200 and await response.get_data() == png_bytes()
    assert response.headers["Accept-Ranges"] == "bytes"
    assert "public" not in response.headers["Cache-Control"]


async def test_conditional_requests_follow_rfc_9110_s_order(client: TrioClient) -> None:
    """§13.2.2: preconditions before Range; a failed If-Match is 412 *without* the file
    (it came whole), If-None-Match beats a Range (304), If-Range compares strongly."""
    _item, dl = await shared_and_downloaded(client, "cond.png")
    data = png_bytes()
    plain = await client.get(dl["file_url"])
    etag, modified = plain.headers["ETag"], plain.headers["Last-Modified"]
    assert not etag.startswith("W/")

    async def get(**headers: str) -> tuple[int, bytes]:
        response = await client.get(dl["file_url"], headers=headers)
        return response.status_code, await response.get_data(as_text=False)

    assert await get(**{"If-Match": '"nope"'}) == (412, b"")
    assert await get(**{"If-Match": '"nope"', "Range": "bytes=0-9"}) == (412, b"")
    assert await get(**{"If-Match": f"W/{etag}"}) == (412, b"")  # strong comparison
    assert await get(**{"If-Match": etag, "Range": "bytes=0-9"}) == (206, data[:10])
    assert await get(**{"If-Match": "*"}) == (200, data)
    assert await get(**{"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}) == (412, b"")
    assert await get(**{"If-Unmodified-Since": modified}) == (200, data)
    assert await get(**{"If-None-Match": etag, "Range": "bytes=0-9"}) == (304, b"")
    assert await get(**{"If-None-Match": f"W/{etag}"}) == (304, b"")  # weak comparison
    assert await get(**{"If-None-Match": '"other"'}) == (200, data)
    assert await get(**{"If-Modified-Since": modified}) == (304, b"")
    assert await get(**{"If-Range": etag, "Range": "bytes=0-9"}) == (206, data[:10])
    assert await get(**{"If-Range": f"W/{etag}", "Range": "bytes=0-9"}) == (200, data)
    assert await get(**{"If-Range": '"old"', "Range": "bytes=0-9"}) == (200, data)
    assert await get(**{"If-Range": modified, "Range": "bytes=0-9"}) == (206, data[:10])
    assert await get(**{"If-Range": "Mon, 01 Jan 2001 00:00:00 GMT", "Range": "bytes=0-9"}) == (200, data)


async def test_a_range_past_the_end_is_416_and_says_the_size(client: TrioClient) -> None:
    _item, dl = await shared_and_downloaded(client, "short.png")
    response = await client.get(dl["file_url"], headers={"Range": "bytes=999999-"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(png_bytes())}"
    assert (await response.get_json())["error"] == "range_not_satisfiable"


# ---------------------------------------------------------------------------- peers, node


async def test_peers_without_peers(client: TrioClient) -> None:
    assert (await (await client.get("/api/peers")).get_json()) == {"peers": []}
    stats = await (await client.get("/api/peers/stats")).get_json()
    assert stats["online"] == 0 and stats["total"] == 0 and stats["nat_type"]
    response = await client.put(f"/api/peers/{RID}/toggle", json={})
    assert response.status_code == 404
    response = await client.put(f"/api/peers/{RID}/toggle", json={"enabled": "maybe"})
    assert response.status_code == 422


async def test_node_status(client: TrioClient, web: WebUI) -> None:
    status = await (await client.get("/api/node")).get_json()
    assert status["id"] == web.node.id and status["state"] == "running"
    assert status["udp"].startswith("127.0.0.1:")


async def test_unknown_routes_and_methods_are_json(client: TrioClient) -> None:
    response = await client.get("/api/does-not-exist")
    assert response.status_code == 404 and (await response.get_json())["error"] == "not_found"
    response = await client.patch("/api/files")
    assert response.status_code == 405 and "message" in await response.get_json()
    # RFC 9110 15.5.6: a 405 MUST say which methods the resource takes
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert response.mimetype == "application/json"


async def test_pages_and_static(client: TrioClient) -> None:
    for path in ("/", "/share", "/search", "/peers", "/history", "/settings", "/search/" + RID):
        response = await client.get(path)
        assert response.status_code == 200
        assert b'type="module"' in await response.get_data()
    page = await client.get("/")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    js = await client.get("/static/js/main.js")
    assert js.status_code == 200 and js.mimetype is not None and "javascript" in js.mimetype
    css = await client.get("/static/css/app.css")
    assert css.status_code == 200 and css.mimetype == "text/css"


async def test_openapi(client: TrioClient, web: WebUI) -> None:
    doc = await (await client.get("/api/openapi.json")).get_json()
    assert doc["openapi"].startswith("3.")
    assert "post" in doc["paths"]["/api/files"] and "put" in doc["paths"]["/api/settings"]
    assert "DownloadRequest" in doc["components"]["schemas"]
    # every API route the app serves is in the document (DELETE /api/downloads/{id} was not)
    served = {(method.lower(), re.sub(r"<(?:\w+:)?\w+>", "{}", rule.rule))
              for rule in web.app.url_map.iter_rules() if rule.rule.startswith("/api/")
              for method in rule.methods or () if method not in ("HEAD", "OPTIONS")}
    documented = {(method, re.sub(r"\{\w+\}", "{}", path))
                  for path, item in doc["paths"].items() for method in item}
    assert served - {("get", "/api/openapi.json")} <= documented, sorted(served - documented)


# ---------------------------------------------------------------------------- access


async def test_token_required_off_loopback() -> None:
    async with open_node(node_config()) as node:
        with pytest.raises(ValueError, match="token"):
            WebUI(node, WebConfig(host="0.0.0.0"))
        ui = WebUI(node, WebConfig(host="0.0.0.0"), token="s3cret-token")
        await node.nursery.start(ui.run_background)
        client = ui.app.test_client()
        assert (await client.get("/api/node")).status_code == 401
        assert (await client.get("/api/node", headers={"Authorization": "Bearer wrong"})).status_code == 401
        assert (await client.get("/api/node", headers={"Authorization": "Bearer s3cret-token"})).status_code == 200
        assert (await client.get("/api/node", headers={"X-P2PKit-Token": "s3cret-token"})).status_code == 200
        page = await client.get("/share?token=s3cret-token")
        assert page.status_code == 302 and page.headers["Location"] == "/share"
        assert "p2pkit_token=s3cret-token" in page.headers["Set-Cookie"]
        assert "HttpOnly" in page.headers["Set-Cookie"]
        assert (await client.get("/api/node")).status_code == 200  # the cookie now carries it


async def test_loopback_refuses_foreign_host_and_cross_origin(client: TrioClient) -> None:
    response = await client.get("/api/node", headers={"Host": "evil.example:3000"})
    assert response.status_code == 403
    response = await client.put("/api/settings", json={"max_connections": 3},
                                headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    ok = await client.put("/api/settings", json={"max_connections": 3},
                          headers={"Origin": "http://localhost"})
    assert ok.status_code == 200


@pytest.mark.parametrize("origin", ["http://[::1", "http://[zz]:80", "http://[::1/]"])
async def test_a_malformed_origin_is_refused_not_an_internal_error(client: TrioClient, origin: str) -> None:
    # urlsplit raised on "http://[::1": a 500 and a traceback in the log, on every unsafe
    # request and on the websocket
    response = await client.put("/api/settings", json={"max_connections": 3}, headers={"Origin": origin})
    assert response.status_code == 403
    assert "Origin" in (await response.get_json())["message"]


def test_a_web_ui_refuses_a_token_no_http_header_can_carry() -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        WebConfig(token="é")


@pytest.mark.parametrize(("host", "status"), [
    ("127.0.0.2:3000", 200), ("127.1.2.3", 200), ("[::1]:3000", 200), ("localhost:3000", 200),
    # `--host 127.0.0.2` was refused its own pages; names that merely look local are not it
    ("127.0.0.1.nip.io", 403), ("localhost.evil.example:3000", 403), ("10.0.0.1:3000", 403),
])
async def test_every_loopback_address_is_this_machine(client: TrioClient, host: str, status: int) -> None:
    assert (await client.get("/api/node", headers={"Host": host})).status_code == status


# ---------------------------------------------------------------------------- websocket


async def test_websocket_pushes_events(client: TrioClient, web: WebUI) -> None:
    async with client.websocket("/ws") as ws:
        hello = json.loads(await ws.receive())
        assert hello["type"] == "hello" and hello["status"]["id"] == web.node.id
        body, headers = multipart({}, "live.png", png_bytes(seed=9))
        assert (await client.post("/api/files", data=body, headers=headers)).status_code == 201
        await client.put("/api/settings", json={"upload_limit_kbps": 99})
        seen: dict[str, dict[str, Any]] = {}
        with trio.fail_after(10):
            while not {"files.changed", "settings.changed"} <= set(seen):
                message = json.loads(await ws.receive())
                seen.setdefault(message["type"], message)
        assert seen["files.changed"]["local"] is True
        assert seen["settings.changed"] == {"type": "settings.changed", "key": "upload_limit_kbps", "value": 99}
        await ws.send(json.dumps({"type": "ping"}))
        with trio.fail_after(10):
            while json.loads(await ws.receive())["type"] != "pong":
                pass


async def test_log_lines_reach_the_ui(client: TrioClient) -> None:
    import logging

    async with client.websocket("/ws") as ws:
        assert json.loads(await ws.receive())["type"] == "hello"
        logging.getLogger("p2pkit.test").warning("a line for the log panel")
        with trio.fail_after(10):
            while True:
                message = json.loads(await ws.receive())
                if message["type"] == "log":
                    break
        assert message["message"] == "a line for the log panel" and message["level"] == "warning"
    logs = (await (await client.get("/api/logs")).get_json())["logs"]
    assert logs[-1]["message"] == "a line for the log panel"


async def test_odd_events_do_not_break_the_ui(client: TrioClient, web: WebUI) -> None:
    from p2pkit.events import GenericEvent

    async with client.websocket("/ws") as ws:
        assert json.loads(await ws.receive())["type"] == "hello"
        web.node.emit(GenericEvent(kind="download.progress", data={"rid": object(), "peers": "many"}))
        web.node.emit(GenericEvent(kind="settings.changed", data={"key": 5, "value": b"\xff"}))
        web.node.emit(GenericEvent(kind="store.completed", data={}))
        await client.put("/api/settings", json={"max_connections": 11})
        with trio.fail_after(10):
            while True:
                message = json.loads(await ws.receive())
                if message["type"] == "settings.changed" and message["key"] == "max_connections":
                    break
    assert (await client.get("/api/node")).status_code == 200


def test_a_damaged_history_database_is_a_clear_error(tmp_path: Path) -> None:
    from p2pkit.webui.history import History

    from p2pkit import ConfigError

    damaged = tmp_path / "webui.sqlite"
    damaged.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match=r"webui\.sqlite"):
        History(damaged)


async def test_a_request_while_the_node_stops_is_a_503_not_a_500(web: WebUI, client: TrioClient) -> None:
    """A page's refresh during the node's leave-taking raised NodeStateError: a 500 and
    a traceback at every stop with a page open."""
    from p2pkit.node import NodeState

    web.node.state = NodeState.STOPPING
    try:
        response = await client.get("/api/network/files")
    finally:
        web.node.state = NodeState.RUNNING
    assert response.status_code == 503
    assert "stopping" in (await response.get_json())["message"]


async def test_the_log_panel_names_a_line_s_source_once() -> None:
    import logging

    from p2pkit.webui.hub import Hub, LogRelay

    hub = Hub()
    relay = LogRelay(hub, trio.lowlevel.current_trio_token())
    relay.emit(logging.LogRecord("p2pkit.store", logging.INFO, __file__, 1,
                                 "store: evicted %s", ("x",), None))
    with trio.fail_after(5):  # delivered through the trio token, on a later scheduler pass
        while not hub.recent_logs:  # noqa: ASYNC110
            await trio.sleep(0.01)
    (line,) = hub.recent_logs
    assert line["message"] == "evicted x" and line["source"] == "p2pkit.store"


async def test_the_background_tasks_end_when_the_node_stops(autojump_clock: trio.testing.MockClock) -> None:
    # run outside the node's block, the event pump ended with the node's events, but the
    # status ticks kept the background running for ever
    with trio.fail_after(3600):  # virtual time: a loop that never ends fails, not hangs
        async with trio.open_nursery() as outside, open_node(node_config()) as node:
            ui = WebUI(node, WebConfig(http_port=0))
            await outside.start(ui.run_background)


# ---------------------------------------------------------------------------- a full disk


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"), OSError(errno.EDQUOT, "Disk quota exceeded"),
    sqlite_full_error()])
async def test_an_upload_that_finds_the_disk_full_is_507_and_leaves_nothing(
        client: TrioClient, web: WebUI, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    # was {"error": "internal_error", "message": "internal error: OSError"} (500)
    async def share(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(web.node, "share", share)
    body, headers = multipart({}, "full.png", png_bytes())
    response = await client.post("/api/files", data=body, headers=headers)
    assert response.status_code == 507
    answer = await response.get_json()
    assert answer["error"] == "insufficient_storage"
    assert "disk holding this node's data is full" in answer["message"]
    assert "partial upload was removed" in answer["message"]
    assert list(web.uploads_dir.iterdir()) == []


def test_an_upload_onto_a_full_disk_in_a_real_process(tmp_path: Path) -> None:
    # the reviewer's node, on a file system with no room left for the upload: RLIMIT_FSIZE
    # makes its every write past 1 MiB fail (EFBIG) as a full disk would
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    launcher = ("import resource, runpy, signal, sys\n"
                "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
                "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
                "sys.argv = ['p2pkit', *sys.argv[1:]]\n"
                "runpy.run_module('p2pkit.cli', run_name='__main__')\n")
    out = data_dir / "stdout.txt"
    with out.open("wb") as stdout, (data_dir / "stderr.txt").open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", launcher, "web", "--port", "0", "--http-port", "0",
             "--udp-host", "127.0.0.1", "--data-dir", str(data_dir), "--repeater", "off"],
            stdout=stdout, stderr=stderr, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while not (match := re.search(r"web UI: (\S+)", out.read_text(errors="replace"))):
            assert proc.poll() is None and time.monotonic() < deadline, (data_dir / "stderr.txt").read_text()
            time.sleep(0.1)
        base = match.group(1).split("?", 1)[0].rstrip("/")
        body, headers = multipart({}, "big.png", png_bytes(1024, 1024))
        assert len(body) > 2 << 20
        response = httpx.post(f"{base}/api/files", content=body, headers=headers, timeout=30)
        assert response.status_code == 507, response.text
        assert "disk holding this node's data is full" in response.json()["message"]
        assert list((data_dir / "webui" / "uploads").iterdir()) == []  # the partial upload is gone
        assert httpx.get(f"{base}/api/files", timeout=10).json()["files"] == []  # and it is still up
    finally:
        proc.terminate()
        proc.wait(timeout=15)


async def test_history_on_a_full_disk_is_507_not_a_500(client: TrioClient, web: WebUI) -> None:
    web.history._db = FullDisk(web.history._db)  # type: ignore[assignment]
    response = await client.post("/api/history", json={"rid": RID, "title": "lost"})
    assert response.status_code == 507
    assert "disk holding this node's database is full" in (await response.get_json())["message"]
    assert (await client.get("/api/history")).status_code == 200
