"""The examples in docs/plugins/rudp.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "rudp.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_doc_has_examples() -> None:
    assert len(BLOCKS) >= 4


def test_doc_examples_run_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    for index, block in enumerate(BLOCKS):  # later blocks use names from earlier ones
        exec(compile(block, f"{DOC.name}[{index}]", "exec"), namespace)
    out = capsys.readouterr().out
    assert "bbr" in out and "closed: closed" in out


def test_documented_stats_keys_are_the_real_ones() -> None:
    from p2pkit.plugins.rudp.config import RudpConfig
    from p2pkit.plugins.rudp.congestion import congestion_factory
    from p2pkit.plugins.rudp.connection import Connection

    conn = Connection(RudpConfig(), local_cid=1, remote=("127.0.0.1", 1), isn=0,
                      cc_factory=congestion_factory("default"), now=0.0, initiator=True)
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Stats", 1)[1].split("##", 1)[0]
    documented = set(re.findall(r"`([a-z_A-Z]+)`", section))
    assert set(conn.stats(0.0)) <= documented
