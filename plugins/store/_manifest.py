"""Content manifests and their content id (``rid``).

A manifest describes one shared media file: name, size, type, how it is cut into pieces
and a hash of every piece. The ``rid`` is the hex SHA-256 of the manifest's
canonical encoding (msgpack of the struct, fields in declaration order), so the same file
with the same title and description has the same rid on every node, and a manifest
received from a peer can be checked against the rid it was asked for.

Each piece is checked by one of two hashes. Manifests made now carry ``block_roots``: per
piece, the SHA-256 of the SHA-256s of its 16 KiB leaves (see :mod:`._leaves`), which
checks the whole piece and, given the leaf hashes (any peer can send them; they must hash
to the root), every single block of it — so blocks can be checked and relayed before
their piece is whole, and a bad block convicts its sender. Their ``piece_hashes`` is
empty: a second hash per piece would only make the manifest bigger, and the manifest is
the first thing every downloader fetches (one more datagram per copy made the start of
the 100-leecher benchmark measurably slower). Manifests made before hold ``piece_hashes``
(the SHA-256 of each piece) and no ``block_roots``; their encoding leaves the field out,
so their bytes — and rids — are what they always were.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import msgspec

from p2pkit.filenames import name_problem

from ._leaves import block_root

DEFAULT_PIECE_SIZE = 256 * 1024  # seed 000/004: 256 KiB chunks
MIN_PIECE_SIZE = 16 * 1024
MAX_PIECE_SIZE = 16 * 1024 * 1024
MAX_FILE_SIZE = 1 << 40  # 1 TiB: bounds the number of pieces a peer can make us allocate
MAX_THUMBNAIL_BYTES = 64 * 1024
MAX_TEXT = 4096
MAX_DURATION = 1e8  # seconds (three years); also keeps inf and NaN, which JSON cannot carry, out

Category = Literal["audio", "video", "image"]
Sha256 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a node needs to fetch and verify a file. Decoding validates everything."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    size: Annotated[int, msgspec.Meta(ge=1, le=MAX_FILE_SIZE)]
    mime: Annotated[str, msgspec.Meta(min_length=3, max_length=100, pattern=r"^[a-z0-9.+-]+/[a-z0-9.+-]+$")]
    category: Category
    piece_size: Annotated[int, msgspec.Meta(ge=MIN_PIECE_SIZE, le=MAX_PIECE_SIZE)]
    piece_hashes: tuple[Sha256, ...]  # per piece: its SHA-256 (manifests without block_roots)
    title: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)] = ""
    description: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)] = ""
    duration: Annotated[float, msgspec.Meta(ge=0, le=MAX_DURATION)] | None = None  # seconds
    width: Annotated[int, msgspec.Meta(ge=0, le=1 << 16)] | None = None
    height: Annotated[int, msgspec.Meta(ge=0, le=1 << 16)] | None = None
    thumbnail: Annotated[bytes, msgspec.Meta(max_length=MAX_THUMBNAIL_BYTES)] | None = None  # JPEG
    block_roots: tuple[Sha256, ...] = ()  # per piece: SHA-256 of its leaf hashes (or none)

    def __post_init__(self) -> None:
        problem = name_problem(self.name)
        if problem is not None:
            raise ValueError(f"name {problem}")
        if self.piece_size & (self.piece_size - 1):
            raise ValueError("piece_size must be a power of two")
        if self.block_roots and self.piece_hashes:
            raise ValueError("a manifest checks its pieces by piece_hashes or by block_roots, not both")
        if len(self._checks) != -(-self.size // self.piece_size):
            raise ValueError("piece_hashes / block_roots does not match size / piece_size")

    # ------------------------------------------------------------------ derived values

    @property
    def _checks(self) -> tuple[bytes, ...]:
        return self.block_roots or self.piece_hashes

    @property
    def num_pieces(self) -> int:
        return len(self._checks)

    def piece_matches(self, index: int, data: bytes | bytearray | memoryview) -> bool:
        """Is ``data`` piece ``index``? (Its block root, or for an older manifest its SHA-256.)
        IndexError for an index out of range (a negative one too: it must not wrap)."""
        if not 0 <= index < self.num_pieces:
            raise IndexError(f"piece {index} out of range 0..{self.num_pieces - 1}")
        if self.block_roots:
            return block_root(data) == self.block_roots[index]
        return hashlib.sha256(data).digest() == self.piece_hashes[index]

    @property
    def has_block_roots(self) -> bool:
        """Single blocks can be checked (and relayed before their piece is whole)."""
        return bool(self.block_roots)

    def piece_length(self, index: int) -> int:
        """Length of piece ``index`` (the last one may be short)."""
        if not 0 <= index < self.num_pieces:
            raise IndexError(f"piece {index} out of range 0..{self.num_pieces - 1}")
        return min(self.piece_size, self.size - index * self.piece_size)

    @property
    def rid(self) -> str:
        return hashlib.sha256(self.encode()).hexdigest()

    def encode(self) -> bytes:
        """The canonical encoding (what the rid hashes and what peers exchange)."""
        if self.block_roots:
            return _ENCODER.encode(self)
        # without block roots: the encoding of manifests made before the field existed
        fields = msgspec.structs.asdict(self)
        del fields["block_roots"]
        return _ENCODER.encode(fields)

    @classmethod
    def decode(cls, data: bytes, *, rid: str | None = None) -> Manifest:
        """Decode hostile bytes: ``msgspec.DecodeError`` (``ValidationError`` is one) if
        malformed; ``ValueError`` if ``rid`` is given and the bytes do not hash to it
        (checked first, so garbage sent for a rid is not even parsed)."""
        if rid is not None and hashlib.sha256(data).hexdigest() != rid:
            raise ValueError("manifest does not match its rid")
        try:
            manifest = _DECODER.decode(data)
        except UnicodeDecodeError as exc:  # msgspec lets invalid UTF-8 through as this
            raise msgspec.DecodeError(f"invalid UTF-8 in manifest: {exc.reason}") from None
        if rid is not None and manifest.encode() != data:
            raise ValueError("manifest encoding is not canonical")
        return manifest

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description without hashes and thumbnail (lists, announcements)."""
        return {
            "rid": self.rid, "name": self.name, "size": self.size, "mime": self.mime,
            "category": self.category, "title": self.title, "description": self.description,
            "duration": self.duration, "width": self.width, "height": self.height,
            "piece_size": self.piece_size, "num_pieces": self.num_pieces,
        }


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Manifest)
