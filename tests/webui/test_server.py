"""The app behind a real hypercorn (trio worker) on loopback, inside the node's nursery,
talked to with httpx over real TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio
from p2pkit.webui import WebConfig, WebUI

from p2pkit.node import open_node

from .conftest import node_config, png_bytes


@pytest.fixture
async def served() -> AsyncIterator[tuple[WebUI, str]]:
    async with open_node(node_config()) as node:
        ui = WebUI(node, WebConfig(http_port=0, max_upload_mb=1))
        binds = await node.nursery.start(ui.serve)
        yield ui, binds[0]


async def test_real_server_pages_and_upload(served: tuple[WebUI, str]) -> None:
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


async def test_real_server_streamed_upload_over_the_limit_is_413(served: tuple[WebUI, str]) -> None:
    """A chunked body (no Content-Length to refuse up front), written over a raw socket:
    the limit is enforced while streaming and the answer is a JSON 413."""
    ui, base = served
    host, port = base.removeprefix("http://").rsplit(":", 1)
    boundary = "streamBoundary"
    head = (f"POST /api/files HTTP/1.1\r\nHost: {host}:{port}\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode()
    first = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n\r\n"
             ).encode() + png_bytes()

    def chunk(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    stream = await trio.open_tcp_stream(host, int(port))
    reply = b""
    with trio.fail_after(20):
        async with stream:
            await stream.send_all(head + chunk(first))
            try:
                for _ in range(40):  # 2.5 MiB > 1 MiB limit; the server may stop reading first
                    await stream.send_all(chunk(b"\x00" * 65536))
                await stream.send_all(b"0\r\n\r\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                data = await stream.receive_some(65536)
                if not data:
                    break
                reply += data
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"payload_too_large"' in reply
    assert list(ui.uploads_dir.iterdir()) == []
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert (await http.get("/api/node")).status_code == 200  # the server is fine


async def test_real_server_non_media_gets_a_clean_415(served: tuple[WebUI, str]) -> None:
    _, base = served
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        files = {"file": ("doc.pdf", b"%PDF-1.4\n" + b"x" * 300_000, "application/pdf")}
        response = await http.post("/api/files", files=files)
        assert response.status_code == 415
        assert "not an audio, video or image" in response.json()["message"]


async def test_real_server_refuses_large_bodies_outside_uploads(served: tuple[WebUI, str]) -> None:
    _, base = served
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        response = await http.request("GET", "/api/node", content=b"x" * 300_000)
        assert response.status_code == 413
        response = await http.put("/api/settings", content=b"{" + b" " * 300_000 + b"}")
        assert response.status_code == 413


@pytest.mark.parametrize(("head", "body"), [
    # refused before its body is read: a foreign Origin, not multipart, no boundary
    ("PUT /api/settings HTTP/1.1\r\nOrigin: http://evil.example\r\nContent-Type: application/json",
     b'{"cache_limit_mb": 100}'),
    ("POST /api/files HTTP/1.1\r\nContent-Type: application/json", b'{"file": 1}'),
    ("POST /api/files HTTP/1.1\r\nContent-Type: multipart/form-data", b"--x\r\n"),
])
async def test_a_request_refused_before_its_body_does_not_hang_the_connection(
        served: tuple[WebUI, str], head: str, body: bytes) -> None:
    # The body came after the headers (as browsers and httpx send it); the refusal was
    # ready before it, and the next request on the kept-alive connection got no answer.
    _ui, base = served
    host, port = base.removeprefix("http://").rsplit(":", 1)
    head = head.replace(" HTTP/1.1\r\n", f" HTTP/1.1\r\nHost: {host}:{port}\r\n", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        with trio.fail_after(20):
            await stream.send_all(f"{head}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            await trio.sleep(0.05)
            await stream.send_all(body)
            reply = await read_response(stream)
            assert reply.startswith(b"HTTP/1.1 4"), reply[:80]
            await stream.send_all(f"GET /api/node HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            answer = await read_response(stream)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]


async def read_response(stream: trio.SocketStream) -> bytes:
    """One whole HTTP/1.1 response with a Content-Length (b"" if the server closed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += await stream.receive_some(65536)
    return head + b"\r\n\r\n" + body
