"""Fixtures: a real node (ephemeral, real UDP on loopback) with its web UI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pytest
import trio
from p2pkit.webui import WebConfig, WebUI
from quart_trio.testing import TrioClient

from p2pkit.config import NodeConfig
from p2pkit.node import open_node


def node_config(**node: object) -> NodeConfig:
    return NodeConfig.from_mapping({"node": {"host": "127.0.0.1", "port": 0, "ephemeral": True, **node}})


@pytest.fixture
async def web() -> AsyncIterator[WebUI]:
    async with open_node(node_config()) as node:
        ui = WebUI(node, WebConfig(http_port=0, max_upload_mb=2))
        await node.nursery.start(ui.run_background)
        yield ui


@pytest.fixture
def client(web: WebUI) -> TrioClient:
    test_client = web.app.test_client()
    # typed as quart's protocol, whose open() wants json=; a QuartTrio app makes a TrioClient
    assert isinstance(test_client, TrioClient)
    return test_client


def png_bytes(width: int = 64, height: int = 48, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def multipart(fields: dict[str, str], file_name: str | None, content: bytes,
              boundary: str = "p2pkitBoundary1234") -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body built by hand, so tests can send what browsers would not."""
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
                     + value.encode() + b"\r\n")
    if file_name is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode("utf-8", "surrogateescape")
            + content + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


T = TypeVar("T")


async def wait_for(predicate: Callable[[], Awaitable[T]], limit: float = 10.0, interval: float = 0.05) -> T:
    with trio.fail_after(limit):
        while True:
            value = await predicate()
            if value:
                return value
            await trio.sleep(interval)


__all__ = ["Path", "multipart", "node_config", "png_bytes", "wait_for"]
