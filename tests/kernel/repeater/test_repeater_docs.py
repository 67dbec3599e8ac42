"""docs/repeater.md: the runnable example runs, and the documented fields are the node's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[3] / "docs" / "repeater.md"


def test_runnable_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- runnable -->\n```python\n(.*?)```", text, re.S)
    assert match, "docs/repeater.md lost its runnable example"
    exec(compile(match.group(1), str(DOC), "exec"), {"__name__": "__doc_example__"})
    assert capsys.readouterr().out == "demo.speed is now 2.5\n"


def test_documented_frame_bytes_match_the_encoder() -> None:
    from p2pkit.fields import FieldType
    from p2pkit.repeater.protocol import FuncType, encode_frame, encode_value

    text = DOC.read_text(encoding="utf-8")
    request = encode_frame(FuncType.GET, "peer.count")
    reply = encode_frame(FuncType.GET, "peer.count", encode_value(FieldType.INT, 3))
    assert "request  01 70656572 2e636f75 6e74 00×22 00000000" in text
    assert request == bytes.fromhex("01" "70656572" "2e636f75" "6e74" + "00" * 22 + "00000000")
    assert reply == request[:33] + bytes.fromhex("00000008" "0000000000000003")
