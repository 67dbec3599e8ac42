"""Real media files made on the spot (OpenCV, wave) and stores in temporary directories."""

from __future__ import annotations

import struct
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from p2pkit.plugins.store import Store

PIECE = 16 * 1024  # small pieces so small files have several


def make_png(path: Path, w: int = 160, h: int = 120, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    assert cv2.imwrite(str(path), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return path


def make_jpeg(path: Path, w: int = 320, h: int = 240) -> Path:
    img = np.zeros((h, w, 3), np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(w, h) // 3, (0, 200, 255), -1)
    assert cv2.imwrite(str(path), img)
    return path


def make_wav(path: Path, seconds: float = 1.5, rate: int = 8000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def make_video(path: Path, fourcc: str = "mp4v", frames: int = 25, fps: float = 10.0) -> Path:
    """mp4v (.mp4) and MJPG (.avi) work with the headless OpenCV wheel; avc1 does not."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*fourcc), fps, (96, 64))
    assert writer.isOpened(), f"OpenCV cannot write {fourcc}"
    for i in range(frames):
        frame = np.full((64, 96, 3), (i * 9) % 255, np.uint8)
        cv2.putText(frame, str(i), (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1, (255, 255, 255), 2)
        writer.write(frame)
    writer.release()
    return path


def make_mp3(path: Path, frames: int = 100, xing: bool = False) -> Path:
    """MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, stereo frames of 417 bytes (silence-ish);
    with ``xing`` the first frame carries a Xing header giving the frame count."""
    header = bytes([0xFF, 0xFB, 0x90, 0x00])
    length = 144 * 128000 // 44100  # 417
    body = bytearray(length - 4)
    out = bytearray(b"ID3\x03\x00\x00\x00\x00\x00\x0a" + b"\x00" * 10)  # 10-byte empty tag
    if xing:
        first = bytearray(body)
        first[32:36] = b"Xing"
        first[36:40] = struct.pack(">I", 1)  # flags: frame count present
        first[40:44] = struct.pack(">I", frames)
        out += header + first
    for _ in range(frames):
        out += header + body
    path.write_bytes(bytes(out))
    return path


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "media"
    d.mkdir()
    return {
        "png": make_png(d / "picture.png"),
        "jpeg": make_jpeg(d / "photo.jpg"),
        "wav": make_wav(d / "tone.wav"),
        "mp4": make_video(d / "clip.mp4", "mp4v"),
        "avi": make_video(d / "clip.avi", "MJPG"),
        "mp3": make_mp3(d / "song.mp3"),
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store", piece_size=PIECE) as s:
        yield s


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "other", piece_size=PIECE) as s:
        yield s


@pytest.fixture
def makers() -> dict[str, Callable[..., Path]]:
    """The media makers above, for tests that need special files."""
    return {"png": make_png, "jpeg": make_jpeg, "wav": make_wav, "video": make_video,
            "mp3": make_mp3}
