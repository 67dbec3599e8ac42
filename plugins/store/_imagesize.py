"""The pixel size an image file declares in its header, read without decoding it.

A few hundred bytes of PNG can declare 30000 x 30000 pixels; a decoder would allocate
gigabytes before finding out the data is missing. The probe asks these parsers first and
decodes only what fits its pixel budget. Every parser validates what it reads and raises
:class:`BadImageHeader` (and nothing else) for bytes it cannot make sense of, so a hostile
file costs at most a bounded walk over the bytes it is given.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

__all__ = ["BadImageHeader", "image_size"]

# PNG allows 2**31 - 1; nothing real is wider than this on either side.
MAX_SIDE = 1 << 31


class BadImageHeader(ValueError):
    """The bytes do not hold a readable image header of the given type."""


def _u(fmt: str, data: bytes, offset: int) -> tuple[int, ...]:
    """Integers at ``offset``; BadImageHeader past the end (not struct.error)."""
    if offset < 0 or offset + struct.calcsize(fmt) > len(data):
        raise BadImageHeader("image header is truncated")
    return struct.unpack_from(fmt, data, offset)


def _checked(width: int, height: int) -> tuple[int, int]:
    if not (0 < width < MAX_SIDE and 0 < height < MAX_SIDE):
        raise BadImageHeader(f"implausible image size {width}x{height}")
    return width, height


def _png(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise BadImageHeader("PNG without an IHDR chunk first")
    (length,) = _u(">I", data, 8)
    if length != 13:
        raise BadImageHeader("PNG IHDR chunk has the wrong length")
    return _checked(*_u(">II", data, 16))


def _gif(data: bytes) -> tuple[int, int]:
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        raise BadImageHeader("not a GIF")
    return _checked(*_u("<HH", data, 6))


def _bmp(data: bytes) -> tuple[int, int]:
    if data[:2] != b"BM":
        raise BadImageHeader("not a BMP")
    (dib,) = _u("<I", data, 14)
    if dib == 12:  # BITMAPCOREHEADER: unsigned 16-bit sides
        return _checked(*_u("<HH", data, 18))
    if dib < 40:
        raise BadImageHeader(f"BMP info header of {dib} bytes")
    width, height = _u("<ii", data, 18)
    return _checked(width, abs(height))  # a negative height means top-down rows


def _webp(data: bytes) -> tuple[int, int]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise BadImageHeader("not a WebP")
    kind = data[12:16]
    if kind == b"VP8 ":  # lossy: key frame tag, start code, 14-bit sides
        if data[23:26] != b"\x9d\x01\x2a":
            raise BadImageHeader("WebP VP8 without a start code")
        width, height = _u("<HH", data, 26)
        return _checked(width & 0x3FFF, height & 0x3FFF)
    if kind == b"VP8L":  # lossless: signature byte, then 14-bit (side - 1) fields
        if data[20:21] != b"\x2f":
            raise BadImageHeader("WebP VP8L without its signature")
        (bits,) = _u("<I", data, 21)
        return _checked((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8X":  # extended: 24-bit (side - 1) canvas fields
        raw = data[24:30]
        if len(raw) != 6:
            raise BadImageHeader("image header is truncated")
        return _checked(int.from_bytes(raw[:3], "little") + 1, int.from_bytes(raw[3:], "little") + 1)
    raise BadImageHeader(f"WebP with an unknown first chunk {kind!r}")


# Start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT/JPG/DAC.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field


def _jpeg(data: bytes) -> tuple[int, int]:
    if data[:2] != b"\xff\xd8":
        raise BadImageHeader("not a JPEG")
    i = 2
    while i < len(data):  # every step moves i forward, so the walk ends
        if data[i] != 0xFF:
            raise BadImageHeader("JPEG segment does not start with a marker")
        while i < len(data) and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= len(data):
            break
        marker = data[i]
        i += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0xDA, 0x00):
            raise BadImageHeader("JPEG has no frame header before its image data")
        (length,) = _u(">H", data, i)
        if length < 2:
            raise BadImageHeader("JPEG segment with a length below 2")
        if marker in _SOF:
            height, width = _u(">HH", data, i + 3)  # after length and sample precision
            return _checked(width, height)  # height 0 (set later by DNL): refused
        i += length
    raise BadImageHeader("image header is truncated")


def _tiff(data: bytes) -> tuple[int, int]:
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None:
        raise BadImageHeader("not a TIFF")
    (ifd,) = _u(order + "I", data, 4)
    (count,) = _u(order + "H", data, ifd)
    sides: dict[int, int] = {}
    for n in range(count):
        tag, kind = _u(order + "HH", data, ifd + 2 + 12 * n)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG, inline
            if kind == 3:
                sides[tag] = _u(order + "H", data, ifd + 2 + 12 * n + 8)[0]
            elif kind == 4:
                sides[tag] = _u(order + "I", data, ifd + 2 + 12 * n + 8)[0]
            else:
                raise BadImageHeader(f"TIFF size tag of type {kind}")
    if 256 not in sides or 257 not in sides:
        raise BadImageHeader("TIFF without width and length tags")
    return _checked(sides[256], sides[257])


_CONTAINERS = (b"meta", b"iprp", b"ipco")  # the path to the image spatial extents


def _isobmff(data: bytes) -> tuple[int, int]:
    """HEIC/AVIF: the first ``ispe`` property (meta > iprp > ipco > ispe)."""
    start, end, depth = 0, len(data), 0
    while start + 8 <= end:  # every step moves start forward or goes one level down
        (size,) = _u(">I", data, start)
        kind = data[start + 4:start + 8]
        body = start + 8
        if size == 1:
            (size,) = _u(">Q", data, start + 8)
            body += 8
        elif size == 0:
            size = end - start
        if size < body - start or start + size > end:
            raise BadImageHeader("ISO media box overruns its parent")
        if depth < len(_CONTAINERS) and kind == _CONTAINERS[depth]:
            # meta is a full box: 4 bytes of version and flags before its children
            start, end, depth = body + (4 if kind == b"meta" else 0), start + size, depth + 1
            continue
        if depth == len(_CONTAINERS) and kind == b"ispe":
            return _checked(*_u(">II", data, body + 4))
        start += size
    raise BadImageHeader("no image spatial extents (ispe) box")


_PARSERS: dict[str, Callable[[bytes], tuple[int, int]]] = {
    "image/png": _png,
    "image/jpeg": _jpeg,
    "image/gif": _gif,
    "image/bmp": _bmp,
    "image/webp": _webp,
    "image/tiff": _tiff,
    "image/avif": _isobmff,
    "image/heic": _isobmff,
}


def image_size(data: bytes, mime: str) -> tuple[int, int]:
    """(width, height) declared by the header of ``data``, an image of type ``mime``.

    BadImageHeader if the bytes do not hold such a header (or the type has no parser).
    """
    parse = _PARSERS.get(mime)
    if parse is None:
        raise BadImageHeader(f"no size parser for {mime}")
    return parse(data)
