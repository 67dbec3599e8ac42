"""Image sizes read from headers without decoding: real encoder output, crafted headers
declaring huge sizes, and fuzzing (only BadImageHeader may come out of garbage)."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from p2pkit.plugins.store._imagesize import BadImageHeader, image_size
from p2pkit.plugins.store._media import sniff

MIMES = ("image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp", "image/tiff",
         "image/avif", "image/heic")


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` followed by a tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def jpeg_header(width: int, height: int) -> bytes:
    """SOI, an APP0 segment, a baseline SOF0 declaring the size, a scan of junk, EOI."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + bytes.fromhex(
        "011100021100031100")
    return b"\xff\xd8" + app0 + sof + b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00" + bytes(200) + b"\xff\xd9"


def encoded(ext: str, w: int = 50, h: int = 30, params: tuple[int, ...] = (), channels: int = 3) -> bytes:
    img = np.random.default_rng(1).integers(0, 255, (h, w, channels), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("ext,params,channels", [
    (".png", (), 3), (".jpg", (), 3), (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), 3),
    (".gif", (), 3), (".bmp", (), 3), (".tiff", (), 3), (".avif", (), 3),
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), 3),  # VP8 (lossy)
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), 3),  # VP8L (lossless)
    (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), 4),  # VP8X (lossy with alpha)
])
def test_sizes_of_real_encoder_output(ext: str, params: tuple[int, ...], channels: int) -> None:
    data = encoded(ext, 50, 30, params, channels)
    assert image_size(data, sniff(data[:4096]).mime) == (50, 30)


def test_crafted_headers_declaring_huge_sizes() -> None:
    assert image_size(png_header(30000, 30000), "image/png") == (30000, 30000)
    assert image_size(jpeg_header(20000, 15000), "image/jpeg") == (20000, 15000)
    gif = b"GIF89a" + struct.pack("<HH", 65535, 65535) + bytes(10)
    assert image_size(gif, "image/gif") == (65535, 65535)
    bmp = b"BM" + struct.pack("<IHHII", 1000, 0, 0, 54, 40) + struct.pack("<ii", 40000, -40000) + bytes(30)
    assert image_size(bmp, "image/bmp") == (40000, 40000)  # negative height: top-down rows
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + bytes(8) + (16383).to_bytes(3, "little") * 2
    assert image_size(vp8x, "image/webp") == (16384, 16384)
    tiff = b"MM\x00*" + struct.pack(">IH", 8, 2) + struct.pack(">HHII", 256, 4, 1, 90000) + struct.pack(
        ">HHIHH", 257, 3, 1, 7, 0)
    assert image_size(tiff, "image/tiff") == (90000, 7)


def test_big_endian_tiff_and_heic_ispe() -> None:
    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    ispe = box(b"ispe", bytes(4) + struct.pack(">II", 4032, 3024))
    heic = box(b"ftyp", b"heic\x00\x00\x00\x00") + box(b"meta", bytes(4) + box(b"hdlr", bytes(20))
                                                        + box(b"iprp", box(b"ipco", ispe)))
    assert sniff(heic).mime == "image/heic"
    assert image_size(heic, "image/heic") == (4032, 3024)


@pytest.mark.parametrize("data,mime", [
    (png_header(0, 10), "image/png"),  # a zero side
    (png_header(10, 10)[:20], "image/png"),  # truncated in IHDR
    (b"\xff\xd8\xff\xda" + bytes(50), "image/jpeg"),  # scan before any frame header
    (jpeg_header(100, 0), "image/jpeg"),  # height left to a DNL segment
    (jpeg_header(100, 100)[:25], "image/jpeg"),  # cut before the frame header
    (b"\xff\xd8\xff\xe0\x00\x01", "image/jpeg"),  # segment length below 2
    (b"BM" + struct.pack("<IHHII", 1000, 0, 0, 54, 16) + bytes(30), "image/bmp"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(20), "image/webp"),  # no start code
    (b"II*\x00" + struct.pack("<I", 1 << 30), "image/tiff"),  # IFD past the end
    (b"\x00\x00\x00\x10ftypavif\x00\x00\x00\x00\xff\xff\xff\xffmeta", "image/avif"),  # box overruns
    (b"anything", "image/x-unknown"),
])
def test_garbage_headers_are_refused(data: bytes, mime: str) -> None:
    with pytest.raises(BadImageHeader):
        image_size(data, mime)


def _check(data: bytes, mime: str) -> None:
    try:
        width, height = image_size(data, mime)
    except BadImageHeader:
        return
    assert 0 < width < 1 << 31 and 0 < height < 1 << 31


@given(st.binary(max_size=400), st.sampled_from(MIMES))
def test_fuzz_random_bytes(data: bytes, mime: str) -> None:
    _check(data, mime)


VALID = [png_header(64, 48), jpeg_header(64, 48), encoded(".jpg"), encoded(".gif"),
         encoded(".bmp"), encoded(".tiff"), encoded(".avif"),
         encoded(".webp", params=(cv2.IMWRITE_WEBP_QUALITY, 80)),
         encoded(".webp", params=(cv2.IMWRITE_WEBP_QUALITY, 101))]


@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)),
                                        max_size=8), st.integers(0, 700))
def test_fuzz_mutated_real_headers(data: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    """Real headers with bytes changed and cut short: the parsers' length fields and offsets
    point anywhere, which is what a hostile file does."""
    mime = sniff(data[:4096]).mime
    mutated = bytearray(data[:max(cut, 12)])
    for pos, value in flips:
        if pos < len(mutated):
            mutated[pos] = value
    for mime_tried in (mime, *MIMES):
        _check(bytes(mutated), mime_tried)
