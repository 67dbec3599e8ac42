"""``make demo`` in check mode: three real node processes with UIs, each sharing a sample
file the demo generated, and every node sees all three."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from p2pkit.webui.demo import make_image, make_tone, make_video


def test_demo_media_are_real_media(tmp_path: Path) -> None:
    from p2pkit.plugins.store import sniff

    expected = {"video": make_video(tmp_path), "image": make_image(tmp_path), "audio": make_tone(tmp_path)}
    for category, path in expected.items():
        assert sniff(path.read_bytes()[:4096], path.name).category == category


@pytest.mark.slow
def test_demo_check(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "p2pkit.webui.demo", "--http-port", "0", "--udp-port", "0",
         "--dir", str(tmp_path), "--check"],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "every node sees all three files" in result.stdout
    assert result.stdout.count("http://127.0.0.1:") == 3


async def test_embedding_example_runs() -> None:
    from docs.examples.webui_embed import main

    item = await main()
    assert item["category"] == "image" and item["title"] == "A blue square"
