"""Media type detection from bytes (magic numbers) and probing of real files."""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from p2pkit.plugins.store import UnsupportedMedia, sniff
from p2pkit.plugins.store._imagesize import image_size
from p2pkit.plugins.store._media import MAX_DECODE_PIXELS, MediaInfo, mp3_duration, probe

from .test_imagesize import jpeg_header, png_header


@pytest.mark.parametrize("header,name,mime,category", [
    (b"\x89PNG\r\n\x1a\n" + bytes(20), "x", "image/png", "image"),
    (b"\xff\xd8\xff\xe0" + bytes(20), "x.txt", "image/jpeg", "image"),
    (b"GIF89a" + bytes(20), "", "image/gif", "image"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "", "image/webp", "image"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "", "audio/wav", "audio"),
    (b"RIFF\x00\x00\x00\x00AVI LIST", "", "video/x-msvideo", "video"),
    (b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00", "a.mp4", "video/mp4", "video"),
    (b"\x00\x00\x00\x1cftypisom\x00\x00\x02\x00", "a.m4a", "audio/mp4", "audio"),
    (b"\x00\x00\x00\x1cftypM4A \x00\x00\x02\x00", "a.mp4", "audio/mp4", "audio"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "", "video/quicktime", "video"),
    (b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01B\x82\x84webm", "", "video/webm", "video"),
    (b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01B\x82\x88matroska", "", "video/x-matroska", "video"),
    (b"OggS\x00\x02" + bytes(22) + b"\x01vorbis", "", "audio/ogg", "audio"),
    (b"OggS\x00\x02" + bytes(22) + b"\x80theora", "", "video/ogg", "video"),
    (b"fLaC\x00\x00\x00\x22", "", "audio/flac", "audio"),
    (b"ID3\x04\x00\x00\x00\x00\x00\x00", "", "audio/mpeg", "audio"),
    (b"FORM\x00\x00\x00\x00AIFFCOMM", "", "audio/aiff", "audio"),
    (b"\x00\x00\x01\xba\x44\x00", "", "video/mpeg", "video"),
    (b"FLV\x01\x05", "", "video/x-flv", "video"),
])
def test_sniff_magic_numbers(header: bytes, name: str, mime: str, category: str) -> None:
    media = sniff(header, name)
    assert (media.mime, media.category) == (mime, category)


def test_sniff_mpeg_ts_and_bare_mp3_frames() -> None:
    ts = bytearray(188 * 3)
    ts[0] = ts[188] = ts[376] = 0x47
    assert sniff(bytes(ts)).mime == "video/mp2t"
    frame = bytes([0xFF, 0xFB, 0x90, 0x00]) + bytes(413)  # 417-byte MPEG-1 L3 frame
    assert sniff(frame * 3).mime == "audio/mpeg"
    bmp = b"BM" + struct.pack("<IHHII", 1000, 0, 0, 54, 40) + bytes(40)
    assert sniff(bmp).mime == "image/bmp"


@pytest.mark.parametrize("header", [
    b"", b"hello world", b"%PDF-1.4", b"PK\x03\x04", b"\x7fELF\x02\x01",
    b"\xff\xfb\x90\x00" + b"garbage-not-a-second-frame" * 30,  # one lone sync word
    b"BM" + bytes(40),  # "BM" text without a bitmap header size
    b"RIFF\x00\x00\x00\x00XXXX",
])
def test_sniff_refuses_non_media(header: bytes) -> None:
    with pytest.raises(UnsupportedMedia):
        sniff(header, "file.mp4")


@given(st.binary(max_size=600))
def test_sniff_never_crashes(data: bytes) -> None:
    try:
        media = sniff(data, "x")
    except UnsupportedMedia:
        return
    assert media.category in ("audio", "video", "image")


def test_mp3_duration_cbr_and_xing(tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    cbr = makers["mp3"](tmp_path / "cbr.mp3", frames=200)
    assert mp3_duration(cbr) == pytest.approx(200 * 1152 / 44100, rel=0.01)
    vbr = makers["mp3"](tmp_path / "vbr.mp3", frames=300, xing=True)
    assert mp3_duration(vbr) == pytest.approx(300 * 1152 / 44100, abs=0.001)


def test_mp3_duration_after_a_long_id3_tag(tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    plain = makers["mp3"](tmp_path / "plain.mp3", frames=200).read_bytes()
    tag = 100_000  # past the first 64 KiB read: the frames are read on from the tag's end
    synchsafe = bytes((tag >> shift) & 0x7F for shift in (21, 14, 7, 0))
    long_tag = tmp_path / "long tag.mp3"
    long_tag.write_bytes(b"ID3\x03\x00\x00" + synchsafe + b"\x00" * tag + plain[20:])
    assert mp3_duration(long_tag) == pytest.approx(200 * 1152 / 44100, rel=0.01)


def test_an_id3_tag_claiming_256_mib_allocates_nothing_like_it(tmp_path: Path) -> None:
    # a 1 KiB upload made the node allocate 256 MiB (the buffer was padded to the tag's end)
    bomb = tmp_path / "bomb.mp3"
    bomb.write_bytes(b"ID3\x03\x00\x00\x7f\x7f\x7f\x7f" + b"\xff\xfb\x90\x00" * 253 + b"\x00\x00")
    tracemalloc.start()
    try:
        assert mp3_duration(bomb) is None
        assert probe(bomb, sniff(bomb.read_bytes(), bomb.name)).duration is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_probe_unreadable_media_is_empty(tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    info = probe(broken, sniff(broken.read_bytes(), broken.name))
    assert info.duration is None and info.thumbnail is None
    bad_wav = tmp_path / "bad.wav"
    bad_wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert probe(bad_wav, sniff(bad_wav.read_bytes())).duration is None


def test_an_image_claiming_too_many_pixels_is_shared_without_a_thumbnail(tmp_path: Path) -> None:
    """A 100 000 x 100 000 PNG header in a few hundred bytes: OpenCV refuses to decode it
    with an exception, which must not fail the share (probe is best effort)."""
    import zlib

    from p2pkit.plugins.store import Store

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))
    info = probe(bomb, sniff(bomb.read_bytes(), bomb.name))
    assert info.thumbnail is None
    with Store(tmp_path / "store") as store:
        manifest = store.import_file(bomb)
        assert store.is_complete(manifest.rid) and manifest.thumbnail is None


# ---------------------------------------------------------------------------- decode budget


def _traced_peak(fn: Callable[[], object]) -> tuple[object, int]:
    """``fn()`` and the peak bytes Python allocated meanwhile (OpenCV's output arrays are
    numpy arrays, so a decoded frame shows up here)."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name,header", [
    ("bomb.png", png_header(30000, 30000)),
    ("bomb.jpg", jpeg_header(30000, 30000)),
    ("wide.png", png_header(8000, 8000)),  # 64 MP: decodable by OpenCV, over our budget
])
def test_an_image_declaring_too_many_pixels_is_not_decoded(tmp_path: Path, name: str,
                                                            header: bytes) -> None:
    """A few hundred bytes declaring more than MAX_DECODE_PIXELS: the size comes from the
    header, no frame is allocated, and the share succeeds without a thumbnail."""
    from p2pkit.plugins.store import Store

    bomb = tmp_path / name
    bomb.write_bytes(header)
    width, height = image_size(header, sniff(header).mime)
    assert width * height > MAX_DECODE_PIXELS
    info, peak = _traced_peak(lambda: probe(bomb, sniff(header, name)))
    assert info == MediaInfo(width=width, height=height)
    assert peak < 4 * 1024 * 1024  # a decoded 8000x8000 frame alone is 192 MB
    with Store(tmp_path / "store") as store:
        manifest = store.import_file(bomb)
        assert store.is_complete(manifest.rid)
        assert (manifest.width, manifest.height, manifest.thumbnail) == (width, height, None)


def test_a_large_allowed_jpeg_is_decoded_at_reduced_scale(tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    """4000x3000: the thumbnail needs 160 px, so the JPEG decodes at 1/8 (500x375); a full
    frame would be 36 MB."""
    photo = makers["jpeg"](tmp_path / "big.jpg", w=4000, h=3000)
    info, peak = _traced_peak(lambda: probe(photo, sniff(photo.read_bytes()[:4096])))
    assert isinstance(info, MediaInfo)
    assert (info.width, info.height) == (4000, 3000) and info.thumbnail is not None
    thumb = cv2.imdecode(np.frombuffer(info.thumbnail, np.uint8), cv2.IMREAD_COLOR)
    assert thumb is not None
    assert thumb.shape[:2] == (120, 160)
    assert peak < 4000 * 3000 * 3 // 8


def test_small_images_keep_their_thumbnail(tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    png = makers["png"](tmp_path / "p.png", w=300, h=200)
    info = probe(png, sniff(png.read_bytes()))
    assert (info.width, info.height) == (300, 200) and info.thumbnail is not None
    tiny = makers["png"](tmp_path / "t.png", w=20, h=10)
    info = probe(tiny, sniff(tiny.read_bytes()))
    assert (info.width, info.height) == (20, 10) and info.thumbnail is not None


def test_a_truncated_or_garbled_image_shares_without_a_thumbnail(tmp_path: Path, makers: dict[str, Callable[..., Path]]) -> None:
    from p2pkit.plugins.store import Store

    photo = makers["jpeg"](tmp_path / "photo.jpg", w=640, h=480).read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(photo[:300])  # headers only: the size is known, the pixels are not
    garbled = tmp_path / "garbled.png"
    garbled.write_bytes(png_header(64, 64)[:16] + bytes(range(256)) * 4)  # IHDR length kept, rest junk
    with Store(tmp_path / "store") as store:
        for path in (cut, garbled):
            manifest = store.import_file(path)
            assert store.is_complete(manifest.rid) and manifest.thumbnail is None
