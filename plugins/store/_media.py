"""What kind of media a file is, judged from its bytes, and what can be read from it.

``sniff(header, name)`` looks at magic numbers (the extension only refines a container
that holds either audio or video, such as MP4/M4A or Ogg). ``probe(path, category)``
reads duration, size and a small JPEG thumbnail with OpenCV (images, video), the stdlib
``wave`` (WAV) or a frame-header parser (MP3); it is best effort and never raises for a
file it cannot read.

Shared files come from strangers (web UI uploads), so decoding is bounded: an image's
size is read from its header first (:mod:`._imagesize`) and nothing is decoded past
``MAX_DECODE_PIXELS`` or ``MAX_DECODE_BYTES``, or when the header cannot be read; the
manifest then gets the declared size and no thumbnail. Allowed images are decoded at
1/2, 1/4 or 1/8 scale when the thumbnail is that much smaller (JPEG decodes natively at
that scale; the other OpenCV decoders shrink after decoding, hence the budget). A video
whose reported frame size is over the budget gets no frame read.
"""

from __future__ import annotations

import contextlib
import struct
import wave
from pathlib import Path
from typing import Any

import attrs

from ._errors import UnsupportedMedia
from ._imagesize import BadImageHeader, image_size

HEADER_BYTES = 4096
THUMBNAIL_PX = 160  # longest side
# The most pixels probe() decodes (a 3-byte BGR frame of 150 MB at most); bigger images are
# shared with their declared size and no thumbnail. 50 MP is above any phone camera.
MAX_DECODE_PIXELS = 50_000_000
# Image files larger than this are not read into memory for decoding (the header is still
# read for the size): no real image under the pixel budget needs more.
MAX_DECODE_BYTES = 256 * 1024 * 1024
SIZE_HEADER_BYTES = 1024 * 1024  # enough for a JPEG's APP segments before its frame header
THUMBNAIL_QUALITY = 70

_AUDIO_EXTS = {".m4a", ".m4b", ".aac", ".mp3", ".oga", ".ogg", ".opus", ".weba", ".mka"}


@attrs.frozen
class MediaType:
    mime: str
    category: str  # "audio" | "video" | "image"


def _ftyp(header: bytes, ext: str) -> MediaType | None:
    if header[4:8] != b"ftyp":
        return None
    brand = header[8:12]
    if brand in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
        return MediaType("image/avif" if brand == b"avif" else "image/heic", "image")
    if brand in (b"M4A ", b"M4B ", b"M4P ", b"F4A ") or ext in (".m4a", ".m4b"):
        return MediaType("audio/mp4", "audio")
    if brand == b"qt  ":
        return MediaType("video/quicktime", "video")
    if brand.startswith(b"3g"):
        return MediaType("video/3gpp", "video")
    return MediaType("video/mp4", "video")


def _riff(header: bytes) -> MediaType | None:
    if header[:4] != b"RIFF":
        return None
    kind = header[8:12]
    return {
        b"WAVE": MediaType("audio/wav", "audio"),
        b"AVI ": MediaType("video/x-msvideo", "video"),
        b"WEBP": MediaType("image/webp", "image"),
    }.get(kind)


def _ebml(header: bytes, ext: str) -> MediaType | None:
    if header[:4] != b"\x1a\x45\xdf\xa3":
        return None
    webm = b"webm" in header[:64]
    if ext in (".mka", ".weba"):
        return MediaType("audio/webm" if webm else "audio/x-matroska", "audio")
    return MediaType("video/webm" if webm else "video/x-matroska", "video")


def _ogg(header: bytes) -> MediaType | None:
    if header[:4] != b"OggS":
        return None
    if b"theora" in header[:256] or b"\x80theora" in header:
        return MediaType("video/ogg", "video")
    return MediaType("audio/ogg", "audio")


def _mp3_frame_ok(b: bytes, i: int) -> bool:
    """A plausible MPEG audio frame header at ``i`` (sync, version, layer, rates valid)."""
    if i + 4 > len(b) or b[i] != 0xFF or (b[i + 1] & 0xE0) != 0xE0:
        return False
    version = (b[i + 1] >> 3) & 3
    layer = (b[i + 1] >> 1) & 3
    bitrate = b[i + 2] >> 4
    rate = (b[i + 2] >> 2) & 3
    return version != 1 and layer != 0 and bitrate not in (0, 15) and rate != 3


def _mpeg_audio(header: bytes) -> MediaType | None:
    if header[:3] == b"ID3":
        return MediaType("audio/mpeg", "audio")
    if len(header) >= 2 and header[0] == 0xFF and header[1] in (0xF1, 0xF9):
        return MediaType("audio/aac", "audio")
    if _mp3_frame_ok(header, 0):
        # one sync word is weak evidence; require a second frame where the first says
        length = _mp3_frame_length(header, 0)
        if length and (len(header) < length + 4 or _mp3_frame_ok(header, length)):
            return MediaType("audio/mpeg", "audio")
    return None


_SIMPLE: tuple[tuple[int, bytes, MediaType], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", MediaType("image/png", "image")),
    (0, b"\xff\xd8\xff", MediaType("image/jpeg", "image")),
    (0, b"GIF87a", MediaType("image/gif", "image")),
    (0, b"GIF89a", MediaType("image/gif", "image")),
    (0, b"II*\x00", MediaType("image/tiff", "image")),
    (0, b"MM\x00*", MediaType("image/tiff", "image")),
    (0, b"fLaC", MediaType("audio/flac", "audio")),
    (0, b"FLV\x01", MediaType("video/x-flv", "video")),
    (0, b"\x00\x00\x01\xba", MediaType("video/mpeg", "video")),
    (0, b"\x00\x00\x01\xb3", MediaType("video/mpeg", "video")),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", MediaType("video/x-ms-asf", "video")),
    (0, b"#!AMR", MediaType("audio/amr", "audio")),
)


def sniff(header: bytes, name: str = "") -> MediaType:
    """The media type of a file from its first bytes; UnsupportedMedia if not media."""
    ext = Path(name).suffix.lower()
    for offset, magic, media in _SIMPLE:
        if header[offset:offset + len(magic)] == magic:
            return media
    for detect in (_riff(header), _ftyp(header, ext), _ebml(header, ext), _ogg(header)):
        if detect is not None:
            return detect
    if header[:4] == b"FORM" and header[8:12] in (b"AIFF", b"AIFC"):
        return MediaType("audio/aiff", "audio")
    if header[:2] == b"BM" and len(header) >= 26 and struct.unpack_from("<I", header, 14)[0] in (
        12, 40, 52, 56, 64, 108, 124
    ):
        return MediaType("image/bmp", "image")
    if len(header) >= 376 and header[0] == 0x47 and header[188] == 0x47 and header[376] == 0x47:
        return MediaType("video/mp2t", "video")
    mpeg = _mpeg_audio(header)
    if mpeg is not None:
        return mpeg
    raise UnsupportedMedia(
        f"{name or 'file'}: not an audio, video or image file (unrecognised content)"
    )


# ---------------------------------------------------------------------------- probing


@attrs.frozen
class MediaInfo:
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = None


def probe(path: Path, media: MediaType, thumbnail_px: int = THUMBNAIL_PX) -> MediaInfo:
    """Duration, size and thumbnail where they can be read; empty fields otherwise."""
    try:
        if media.category == "image":
            return _probe_image(path, media, thumbnail_px)
        if media.category == "video":
            return _probe_video(path, thumbnail_px)
        if media.mime == "audio/wav":
            return MediaInfo(duration=_wav_duration(path))
        if media.mime == "audio/mpeg":
            return MediaInfo(duration=mp3_duration(path))
    except (OSError, ValueError, EOFError, wave.Error, struct.error):
        pass
    return MediaInfo()


def _thumbnail(frame: Any, px: int) -> bytes | None:
    import cv2  # imported lazily: OpenCV takes a while to load

    h, w = frame.shape[:2]
    if not h or not w:
        return None
    scale = min(1.0, px / max(h, w))
    small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else frame
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_QUALITY])
    return bytes(buf) if ok and len(buf) <= 64 * 1024 else None


def _reduction(width: int, height: int, px: int) -> tuple[int, int]:
    """(OpenCV read flag, scale) decoding at the smallest scale still >= the thumbnail."""
    import cv2

    longest = max(width, height)
    for scale, flag in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                        (2, cv2.IMREAD_REDUCED_COLOR_2)):
        if longest // scale >= px:
            return flag, scale
    return cv2.IMREAD_COLOR, 1


def _probe_image(path: Path, media: MediaType, px: int) -> MediaInfo:
    import cv2
    import numpy as np

    small = path.stat().st_size <= MAX_DECODE_BYTES
    data = path.read_bytes() if small else _read_head(path, SIZE_HEADER_BYTES)
    try:
        width, height = image_size(data, media.mime)
    except BadImageHeader:
        return MediaInfo()  # size unknown: decoding could cost anything
    if width * height > MAX_DECODE_PIXELS or not small:
        return MediaInfo(width=width, height=height)
    flag, _scale = _reduction(width, height, px)
    try:
        frame = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    except cv2.error:  # a decoder refusing the file raises instead of returning None
        frame = None
    if frame is None:
        if media.mime == "image/gif":  # older OpenCV decodes GIF only as video
            return _probe_video(path, px, image=True)
        return MediaInfo(width=width, height=height)
    h, w = frame.shape[:2]
    if (w > h and height > width) or (h > w and width > height):
        width, height = height, width  # EXIF orientation turned the decoded frame
    return MediaInfo(width=width, height=height, thumbnail=_thumbnail(frame, px))


def _read_head(path: Path, n: int) -> bytes:
    with path.open("rb") as f:
        return f.read(n)


def _probe_video(path: Path, px: int, image: bool = False) -> MediaInfo:
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return MediaInfo()
        frames = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        fps = cap.get(cv2.CAP_PROP_FPS)
        duration = None
        if not image and frames > 0 and fps > 0:
            duration = round(float(frames) / float(fps), 3)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if not (0 < width * height <= MAX_DECODE_PIXELS):  # unknown or absurd: no frame
            sized = width > 0 and height > 0
            return MediaInfo(duration=duration, width=width if sized else None,
                             height=height if sized else None)
        ok, frame = cap.read()
        if not ok or frame is None:
            return MediaInfo(duration=duration)
        h, w = frame.shape[:2]
        return MediaInfo(duration=duration, width=int(w), height=int(h),
                         thumbnail=_thumbnail(frame, px))
    except cv2.error:  # a backend refusing the file raises instead of reporting
        return MediaInfo()
    finally:
        cap.release()


def _wav_duration(path: Path) -> float | None:
    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        return round(w.getnframes() / rate, 3) if rate else None


# ---------------------------------------------------------------------------- mp3

_BITRATES = {  # kbit/s by (MPEG-1?, layer) ; index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_header(b: bytes, i: int) -> tuple[int, int, int, bool, int] | None:
    """(bitrate bit/s, sample rate, samples per frame, mono, frame length) or None."""
    if not _mp3_frame_ok(b, i):
        return None
    version = (b[i + 1] >> 3) & 3
    layer = 4 - ((b[i + 1] >> 1) & 3)
    mpeg1 = version == 3
    bitrate = _BITRATES[(mpeg1, layer)][(b[i + 2] >> 4) - 1] * 1000
    rate = _RATES[version][(b[i + 2] >> 2) & 3]
    padding = (b[i + 2] >> 1) & 1
    mono = (b[i + 3] >> 6) == 3
    if layer == 1:
        return bitrate, rate, 384, mono, (12 * bitrate // rate + padding) * 4
    samples = 1152 if (layer == 2 or mpeg1) else 576
    return bitrate, rate, samples, mono, samples // 8 * bitrate // rate + padding


def _mp3_frame_length(b: bytes, i: int) -> int:
    header = _mp3_header(b, i)
    return header[4] if header else 0


def mp3_duration(path: Path) -> float | None:
    """Xing/Info/VBRI frame count when present, else a constant-bitrate estimate."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(64 * 1024)
    start = 0  # where ``head`` starts in the file
    if head[:3] == b"ID3" and len(head) >= 10:
        tag = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
        skip = 10 + tag + (10 if head[5] & 0x10 else 0)
        if skip + 4 > size:
            return None  # a tag that claims more than the file holds: nothing to read
        if skip + 4 > len(head):
            # read on from the tag's end (a tag declares up to 256 MiB: padding the
            # buffer up to it let a 1 KiB upload allocate that much)
            with path.open("rb") as f:
                f.seek(skip)
                head = f.read(64 * 1024)
            start = skip
        else:
            head = head[skip:]
            start = skip
    for i in range(0, min(len(head) - 4, 16 * 1024)):
        header = _mp3_header(head, i)
        if header is None:
            continue
        bitrate, rate, samples, _mono, length = header
        frame = head[i:i + max(length, 200)]
        for marker in (b"Xing", b"Info"):
            pos = frame.find(marker)
            if 0 <= pos < 64 and len(frame) >= pos + 12 and frame[pos + 7] & 1:
                count = int(struct.unpack_from(">I", frame, pos + 8)[0])
                return round(count * samples / rate, 3)
        pos = frame.find(b"VBRI")
        if pos == 36 and len(frame) >= pos + 18:
            count = int(struct.unpack_from(">I", frame, pos + 14)[0])
            return round(count * samples / rate, 3)
        with contextlib.suppress(ZeroDivisionError):
            return round((size - start - i) * 8 / bitrate, 3)
    return None
