"""The example in docs/architecture.md runs as written (an embedder's first lines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_embedding_example_runs_and_prints_the_node(capsys: pytest.CaptureFixture[str]) -> None:
    (block,) = BLOCKS
    exec(compile(block, f"{DOC.name}[0]", "exec"), {"__name__": "__doc_example__"})
    node_id, *_ = capsys.readouterr().out.split()
    assert len(node_id) == 64 and int(node_id, 16) >= 0
