"""A piece put together from blocks that are checked on arrival (relaying's safety)."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st
from p2pkit.plugins.store import LEAF_SIZE, leaf_hashes, leaves_root
from p2pkit.plugins.swarm._assembly import (
    Assembly,
    bytes_to_mask,
    leaf_bits,
    leaf_range,
    mask_to_bytes,
)

L = LEAF_SIZE
PIECE = bytes(range(256)) * (4 * L // 256) + b"tail" * 100  # 4 whole leaves and a short one


def fresh(piece: bytes = PIECE) -> Assembly:
    return Assembly.for_piece(len(piece), leaves_root(leaf_hashes(piece)))


def test_leaf_range_needs_leaf_boundaries() -> None:
    n = len(PIECE)
    assert leaf_range(0, L, n) == range(0, 1)
    assert leaf_range(L, 2 * L, n) == range(1, 3)
    assert leaf_range(4 * L, n - 4 * L, n) == range(4, 5)  # the short last leaf
    assert leaf_range(3 * L, n - 3 * L, n) == range(3, 5)
    assert leaf_range(1, L, n) is None  # starts inside a leaf
    assert leaf_range(0, L + 1, n) is None  # ends inside one
    assert leaf_range(4 * L, L, n) is None  # past the end of the piece
    assert leaf_bits(range(1, 3)) == 0b110 and leaf_bits(range(0)) == 0


def test_blocks_checked_on_arrival_once_the_leaves_are_here() -> None:
    asm = fresh()
    assert asm.set_leaves(leaf_hashes(PIECE)) == []
    assert asm.add_block(L, PIECE[L:3 * L], "a")
    assert asm.servable(L, L) and asm.servable(L, 2 * L) and asm.servable(2 * L, L)
    assert not asm.servable(0, L) and not asm.servable(L, 3 * L)
    assert bytes(asm.data[L:3 * L]) == PIECE[L:3 * L]
    bad = bytearray(PIECE[:L])
    bad[7] ^= 1
    assert not asm.add_block(0, bytes(bad), "liar")
    assert not asm.servable(0, L)  # a block that failed is never served
    assert asm.add_block(0, PIECE[:L], "b")  # fetched again from an honest peer
    assert asm.add_block(3 * L, PIECE[3 * L:], "a")
    assert asm.servable(0, len(PIECE)) and bytes(asm.data) == PIECE


def test_blocks_before_the_leaves_are_checked_when_they_come() -> None:
    asm = fresh()
    bad = bytearray(PIECE[2 * L:3 * L])
    bad[0] ^= 0xFF
    assert asm.add_block(0, PIECE[:L], "a")
    assert asm.add_block(2 * L, bytes(bad), "liar")
    assert not asm.servable(0, L)  # unchecked: kept, never served
    assert asm.set_leaves(leaf_hashes(PIECE)) == [(2 * L, L, "liar")]
    assert asm.servable(0, L) and not asm.servable(2 * L, L)


def test_leaves_that_do_not_match_the_root_are_refused() -> None:
    asm = fresh()
    asm.add_block(0, PIECE[:L], "a")
    lies = leaf_hashes(PIECE)
    lies[1] = hashlib.sha256(b"lie").digest()
    assert asm.set_leaves(lies) is None
    assert asm.set_leaves(leaf_hashes(PIECE)[:-1]) is None  # too few
    assert asm.leaves is None and not asm.servable(0, L)  # nothing changed
    assert asm.set_leaves(leaf_hashes(PIECE)) == [] and asm.servable(0, L)
    assert asm.set_leaves(lies) == []  # once checked, later copies are ignored


def test_without_block_roots_nothing_is_servable() -> None:
    asm = Assembly.for_piece(len(PIECE), None)
    assert asm.add_block(0, PIECE[:L], "a")
    assert not asm.servable(0, L)
    assert asm.set_leaves(leaf_hashes(PIECE)) is None


def test_off_grid_blocks_are_kept_but_never_relayed() -> None:
    asm = fresh()
    asm.set_leaves(leaf_hashes(PIECE))
    assert asm.add_block(100, PIECE[100:200], "a")
    assert asm.verified == 0 and not asm.servable(0, L)


@given(st.integers(1, 1024).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, (1 << n) - 1))))
def test_mask_round_trip(case: tuple[int, int]) -> None:
    count, mask = case
    raw = mask_to_bytes(mask, count)
    assert len(raw) == (count + 7) // 8
    assert bytes_to_mask(raw, count) == mask


def test_mask_layout_and_bad_masks() -> None:
    assert mask_to_bytes(0b1, 16) == b"\x80\x00"  # leaf 0 is the top bit, as in bitfields
    assert mask_to_bytes(1 << 9, 16) == b"\x00\x40"
    assert bytes_to_mask(b"\x80", 16) is None  # wrong length
    assert bytes_to_mask(b"\xff\xc0", 9) is None  # a leaf that does not exist
    assert bytes_to_mask(b"\xff\x80", 9) == (1 << 9) - 1


def test_checked_bytes_count_what_is_here_and_checked_the_short_last_leaf_as_it_is() -> None:
    asm = fresh()
    assert asm.add_block(0, PIECE[:L], "a") and asm.checked_bytes == 0  # no leaves yet
    asm.set_leaves(leaf_hashes(PIECE))
    assert asm.checked_bytes == L
    bad = bytearray(PIECE[L:2 * L])
    bad[0] ^= 1
    assert not asm.add_block(L, bytes(bad), "liar") and asm.checked_bytes == L
    assert asm.add_block(4 * L, PIECE[4 * L:], "a")
    assert asm.checked_bytes == L + len(PIECE) - 4 * L
    assert asm.add_block(L, PIECE[L:4 * L], "b") and asm.checked_bytes == len(PIECE)
