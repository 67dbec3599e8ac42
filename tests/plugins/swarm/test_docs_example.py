"""The example of docs/plugins/swarm.md, run for real."""

from __future__ import annotations

from pathlib import Path

from docs.examples.swarm_download import main


async def test_docs_example_downloads_identical_copies(tmp_path: Path) -> None:
    digests = await main(tmp_path)
    assert set(digests) == {"a", "b", "original"}
    assert len(set(digests.values())) == 1
