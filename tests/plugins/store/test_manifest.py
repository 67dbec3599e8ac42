"""Manifests are validated on decode: a peer's bytes are hostile."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from p2pkit.plugins.store import Manifest, block_root, is_rid

H = hashlib.sha256(b"x").digest()
ROOTS = tuple(hashlib.sha256(bytes([i])).digest() for i in range(3))


def manifest(**over: object) -> Manifest:
    """An older manifest: its pieces checked by ``piece_hashes``."""
    fields: dict[str, object] = dict(name="a.mp4", size=40000, mime="video/mp4", category="video",
                                     piece_size=16384, piece_hashes=(H, H, H), title="a")
    fields.update(over)
    return Manifest(**fields)  # type: ignore[arg-type]


def rooted(**over: object) -> Manifest:
    """A manifest as ``import_file`` makes it now: ``block_roots``, no ``piece_hashes``."""
    return manifest(**{"piece_hashes": (), "block_roots": ROOTS, **over})


@pytest.mark.parametrize("make", [manifest, rooted], ids=["piece_hashes", "block_roots"])
def test_round_trip_and_rid(make: Callable[..., Manifest]) -> None:
    m = make(duration=1.5, thumbnail=b"\xff\xd8\xff")
    assert m.num_pieces == 3 and m.has_block_roots is (make is rooted)
    raw = m.encode()
    assert Manifest.decode(raw) == m
    assert Manifest.decode(raw, rid=m.rid) == m
    assert is_rid(m.rid) and m.rid == hashlib.sha256(raw).hexdigest()
    with pytest.raises(ValueError, match="rid"):
        Manifest.decode(raw, rid="0" * 64)
    assert m.piece_length(2) == 40000 - 2 * 16384
    with pytest.raises(IndexError):
        m.piece_length(3)
    assert m.summary()["num_pieces"] == 3


@pytest.mark.parametrize("over", [
    {"name": "../etc/passwd"}, {"name": ""}, {"name": ".."}, {"name": "a\x00b"},
    # written to disk and printed by `p2pkit get`: a terminal's escape, a line break that
    # splits the line scripts read, a hidden file (or a dotfile replaced), a name that
    # shows another extension, one longer than a file system allows
    {"name": "\x1b[2Jclip.wav"}, {"name": "a\nb.wav"}, {"name": "clip\x9b.wav"},
    {"name": ".bashrc"}, {"name": "clip\u202egpj.exe"}, {"name": "é" * 128},
    {"name": "a\u2028b.wav"}, {"name": "clip\u061cgpj.exe"},
    {"size": 0}, {"size": -5}, {"piece_size": 20000}, {"piece_size": 1024},
    {"piece_hashes": (H, H)}, {"piece_hashes": (H, H, b"short")},
    {"category": "document"}, {"mime": "not a mime"}, {"thumbnail": b"x" * 70000},
    {"title": "t" * 5000}, {"duration": -1.0}, {"piece_hashes": ()},
    # inf reached the web UI as "duration": Infinity, which no browser parses
    {"duration": float("inf")}, {"duration": float("nan")}, {"duration": 2e8},
    {"piece_hashes": (H, H, H), "block_roots": ROOTS},
])
def test_invalid_manifests_are_refused(over: dict[str, object]) -> None:
    good = msgspec.structs.asdict(manifest())
    assert Manifest.decode(msgspec.msgpack.encode(good)) == manifest()  # the control passes
    raw = msgspec.msgpack.encode({**good, **over})
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
        Manifest.decode(raw)


@pytest.mark.parametrize("over", [
    {"block_roots": (H, H)}, {"block_roots": (H, H, H, H)}, {"block_roots": (H, H, H[:31])},
    {"block_roots": (H, H, H + b"\x00")}, {"block_roots": H}, {"block_roots": None},
    {"block_roots": ()}, {"piece_hashes": (H, H, H)}, {"piece_hashes": (H,)},
    {"piece_hashes": None},
])
def test_invalid_manifests_with_roots_are_refused(over: dict[str, object]) -> None:
    good = msgspec.structs.asdict(rooted())
    assert Manifest.decode(msgspec.msgpack.encode(good)) == rooted()  # the control passes
    raw = msgspec.msgpack.encode({**good, **over})
    with pytest.raises((msgspec.ValidationError, msgspec.DecodeError)):
        Manifest.decode(raw)


def test_unknown_fields_and_wrong_types_are_refused() -> None:
    good = msgspec.structs.asdict(manifest())
    for bad in ({**good, "extra": 1}, {**good, "size": "40000"}, [1, 2, 3], "text"):
        with pytest.raises(msgspec.ValidationError):
            Manifest.decode(msgspec.msgpack.encode(bad))


def test_non_canonical_encoding_does_not_pass_as_the_rid() -> None:
    m = manifest()
    reordered = msgspec.msgpack.encode(dict(reversed(list(msgspec.structs.asdict(m).items()))))
    assert Manifest.decode(reordered) == m
    with pytest.raises(ValueError):
        Manifest.decode(reordered, rid=hashlib.sha256(reordered).hexdigest())


@given(st.binary(max_size=400))
def test_decode_fuzz(data: bytes) -> None:
    try:
        Manifest.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass


@given(st.dictionaries(st.sampled_from(["name", "size", "mime", "category", "piece_size",
                                        "piece_hashes", "title", "thumbnail", "block_roots", "x"]),
                       st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20), st.binary(max_size=40),
                                 st.lists(st.binary(min_size=32, max_size=32), max_size=4),
                                 st.none())))
def test_decode_fuzz_structured(fields: dict[str, object]) -> None:
    try:
        m = Manifest.decode(msgspec.msgpack.encode(fields))
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    assert m.num_pieces == -(-m.size // m.piece_size)
    assert not (m.block_roots and m.piece_hashes)
    assert len(m.block_roots or m.piece_hashes) == m.num_pieces


FIELD_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.text(max_size=20), st.binary(max_size=40),
    st.lists(st.binary(min_size=31, max_size=33), max_size=4),
    st.lists(st.binary(min_size=32, max_size=32), min_size=0, max_size=4), st.none(),
    st.floats(allow_nan=True), st.sampled_from(["audio", "video/mp4", "a.mp4"]),
)


@given(base=st.sampled_from([manifest(), rooted()]),
       drop=st.sets(st.sampled_from(sorted(msgspec.structs.asdict(manifest()))), max_size=3),
       change=st.dictionaries(st.sampled_from([*msgspec.structs.asdict(manifest()), "x"]),
                              FIELD_VALUES, max_size=3))
def test_decode_fuzz_near_a_valid_manifest(base: Manifest, drop: set[str],
                                           change: dict[str, object]) -> None:
    """A valid manifest of either kind, a few fields dropped or replaced: refused, or a
    manifest checked by exactly one kind of hash, one per piece, whose own encoding is
    canonical for its rid."""
    fields: dict[str, object] = {**msgspec.structs.asdict(base), **change}
    for key in drop:
        fields.pop(key, None)
    try:
        m = Manifest.decode(msgspec.msgpack.encode(fields))
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    assert not (m.block_roots and m.piece_hashes)
    assert len(m.block_roots or m.piece_hashes) == m.num_pieces == -(-m.size // m.piece_size)
    assert all(len(h) == 32 for h in (*m.block_roots, *m.piece_hashes))
    assert m.has_block_roots is bool(m.block_roots)
    assert Manifest.decode(m.encode(), rid=m.rid).encode() == m.encode()


def test_invalid_utf8_is_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        Manifest.decode(b"\x81\xd9\x03\x00\x00\x80")


# ---------------------------------------------------------------------- block roots


Category = Literal["audio", "video", "image"]
Sha256 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class OldManifest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The manifest as it was before ``block_roots``: same fields, order, types, defaults."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    size: Annotated[int, msgspec.Meta(ge=1, le=1 << 40)]
    mime: Annotated[str, msgspec.Meta(min_length=3, max_length=100, pattern=r"^[a-z0-9.+-]+/[a-z0-9.+-]+$")]
    category: Category
    piece_size: Annotated[int, msgspec.Meta(ge=16 * 1024, le=16 * 1024 * 1024)]
    piece_hashes: tuple[Sha256, ...]
    title: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    description: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    duration: Annotated[float, msgspec.Meta(ge=0)] | None = None
    width: Annotated[int, msgspec.Meta(ge=0, le=1 << 16)] | None = None
    height: Annotated[int, msgspec.Meta(ge=0, le=1 << 16)] | None = None
    thumbnail: Annotated[bytes, msgspec.Meta(max_length=64 * 1024)] | None = None


# made by the code before block_roots existed: these rids must never change
OLD_RIDS = {
    "plain": "93c1a6522f10b1c3ccf81871ee4cbfdaf64d8a4e0b0d06b682c4ef0d9d1b111f",
    "full": "ec1f0b1a4bd8e134db894fc680477640526ac7cbc1d3a2a6fe857dae2bac14af",
}
FULL = dict(duration=1.5, width=640, height=480, thumbnail=b"\xff\xd8\xff", description="d")


def test_manifests_without_roots_keep_their_old_rids() -> None:
    assert manifest().rid == OLD_RIDS["plain"]
    assert manifest(**FULL).rid == OLD_RIDS["full"]
    assert Manifest.decode(manifest(**FULL).encode(), rid=OLD_RIDS["full"]) == manifest(**FULL)


OPTIONAL = {
    "title": st.text(max_size=30),
    "description": st.text(max_size=30),
    "duration": st.none() | st.floats(0, 1e6, allow_nan=False),
    "width": st.none() | st.integers(0, 1 << 16),
    "height": st.none() | st.integers(0, 1 << 16),
    "thumbnail": st.none() | st.binary(max_size=50),
}


@st.composite
def old_manifest_fields(draw: st.DrawFn) -> dict[str, Any]:
    piece_size = 1 << draw(st.integers(14, 24))
    pieces = draw(st.integers(1, 5))
    size = draw(st.integers((pieces - 1) * piece_size + 1, pieces * piece_size))
    fields: dict[str, Any] = {
        "name": draw(st.sampled_from(["a.mp4", "ü.wav", "x" * 255])),
        "size": size,
        "mime": draw(st.sampled_from(["video/mp4", "audio/wav", "image/png"])),
        "category": draw(st.sampled_from(["audio", "video", "image"])),
        "piece_size": piece_size,
        "piece_hashes": tuple(draw(st.lists(st.binary(min_size=32, max_size=32),
                                            min_size=pieces, max_size=pieces))),
    }
    for key in draw(st.sets(st.sampled_from(sorted(OPTIONAL)))):  # each optional field set or left default
        fields[key] = draw(OPTIONAL[key])
    return fields


@given(old_manifest_fields())
def test_without_roots_the_encoding_is_the_old_one(fields: dict[str, Any]) -> None:
    """Byte for byte what the manifest encoded to before block_roots existed, so every rid
    already announced still names the same manifest; and old bytes decode, with their rid."""
    old = OldManifest(**fields)
    new = Manifest(**fields)
    raw = msgspec.msgpack.encode(old)
    assert new.encode() == raw
    assert new.rid == hashlib.sha256(raw).hexdigest()
    assert Manifest.decode(raw, rid=new.rid) == new
    assert msgspec.msgpack.decode(new.encode(), type=OldManifest) == old  # old nodes read it
    assert not new.has_block_roots


def as_rooted(fields: dict[str, Any], roots: tuple[bytes, ...]) -> Manifest:
    """The manifest ``fields`` describe, its pieces checked by ``roots`` instead."""
    return Manifest(**{**fields, "piece_hashes": (), "block_roots": roots})


@given(old_manifest_fields(), st.data())
def test_round_trip_and_rid_with_roots(fields: dict[str, Any], data: st.DataObject) -> None:
    pieces = len(fields["piece_hashes"])
    roots = tuple(data.draw(st.lists(st.binary(min_size=32, max_size=32),
                                     min_size=pieces, max_size=pieces), label="roots"))
    m = as_rooted(fields, roots)
    assert m.has_block_roots and m.block_roots == roots and m.piece_hashes == ()
    assert m.num_pieces == pieces
    raw = m.encode()
    assert Manifest.decode(raw, rid=m.rid) == m
    assert m.rid == hashlib.sha256(raw).hexdigest()
    assert m.rid != Manifest(**fields).rid  # the rid covers the roots...
    other = bytearray(roots[-1])
    other[0] ^= 1
    changed = as_rooted(fields, (*roots[:-1], bytes(other)))
    assert changed.rid != m.rid  # ...every one of them
    with pytest.raises(ValueError):
        Manifest.decode(raw, rid=changed.rid)
    with pytest.raises(msgspec.ValidationError):  # old nodes refuse what they cannot check
        msgspec.msgpack.decode(raw, type=OldManifest)


def test_piece_hashes_and_block_roots_together_are_refused() -> None:
    """One kind of hash per manifest: both would double the hash bytes of the manifest
    every downloader fetches first, for nothing."""
    assert manifest().piece_hashes and rooted().block_roots  # the controls: either alone is fine
    with pytest.raises(ValueError, match="not both"):
        manifest(block_roots=ROOTS)
    with pytest.raises(ValueError, match="not both"):
        rooted(piece_hashes=(H, H, H))
    with pytest.raises(ValueError, match="not both"):
        msgspec.structs.replace(rooted(), piece_hashes=(H, H, H))
    raw = msgspec.msgpack.encode({**msgspec.structs.asdict(rooted()), "piece_hashes": (H, H, H)})
    for rid in (None, hashlib.sha256(raw).hexdigest()):  # not even for the rid of these bytes
        with pytest.raises(msgspec.ValidationError, match="not both"):
            Manifest.decode(raw, rid=rid)


@given(old_manifest_fields())
def test_roots_make_the_manifest_no_bigger(fields: dict[str, Any]) -> None:
    """The manifest is the first thing every downloader fetches: checked by block roots it
    is as big as checked by piece hashes, give or take a field name (13 bytes: the key
    ``block_roots`` and an empty ``piece_hashes``), whatever the piece count. Carrying both
    would add 34 bytes a piece (one more datagram per copy in the 100-leecher benchmark)."""
    hashes = Manifest(**fields)
    roots = as_rooted(fields, fields["piece_hashes"])
    assert len(roots.encode()) <= len(hashes.encode()) + 16
    both = msgspec.msgpack.encode({**msgspec.structs.asdict(hashes), "block_roots": fields["piece_hashes"]})
    assert len(both) >= len(hashes.encode()) + 34 * hashes.num_pieces


@pytest.mark.parametrize("pieces", [1, 15, 16, 4096])
def test_roots_cost_the_same_at_any_piece_count(pieces: int) -> None:
    checks = tuple(hashlib.sha256(i.to_bytes(2, "big")).digest() for i in range(pieces))
    fields: dict[str, Any] = dict(name="a.mp4", size=pieces * 16384, mime="video/mp4",
                                  category="video", piece_size=16384, piece_hashes=checks)
    # exactly the key "block_roots" (12 bytes) and an empty array for piece_hashes (1 byte)
    assert len(as_rooted(fields, checks).encode()) - len(Manifest(**fields).encode()) == 13


def noise(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


PIECES = [noise(16384, 1), noise(16384, 2), noise(3, 3)]  # the last piece short
CHECKS: dict[str, Callable[[bytes], bytes]] = {
    "piece_hashes": lambda piece: hashlib.sha256(piece).digest(), "block_roots": block_root,
}


def checked_by(kind: str, check: Callable[[bytes], bytes]) -> Manifest:
    """A manifest of ``PIECES`` whose ``kind`` field holds ``check`` of every piece."""
    return manifest(**{"size": sum(map(len, PIECES)), "piece_hashes": (),
                       kind: tuple(check(p) for p in PIECES)})


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_piece_matches(kind: str) -> None:
    """True for the right bytes (any buffer type), False for one flipped byte, another
    piece's bytes, or the right bytes checked by the other kind of hash."""
    m = checked_by(kind, CHECKS[kind])
    assert m.has_block_roots is (kind == "block_roots") and m.num_pieces == 3
    assert Manifest.decode(m.encode(), rid=m.rid) == m
    for i, piece in enumerate(PIECES):
        assert m.piece_matches(i, piece)
        assert m.piece_matches(i, bytearray(piece)) and m.piece_matches(i, memoryview(piece))
        for position in {0, len(piece) // 2, len(piece) - 1}:
            flipped = bytearray(piece)
            flipped[position] ^= 0x01
            assert not m.piece_matches(i, flipped)
        assert not m.piece_matches((i + 1) % 3, piece)
    (other,) = set(CHECKS) - {kind}
    swapped = checked_by(kind, CHECKS[other])  # the other kind's hashes in this kind's field
    assert not any(swapped.piece_matches(i, piece) for i, piece in enumerate(PIECES))
    for index in (-1, -3, 3):  # out of range, a negative index too: never wraps around
        with pytest.raises(IndexError):
            m.piece_matches(index, PIECES[-1])


@pytest.mark.parametrize("roots", [ROOTS[:2], ROOTS + ROOTS[:1], ROOTS[:1], ()],
                         ids=["2", "4", "1", "0"])
def test_roots_must_be_one_per_piece(roots: tuple[bytes, ...]) -> None:
    assert rooted(block_roots=ROOTS).has_block_roots  # the control: three pieces, three roots
    with pytest.raises(ValueError, match="block_roots"):
        rooted(block_roots=roots)
    raw = msgspec.msgpack.encode({**msgspec.structs.asdict(rooted()), "block_roots": roots})
    with pytest.raises(msgspec.ValidationError, match="block_roots"):
        Manifest.decode(raw)


@pytest.mark.parametrize("bad", [b"", H[:31], H + b"\x00", "0" * 32],
                         ids=["empty", "31 bytes", "33 bytes", "text"])
def test_a_root_of_the_wrong_size_is_refused(bad: bytes | str) -> None:
    good = msgspec.structs.asdict(rooted())
    assert Manifest.decode(msgspec.msgpack.encode(good)) == rooted()
    raw = msgspec.msgpack.encode({**good, "block_roots": (ROOTS[0], bad, ROOTS[2])})
    with pytest.raises(msgspec.ValidationError, match=r"block_roots\[1\]"):
        Manifest.decode(raw)


def test_explicit_empty_roots_are_not_canonical() -> None:
    """An empty ``block_roots`` written out is a second encoding of a manifest without
    roots: it decodes, but it is not what any rid names (not even its own hash)."""
    m = manifest(**FULL)
    explicit = msgspec.msgpack.encode(msgspec.structs.asdict(m))
    assert b"block_roots" in explicit and explicit != m.encode()
    assert Manifest.decode(explicit) == m
    assert Manifest.decode(m.encode(), rid=m.rid) == m  # the control: the canonical bytes
    with pytest.raises(ValueError, match="rid"):
        Manifest.decode(explicit, rid=m.rid)
    with pytest.raises(ValueError, match="canonical"):
        Manifest.decode(explicit, rid=hashlib.sha256(explicit).hexdigest())


def test_reordered_fields_with_roots_are_not_canonical() -> None:
    m = rooted()
    reordered = msgspec.msgpack.encode(dict(reversed(list(msgspec.structs.asdict(m).items()))))
    assert Manifest.decode(reordered) == m
    assert Manifest.decode(m.encode(), rid=m.rid) == m  # the control: the canonical bytes
    with pytest.raises(ValueError, match="canonical"):
        Manifest.decode(reordered, rid=hashlib.sha256(reordered).hexdigest())
