"""Hostile input, generated: file names and multipart bodies never crash the upload path
(a clean 4xx, never a 500) and never escape the upload directory."""

from __future__ import annotations

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p2pkit.webui import WebConfig, WebUI
from p2pkit.webui.uploads import MAX_NAME_BYTES, clean_name

from p2pkit.node import open_node

from .conftest import multipart, node_config, png_bytes


@given(st.text(max_size=600))
def test_clean_name_is_always_a_plain_name(name: str) -> None:
    cleaned = clean_name(name)
    assert cleaned and cleaned not in (".", "..")
    assert not {"/", "\\", "\x00"} & set(cleaned)
    assert all(ch.isprintable() for ch in cleaned)
    assert len(cleaned.encode()) <= MAX_NAME_BYTES + 17


def _bodies() -> st.SearchStrategy[tuple[bytes, dict[str, str]]]:
    raw = st.tuples(st.binary(max_size=3000), st.just({"Content-Type": "multipart/form-data; boundary=xyz"}))
    mangled = st.builds(
        lambda name, cut, junk: (lambda b: (b[0][:cut] + junk, b[1]))(multipart({"title": "t"}, name, png_bytes())),
        st.text(max_size=80).filter(lambda s: '"' not in s and "\r" not in s and "\n" not in s),
        st.integers(0, 400), st.binary(max_size=200))
    return st.one_of(raw, mangled)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_bodies(), min_size=1, max_size=8))
def test_multipart_garbage_gets_a_clean_answer(bodies: list[tuple[bytes, dict[str, str]]]) -> None:
    async def run() -> None:
        async with open_node(node_config()) as node:
            ui = WebUI(node, WebConfig(http_port=0, max_upload_mb=1))
            await node.nursery.start(ui.run_background)
            client = ui.app.test_client()
            for body, headers in bodies:
                response = await client.post("/api/files", data=body, headers=headers)
                assert response.status_code in (201, 400, 413, 415, 422), response.status_code
                assert "message" in await response.get_json() or response.status_code == 201
            for directory in ui.uploads_dir.iterdir():
                for path in directory.iterdir():
                    assert path.resolve().parent == directory.resolve()
            node.nursery.cancel_scope.cancel()

    trio.run(run)
