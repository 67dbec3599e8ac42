"""POST /api/files: streamed uploads, size and type limits, hostile file names."""

from __future__ import annotations

from pathlib import Path

import pytest
from p2pkit.webui import WebUI
from p2pkit.webui.uploads import MAX_NAME_BYTES, MAX_UNPARSED, clean_name
from quart import Response
from quart_trio.testing import TrioClient
from werkzeug.sansio.multipart import MultipartDecoder

from .conftest import multipart, png_bytes


async def upload(client: TrioClient, name: str, content: bytes, **fields: str) -> Response:
    body, headers = multipart(fields, name, content)
    return await client.post("/api/files", data=body, headers=headers)


def upload_dirs(web: WebUI) -> list[Path]:
    return [p for p in web.uploads_dir.iterdir()]


async def test_upload_lists_serves_thumbnail_and_removes(client: TrioClient, web: WebUI) -> None:
    response = await upload(client, "holiday.png", png_bytes(), title="Holiday", description="at sea")
    assert response.status_code == 201
    item = await response.get_json()
    assert item["name"] == "holiday.png"
    assert item["category"] == "image"
    assert item["size"] == len(png_bytes())
    assert item["title"] == "Holiday" and item["description"] == "at sea"
    assert len(item["rid"]) == 64

    listed = (await (await client.get("/api/files")).get_json())["files"]
    assert [f["rid"] for f in listed] == [item["rid"]]

    thumb = await client.get(item["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert (await thumb.get_data(as_text=False)).startswith(b"\xff\xd8")

    video = await (await client.get(f"/api/videos/{item['rid']}")).get_json()
    assert video["rid"] == item["rid"] and video["file_size"] == item["size"]
    # a rid copied in capitals (as `p2pkit get` takes it) names the same file
    assert (await (await client.get(f"/api/videos/{item['rid'].upper()}")).get_json()) == video
    assert (await client.get(f"/api/videos/{item['rid'].upper()}/thumbnail")).status_code == 200
    assert video["title"] == "Holiday" and video["description"] == "at sea"

    found = await (await client.get("/api/search?q=holi")).get_json()
    assert [r["rid"] for r in found["results"]] == [item["rid"]]
    assert (await (await client.get("/api/search?q=nothing-like-it")).get_json())["count"] == 0

    response = await client.delete(f"/api/files/{item['rid'].upper()}")
    assert response.status_code == 200 and (await response.get_json())["rid"] == item["rid"]
    assert (await (await client.get("/api/files")).get_json())["files"] == []
    assert upload_dirs(web) == []  # the uploaded bytes are gone with the share
    again = await client.delete(f"/api/files/{item['rid']}")
    assert again.status_code == 404
    assert (await again.get_json())["message"]


async def test_same_content_twice_keeps_one_copy(client: TrioClient, web: WebUI) -> None:
    first = await (await upload(client, "a.png", png_bytes())).get_json()
    second = await (await upload(client, "a.png", png_bytes())).get_json()
    assert first["rid"] == second["rid"]
    assert len(upload_dirs(web)) == 1


async def test_non_media_is_415_and_leaves_nothing(client: TrioClient, web: WebUI) -> None:
    response = await upload(client, "notes.png", b"just some text, not an image\n" * 200)
    assert response.status_code == 415
    body = await response.get_json()
    assert body["error"] == "unsupported_media_type" and "not an audio" in body["message"]
    assert body["message"].count("not an audio") == 1  # it was said twice, one inside the other
    assert upload_dirs(web) == []
    assert web.node.store.items() == []


async def test_short_non_media_is_415(client: TrioClient) -> None:
    response = await upload(client, "x.mp4", b"MZ\x90\x00")
    assert response.status_code == 415


async def test_oversized_is_413(client: TrioClient, web: WebUI) -> None:
    big = png_bytes() + b"\x00" * (3 * 1024 * 1024)  # limit in the fixture: 2 MiB
    response = await upload(client, "big.png", big)
    assert response.status_code == 413
    assert (await response.get_json())["error"] == "payload_too_large"
    assert upload_dirs(web) == []


@pytest.mark.parametrize(("client_name", "expected"), [
    ("../../etc/passwd.png", "passwd.png"),
    ("..\\..\\windows\\system32\\evil.png", "evil.png"),
    ("/abs/path/pic.png", "pic.png"),
    ("nul\x00byte.png", "nulbyte.png"),
    ("..", "upload"),
    (".hidden.png", "hidden.png"),
    ("tab\tand\nnewline.png", "tabandnewline.png"),
])
def test_clean_name(client_name: str, expected: str) -> None:
    assert clean_name(client_name) == expected


def test_clean_name_bounds_long_names() -> None:
    name = clean_name("é" * 5000 + ".png")
    assert name.endswith(".png") and len(name.encode()) <= MAX_NAME_BYTES + 5
    assert "/" not in name


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "a\x00b.png", "x" * 5000 + ".png", "../"])
async def test_hostile_names_never_become_paths(client: TrioClient, web: WebUI, hostile: str) -> None:
    response = await upload(client, hostile, png_bytes(seed=len(hostile)))
    assert response.status_code == 201, await response.get_json()
    item = await response.get_json()
    assert "/" not in item["name"] and "\x00" not in item["name"] and ".." not in item["name"]
    assert len(item["name"].encode()) <= 255
    [directory] = upload_dirs(web)
    [stored] = list(directory.iterdir())
    assert stored.parent.resolve() == directory.resolve()
    assert web.uploads_dir.resolve() in stored.resolve().parents


async def test_missing_file_part_is_422(client: TrioClient) -> None:
    body, headers = multipart({"title": "no file"}, None, b"")
    response = await client.post("/api/files", data=body, headers=headers)
    assert response.status_code == 422
    assert (await response.get_json())["key"] == "file"


async def test_empty_file_is_400(client: TrioClient) -> None:
    response = await upload(client, "empty.png", b"")
    assert response.status_code == 400


async def test_not_multipart_is_415(client: TrioClient) -> None:
    response = await client.post("/api/files", json={"file": "x"})
    assert response.status_code == 415


async def test_malformed_multipart_is_400(client: TrioClient) -> None:
    headers = {"Content-Type": "multipart/form-data; boundary=abc"}
    response = await client.post("/api/files", data=b"--abc\r\nno headers end here", headers=headers)
    assert response.status_code == 400
    response = await client.post("/api/files", data=b"x", headers={"Content-Type": "multipart/form-data"})
    assert response.status_code == 400


async def test_a_body_that_never_shows_a_boundary_is_not_held_in_memory(
        client: TrioClient, web: WebUI, monkeypatch: pytest.MonkeyPatch) -> None:
    # the decoder kept an endless preamble whole: 60 MB of it took 60 MiB per request
    held: list[int] = []
    receive = MultipartDecoder.receive_data

    def spy(self: MultipartDecoder, data: bytes | None) -> None:
        receive(self, data)
        held.append(len(self.buffer))

    monkeypatch.setattr(MultipartDecoder, "receive_data", spy)
    headers = {"Content-Type": "multipart/form-data; boundary=zz"}
    for body in (b"x" * (2 * MAX_UNPARSED),  # a preamble without end (under the 2 MB limit + 1 MiB)
                 b"--zz\r\n" + b"X-Long: " + b"h" * (2 * MAX_UNPARSED)):  # part headers without end
        response = await client.post("/api/files", data=body, headers=headers)
        assert response.status_code == 400
        assert "without a part boundary" in (await response.get_json())["message"]
    assert max(held) <= MAX_UNPARSED and upload_dirs(web) == []


async def test_title_too_long_is_422(client: TrioClient) -> None:
    response = await upload(client, "p.png", png_bytes(), title="t" * 5000)
    assert response.status_code == 422
    assert (await response.get_json())["key"] == "title"


async def test_unknown_rid_and_bad_rid(client: TrioClient) -> None:
    assert (await client.delete("/api/files/" + "a" * 64)).status_code == 404
    assert (await client.delete("/api/files/..%2F..%2Fetc")).status_code == 404  # no such route
    # not a rid at all: 422, as for /api/videos/<rid> (it was a 404 here alone)
    assert (await client.delete("/api/files/xyz")).status_code == 422
    assert (await client.get("/api/videos/" + "b" * 64)).status_code == 404
    response = await client.get("/api/videos/not-a-rid")
    assert response.status_code == 422 and (await response.get_json())["key"] == "rid"
    assert (await client.get("/api/videos/" + "c" * 64 + "/thumbnail")).status_code == 404
