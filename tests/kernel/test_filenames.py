from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pkit.filenames import MAX_NAME_BYTES, name_problem, plain_name


@given(st.text(max_size=400))
def test_a_plain_name_is_always_one_a_peer_accepts(name: str) -> None:
    assert name_problem(plain_name(name)) is None


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", ".bashrc", "a\x1b[2J.png",
                                  "a\nb", "a\u2028b", "clip\u202egpj.exe", "x" * (MAX_NAME_BYTES + 1)])
def test_names_a_peer_must_not_send(name: str) -> None:
    assert name_problem(name) is not None


@pytest.mark.parametrize("name", ["holiday.mp4", "Résumé – 2026.wav", "日本語.png", "x" * MAX_NAME_BYTES])
def test_names_any_peer_may_send(name: str) -> None:
    assert name_problem(name) is None and plain_name(name) == name
