"""Content ids: one definition the kernel, the plugins and the web UI share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pkit.rids import is_rid, parse_rid

RID = "0123456789abcdef" * 4


def test_a_rid_is_64_lowercase_hex_digits() -> None:
    assert is_rid(RID)
    assert not is_rid(RID.upper())  # the network's spelling is lowercase
    assert not is_rid(RID[:-1]) and not is_rid(RID + "0") and not is_rid("g" * 64)
    assert not is_rid(RID + "\n")  # fullmatch: no trailing newline slips through `$`
    assert not is_rid(None) and not is_rid(b"ab" * 32)


def test_parse_takes_a_rid_as_a_person_copies_it() -> None:
    assert parse_rid(f"  {RID.upper()}\n") == RID
    with pytest.raises(ValueError, match="not a content id"):
        parse_rid("nope")
    with pytest.raises(ValueError, match="not a content id"):
        parse_rid("٠" * 64)  # Arabic-Indic zeros are digits to str.isdigit, not hex


@given(st.text(max_size=80))
def test_parse_accepts_exactly_what_lowers_to_a_rid(text: str) -> None:
    try:
        rid = parse_rid(text)
    except ValueError:
        assert not is_rid(text.strip().lower())
    else:
        assert is_rid(rid) and rid == text.strip().lower()
