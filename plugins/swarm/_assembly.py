"""A piece being put together from blocks, each checked on arrival (sans-IO).

With a manifest that carries block roots (see ``p2pkit.plugins.store._leaves``), a block
is checked against its piece's leaf hashes as soon as both are here — the hashes come
from whichever peer serves the piece (they are checked against the root), before or
after its first block. A checked block may be served to others while the rest of the
piece is still on its way (relaying), and a block that fails convicts exactly the peer
that sent it. Without block roots, or until the leaf hashes arrive, blocks are only kept;
the piece's hash in the manifest decides when it is whole, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import attrs
from p2pkit.plugins.store import LEAF_SIZE, leaf_count, leaves_root


def leaf_range(offset: int, length: int, piece_length: int) -> range | None:
    """The leaves ``[offset, offset + length)`` covers exactly, or None if it does not
    start and end on leaf boundaries (the end of the piece is one)."""
    end = offset + length
    if offset % LEAF_SIZE or (end % LEAF_SIZE and end != piece_length) or end > piece_length:
        return None
    return range(offset // LEAF_SIZE, -(-end // LEAF_SIZE))


def leaf_bits(leaves: range) -> int:
    return ((1 << len(leaves)) - 1) << leaves.start if leaves else 0


@attrs.define(eq=False)
class Assembly:
    """The bytes of one piece received so far and which of its leaves are checked."""

    data: bytearray
    root: bytes | None  # the piece's block root in the manifest (None: blocks are not checkable)
    leaves: list[bytes] | None = None  # the piece's leaf hashes, once received and checked
    verified: int = 0  # bit j: leaf j is here and matches its hash
    unchecked: list[tuple[int, int, str]] = attrs.field(factory=list)  # (offset, length, sender)
    advertised: bool = False  # we told the swarm we hold blocks of it

    @classmethod
    def for_piece(cls, length: int, root: bytes | None) -> Assembly:
        return cls(bytearray(length), root)

    @property
    def num_leaves(self) -> int:
        return leaf_count(len(self.data))

    def add_block(self, offset: int, data: bytes, sender: str) -> bool:
        """Keep a block; False if it fails its leaf hashes (then nothing of it counts as
        checked and it must be fetched again)."""
        self.data[offset:offset + len(data)] = data
        if self.root is None:
            return True
        if self.leaves is None:
            self.unchecked.append((offset, len(data), sender))
            return True
        return self._check(offset, len(data))

    def set_leaves(self, hashes: Sequence[bytes]) -> list[tuple[int, int, str]] | None:
        """The piece's leaf hashes, from a peer. None if they do not match the root (the
        peer lied; nothing changes); else the blocks received before them that fail
        (offset, length, sender), each to be fetched again."""
        if (self.root is None or self.leaves is not None or len(hashes) != self.num_leaves
                or leaves_root(hashes) != self.root):
            return None if self.leaves is None else []
        self.leaves = list(hashes)
        bad = [(off, n, who) for off, n, who in self.unchecked if not self._check(off, n)]
        self.unchecked.clear()
        return bad

    def _check(self, offset: int, length: int) -> bool:
        leaves = self.leaves
        assert leaves is not None
        span = leaf_range(offset, length, len(self.data))
        if span is None:  # off the leaf grid: kept for the piece hash, never relayed
            return True
        view = memoryview(self.data)
        for j in span:
            start = j * LEAF_SIZE
            if hashlib.sha256(view[start:start + LEAF_SIZE]).digest() != leaves[j]:
                return False
        self.verified |= leaf_bits(span)
        return True

    @property
    def checked_bytes(self) -> int:
        """How many of its bytes are here and checked against their leaf hashes."""
        count = self.verified.bit_count() * LEAF_SIZE
        last = self.num_leaves - 1
        if self.verified >> last & 1:  # the last leaf may be short
            count -= LEAF_SIZE - (len(self.data) - last * LEAF_SIZE)
        return count

    def mask(self) -> bytes:
        """The checked leaves as a ``Blocks`` message carries them."""
        return mask_to_bytes(self.verified, self.num_leaves)

    def servable(self, offset: int, length: int) -> bool:
        """Every leaf of the range is here and checked (so it may be served)."""
        span = leaf_range(offset, length, len(self.data))
        if span is None or not span:
            return False
        bits = leaf_bits(span)
        return self.verified & bits == bits


def mask_to_bytes(mask: int, count: int) -> bytes:
    """Leaf mask → MSB-first bytes (leaf 0 is the top bit of the first byte)."""
    size = (count + 7) // 8
    reversed_bits = int(f"{mask:0{size * 8}b}"[::-1], 2) if mask else 0
    return reversed_bits.to_bytes(size, "big")


def bytes_to_mask(bits: bytes, count: int) -> int | None:
    """MSB-first bytes → leaf mask; None if the length or the spare bits are wrong."""
    if len(bits) != (count + 7) // 8:
        return None
    as_int = int.from_bytes(bits, "big")
    text = f"{as_int:0{len(bits) * 8}b}"
    if "1" in text[count:]:
        return None
    return int(text[::-1], 2)


__all__ = ["Assembly", "bytes_to_mask", "leaf_bits", "leaf_range", "mask_to_bytes"]
