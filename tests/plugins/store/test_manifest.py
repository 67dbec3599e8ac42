"""Manifests are validated on decode: a peer's bytes are hostile."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from p2pkit.plugins.store import Manifest, is_rid

H = hashlib.sha256(b"x").digest()


def manifest(**over: object) -> Manifest:
    fields: dict[str, object] = dict(name="a.mp4", size=40000, mime="video/mp4", category="video",
                                     piece_size=16384, piece_hashes=(H, H, H), title="a")
    fields.update(over)
    return Manifest(**fields)  # type: ignore[arg-type]


def test_round_trip_and_rid() -> None:
    m = manifest(duration=1.5, thumbnail=b"\xff\xd8\xff")
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
    {"size": 0}, {"size": -5}, {"piece_size": 20000}, {"piece_size": 1024},
    {"piece_hashes": (H, H)}, {"piece_hashes": (H, H, b"short")},
    {"category": "document"}, {"mime": "not a mime"}, {"thumbnail": b"x" * 70000},
    {"title": "t" * 5000}, {"duration": -1.0},
])
def test_invalid_manifests_are_refused(over: dict[str, object]) -> None:
    good = msgspec.structs.asdict(manifest())
    assert Manifest.decode(msgspec.msgpack.encode(good)) == manifest()  # the control passes
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
                                        "piece_hashes", "title", "thumbnail", "x"]),
                       st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=20), st.binary(max_size=40),
                                 st.lists(st.binary(min_size=32, max_size=32), max_size=4),
                                 st.none())))
def test_decode_fuzz_structured(fields: dict[str, object]) -> None:
    try:
        m = Manifest.decode(msgspec.msgpack.encode(fields))
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    assert m.num_pieces == -(-m.size // m.piece_size)


def test_invalid_utf8_is_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        Manifest.decode(b"\x81\xd9\x03\x00\x00\x80")
