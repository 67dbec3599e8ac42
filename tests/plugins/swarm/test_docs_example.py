"""The example of docs/plugins/swarm.md, run for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from docs.examples.swarm_download import main

from .test_swarm_nodes import _transport_offered

pytestmark = pytest.mark.skipif(not _transport_offered(),
                                reason="no transport plugin (rudp) is registered yet")


async def test_docs_example_downloads_identical_copies(tmp_path: Path) -> None:
    digests = await main(tmp_path)
    assert set(digests) == {"a", "b", "original"}
    assert len(set(digests.values())) == 1
