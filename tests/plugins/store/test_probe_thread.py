"""Where probing runs: a real node (with a data directory) decodes thumbnails in a worker
thread, off its trio thread; an ephemeral node (simulator, tests) stays on it."""

from __future__ import annotations

import threading
from pathlib import Path

from p2pkit import open_node

from .test_provider import config


async def test_a_real_node_probes_in_a_worker_thread(tmp_path: Path, media: dict[str, Path],
                                                     probe_threads: list[int]) -> None:
    async with open_node(config(tmp_path / "data")) as node:
        assert node.store.probe_in_thread
        manifest = await node.share(media["jpeg"])
    assert manifest.thumbnail is not None and (manifest.width, manifest.height) == (320, 240)
    assert len(probe_threads) == 1 and probe_threads[0] != threading.get_ident()


async def test_an_ephemeral_node_probes_on_its_own_thread(media: dict[str, Path],
                                                          probe_threads: list[int]) -> None:
    async with open_node(config()) as node:
        assert not node.store.probe_in_thread
        manifest = await node.share(media["jpeg"])
    assert manifest.thumbnail is not None
    assert probe_threads == [threading.get_ident()]
