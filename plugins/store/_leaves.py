"""Leaf hashes: how a single block of a piece is checked before the piece is whole.

A piece is cut into leaves of :data:`LEAF_SIZE` bytes (the last may be short); its *block
root* is the SHA-256 of the concatenated SHA-256 digests of its leaves. A manifest that
carries every piece's block root (``Manifest.block_roots``) lets a downloader check each
leaf it receives as soon as it has the piece's leaf hashes — which any peer can send, as
they are checked against the root — so a block can be passed on to others while the rest
of its piece is still on its way, and a corrupt block convicts exactly the peer that sent
it (BitTorrent v2 does the same with a Merkle tree; with at most 1 024 leaves per piece a
flat list of hashes costs one message and no proofs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

LEAF_SIZE = 16 * 1024
MAX_LEAVES = (16 * 1024 * 1024) // LEAF_SIZE  # the largest piece (16 MiB) has 1 024


def leaf_count(piece_length: int) -> int:
    return -(-piece_length // LEAF_SIZE)


def leaf_hashes(piece: bytes | bytearray | memoryview) -> list[bytes]:
    """SHA-256 of each leaf of ``piece``."""
    view = memoryview(piece)
    return [hashlib.sha256(view[i:i + LEAF_SIZE]).digest() for i in range(0, len(view), LEAF_SIZE)]


def leaves_root(hashes: Sequence[bytes]) -> bytes:
    """The block root of a piece whose leaves hash to ``hashes``."""
    return hashlib.sha256(b"".join(hashes)).digest()


def block_root(piece: bytes | bytearray | memoryview) -> bytes:
    return leaves_root(leaf_hashes(piece))


__all__ = ["LEAF_SIZE", "MAX_LEAVES", "block_root", "leaf_count", "leaf_hashes", "leaves_root"]
