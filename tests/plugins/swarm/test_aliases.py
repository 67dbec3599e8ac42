"""Numbered rids on a session's control channel (plugins/swarm/_aliases.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from p2pkit.plugins.swarm import _messages as msg
from p2pkit.plugins.swarm._aliases import MAX_ALIASES, RidAliases

from p2pkit._exceptions import RemoteProtocolError

RID_A = bytes(range(32))
RID_B = bytes(range(100, 132))


def carry(sender: RidAliases, receiver: RidAliases, m: msg.Message) -> tuple[int, msg.Message]:
    """Bytes on the wire and the message the receiver decodes."""
    data = sender.encode(m)
    return len(data), msg.decode(receiver.expand(data))


def test_a_rid_named_once_travels_as_a_number_afterwards() -> None:
    ours, theirs = RidAliases(), RidAliases()
    sent: list[msg.Message] = [msg.Bitfield(RID_A, b"\xf0"), msg.Have(RID_A, 3), msg.Bitfield(RID_B, b"\x80"),
            msg.Have(RID_B, 1), msg.Request(RID_A, 1, 0, 16384), msg.Blocks(RID_B, [(2, b"\xc0")])]
    sizes = []
    for m in sent:
        size, got = carry(ours, theirs, m)
        assert got == m
        sizes.append(size)
    assert sizes[1] == len(msg.encode(sent[1])) - 33  # 34 bytes of rid became one
    assert sizes[0] == len(msg.encode(sent[0]))  # the first mention is whole
    assert theirs.heard == [RID_A, RID_B]


def test_a_piece_carries_its_rid_whole_and_numbers_nothing() -> None:
    """Pieces go on the bulk channel, ordered apart from the control channel."""
    ours, theirs = RidAliases(), RidAliases()
    piece = msg.Piece(RID_A, 0, 0, b"data")
    assert ours.encode(piece) == msg.encode(piece)
    assert carry(ours, theirs, piece)[1] == piece
    assert theirs.heard == [] and ours.sent == {}
    have = msg.Have(RID_A, 0)
    assert ours.encode(have) == msg.encode(have)  # still the rid's first control mention


def test_a_number_never_given_drops_the_peer() -> None:
    theirs = RidAliases()
    forged = b"\x93\xa2hv\x00\x01"  # Have of rid #0 before any rid was named
    with pytest.raises(RemoteProtocolError):
        theirs.expand(forged)
    theirs.expand(msg.encode(msg.Have(RID_A, 1)))
    assert msg.decode(theirs.expand(forged)) == msg.Have(RID_A, 1)
    with pytest.raises(RemoteProtocolError):
        theirs.expand(b"\x93\xa2hv\xcc\x80\x01")  # #128
    with pytest.raises(RemoteProtocolError):
        theirs.expand(b"\x94\xa2pc\x00\x00\x00\xc4\x01x")  # a Piece may not use a number


def test_past_the_table_rids_travel_whole() -> None:
    ours, theirs = RidAliases(), RidAliases()
    rids = [i.to_bytes(32, "big") for i in range(MAX_ALIASES + 3)]
    for rid in rids:
        carry(ours, theirs, msg.Interested(rid))
    for rid in rids[-3:] + rids[:1] + rids[300:301]:
        size, got = carry(ours, theirs, msg.Interested(rid))
        assert got == msg.Interested(rid)
        whole = rid in rids[-3:]
        assert size == len(msg.encode(msg.Interested(rid))) - (0 if whole else 31 if rid == rids[300] else 33)


messages = st.one_of(
    st.builds(msg.Have, st.sampled_from([RID_A, RID_B]), st.integers(0, 1000)),
    st.builds(msg.Interested, st.sampled_from([RID_A, RID_B])),
    st.builds(msg.Piece, st.sampled_from([RID_A, RID_B]), st.integers(0, 10),
              st.integers(0, 100), st.binary(min_size=1, max_size=8)),
    st.builds(msg.Request, st.sampled_from([RID_A, RID_B]), st.integers(0, 10),
              st.integers(0, 100), st.integers(1, 16384)),
)


@given(st.lists(messages, max_size=20))
def test_any_sequence_arrives_as_it_was_sent(sequence: list[msg.Message]) -> None:
    ours, theirs = RidAliases(), RidAliases()
    for m in sequence:
        assert carry(ours, theirs, m)[1] == m


@given(st.binary(max_size=80))
def test_garbage_is_refused_cleanly(data: bytes) -> None:
    theirs = RidAliases()
    theirs.expand(msg.encode(msg.Have(RID_A, 1)))
    try:
        msg.decode(theirs.expand(data))
    except RemoteProtocolError:
        pass
