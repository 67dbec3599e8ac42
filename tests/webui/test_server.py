"""The app behind a real hypercorn (trio worker) on loopback, inside the node's nursery,
talked to with httpx over real TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from p2pkit.webui import WebConfig, WebUI

from p2pkit.node import open_node

from .conftest import node_config, png_bytes


@pytest.fixture
async def served() -> AsyncIterator[tuple[WebUI, str]]:
    async with open_node(node_config()) as node:
        ui = WebUI(node, WebConfig(http_port=0, max_upload_mb=1))
        binds = await node.nursery.start(ui.serve)
        yield ui, binds[0]


async def test_real_server_pages_and_upload(served) -> None:
    ui, base = served
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        page = await http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert ui.node.id in page.text
        files = {"file": ("real.png", png_bytes(), "image/png")}
        response = await http.post("/api/files", files=files, data={"title": "over TCP"})
        assert response.status_code == 201, response.text
        assert response.json()["title"] == "over TCP"
        assert (await http.get("/api/files")).json()["files"][0]["name"] == "real.png"


async def test_real_server_streamed_upload_over_the_limit_is_413(served) -> None:
    ui, base = served
    boundary = "streamBoundary"

    async def body() -> AsyncIterator[bytes]:  # chunked: no Content-Length to refuse early
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n\r\n").encode()
        yield png_bytes()
        for _ in range(40):  # 2.5 MiB > 1 MiB limit
            yield b"\x00" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response = await http.post("/api/files", content=body(),
                                   headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert response.status_code == 413
        assert response.json()["error"] == "payload_too_large"
        assert list(ui.uploads_dir.iterdir()) == []
        assert (await http.get("/api/node")).status_code == 200  # the server is fine


async def test_real_server_non_media_gets_a_clean_415(served) -> None:
    _, base = served
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        files = {"file": ("doc.pdf", b"%PDF-1.4\n" + b"x" * 300_000, "application/pdf")}
        response = await http.post("/api/files", files=files)
        assert response.status_code == 415
        assert "not an audio, video or image" in response.json()["message"]


async def test_real_server_refuses_large_bodies_outside_uploads(served) -> None:
    _, base = served
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response = await http.request("GET", "/api/node", content=b"x" * 300_000)
        assert response.status_code == 413
        response = await http.put("/api/settings", content=b"{" + b" " * 300_000 + b"}")
        assert response.status_code == 413
