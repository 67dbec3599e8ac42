"""Leaf hashes and block roots: where leaves begin and end, and that a root catches any change."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2pkit.plugins.store import (
    LEAF_SIZE,
    MAX_LEAVES,
    block_root,
    leaf_count,
    leaf_hashes,
    leaves_root,
)

L = LEAF_SIZE


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def noise(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def test_leaf_size_and_count() -> None:
    assert L == 16 * 1024
    assert [leaf_count(n) for n in (0, 1, L - 1, L, L + 1, 2 * L, 2 * L + 1)] == [0, 1, 1, 1, 2, 2, 3]
    assert leaf_count(16 * 1024 * 1024) == MAX_LEAVES == 1024  # the largest piece


def test_leaves_end_at_every_leaf_size_and_the_last_may_be_short() -> None:
    piece = noise(2 * L + 100)
    assert leaf_hashes(piece) == [sha(piece[:L]), sha(piece[L:2 * L]), sha(piece[2 * L:])]
    assert block_root(piece) == sha(sha(piece[:L]) + sha(piece[L:2 * L]) + sha(piece[2 * L:]))


def test_a_whole_number_of_leaves_has_no_empty_leaf_at_the_end() -> None:
    piece = noise(3 * L)
    assert leaf_hashes(piece) == [sha(piece[i:i + L]) for i in (0, L, 2 * L)]
    assert sha(b"") not in leaf_hashes(piece)


@pytest.mark.parametrize("length", [1, 3, L - 1, L])
def test_a_piece_of_at_most_one_leaf(length: int) -> None:
    piece = noise(length)
    assert leaf_hashes(piece) == [sha(piece)]
    assert block_root(piece) == sha(sha(piece))  # a root over one leaf is still a root, not the leaf


def test_bytes_bytearray_and_memoryview_agree() -> None:
    piece = noise(L + 5)
    expected = block_root(piece)
    assert block_root(bytearray(piece)) == block_root(memoryview(piece)) == expected
    assert block_root(memoryview(b"xx" + piece)[2:]) == expected  # a view into a larger buffer


def test_root_depends_on_the_order_and_the_length() -> None:
    a, b = sha(b"a"), sha(b"b")
    assert leaves_root([a, b]) != leaves_root([b, a])
    assert block_root(bytes(L)) != block_root(bytes(L + 1))  # a trailing zero byte counts
    assert block_root(bytes(L)) != block_root(bytes(L - 1))


@pytest.mark.parametrize("position", [0, 1, L - 1, L, L + 1, 2 * L - 1, 2 * L, 2 * L + 99])
def test_root_changes_when_any_byte_changes(position: int) -> None:
    piece = noise(2 * L + 100, seed=1)
    changed = bytearray(piece)
    changed[position] ^= 0x01
    assert block_root(changed) != block_root(piece)
    # exactly the leaf holding that byte changes: the others still check
    before, after = leaf_hashes(piece), leaf_hashes(changed)
    assert [i for i in range(len(before)) if before[i] != after[i]] == [position // L]


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 4 * L + 50), seed=st.integers(0, 2**32), data=st.data())
def test_leaves_property(length: int, seed: int, data: st.DataObject) -> None:
    """For any piece: one hash per leaf, each the SHA-256 of its slice, the root is their
    hash, a leaf-aligned split hashes to the two halves' leaves, and flipping any bit of
    any byte changes the root and only that byte's leaf."""
    piece = noise(length, seed)
    hashes = leaf_hashes(piece)
    assert len(hashes) == leaf_count(length)
    assert hashes == [sha(piece[i * L:(i + 1) * L]) for i in range(leaf_count(length))]
    assert block_root(piece) == leaves_root(hashes) == sha(b"".join(hashes))

    cut = data.draw(st.integers(0, length // L), label="cut") * L
    assert leaf_hashes(piece[:cut]) + leaf_hashes(piece[cut:]) == hashes

    position = data.draw(st.integers(0, length - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="flip")
    changed = bytearray(piece)
    changed[position] ^= flip
    assert block_root(changed) != block_root(piece)
    changed_hashes = leaf_hashes(changed)
    assert [i for i, h in enumerate(hashes) if h != changed_hashes[i]] == [position // L]
