"""Content manifests and their content id (``rid``).

A manifest describes one shared media file: name, size, type, how it is cut into pieces
and the SHA-256 of every piece. The ``rid`` is the hex SHA-256 of the manifest's
canonical encoding (msgpack of the struct, fields in declaration order), so the same file
with the same title and description has the same rid on every node, and a manifest
received from a peer can be checked against the rid it was asked for.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any, Literal

import msgspec

DEFAULT_PIECE_SIZE = 256 * 1024  # seed 000/004: 256 KiB chunks
MIN_PIECE_SIZE = 16 * 1024
MAX_PIECE_SIZE = 16 * 1024 * 1024
MAX_FILE_SIZE = 1 << 40  # 1 TiB: bounds the number of pieces a peer can make us allocate
MAX_THUMBNAIL_BYTES = 64 * 1024
MAX_TEXT = 4096

Category = Literal["audio", "video", "image"]
Sha256 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
_RID_RE = re.compile(r"[0-9a-f]{64}")


def is_rid(value: object) -> bool:
    """True if ``value`` looks like a rid: 64 lowercase hex digits."""
    return isinstance(value, str) and _RID_RE.fullmatch(value) is not None


class Manifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a node needs to fetch and verify a file. Decoding validates everything."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    size: Annotated[int, msgspec.Meta(ge=1, le=MAX_FILE_SIZE)]
    mime: Annotated[str, msgspec.Meta(min_length=3, max_length=100, pattern=r"^[a-z0-9.+-]+/[a-z0-9.+-]+$")]
    category: Category
    piece_size: Annotated[int, msgspec.Meta(ge=MIN_PIECE_SIZE, le=MAX_PIECE_SIZE)]
    piece_hashes: tuple[Sha256, ...]
    title: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)] = ""
    description: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)] = ""
    duration: Annotated[float, msgspec.Meta(ge=0)] | None = None  # seconds
    width: Annotated[int, msgspec.Meta(ge=0, le=1 << 16)] | None = None
    height: Annotated[int, msgspec.Meta(ge=0, le=1 << 16)] | None = None
    thumbnail: Annotated[bytes, msgspec.Meta(max_length=MAX_THUMBNAIL_BYTES)] | None = None  # JPEG

    def __post_init__(self) -> None:
        if "/" in self.name or "\\" in self.name or "\x00" in self.name or self.name in (".", ".."):
            raise ValueError("name must be a plain file name")
        if self.piece_size & (self.piece_size - 1):
            raise ValueError("piece_size must be a power of two")
        if len(self.piece_hashes) != -(-self.size // self.piece_size):
            raise ValueError("piece_hashes does not match size / piece_size")

    # ------------------------------------------------------------------ derived values

    @property
    def num_pieces(self) -> int:
        return len(self.piece_hashes)

    def piece_length(self, index: int) -> int:
        """Length of piece ``index`` (the last one may be short)."""
        if not 0 <= index < len(self.piece_hashes):
            raise IndexError(f"piece {index} out of range 0..{len(self.piece_hashes) - 1}")
        return min(self.piece_size, self.size - index * self.piece_size)

    @property
    def rid(self) -> str:
        return hashlib.sha256(self.encode()).hexdigest()

    def encode(self) -> bytes:
        """The canonical encoding (what the rid hashes and what peers exchange)."""
        return _ENCODER.encode(self)

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
