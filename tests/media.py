"""Media files for tests that need content to share."""

from __future__ import annotations

import random
import wave
from pathlib import Path


def noise_wav(path: Path, size: int, *, seed: int = 5) -> Path:
    """A WAV file of ``size`` bytes (header included) of random 16-bit mono samples:
    incompressible, a recognisable audio type, and the same bytes for the same seed."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(random.Random(seed).randbytes(max(2, (size - 44) // 2 * 2)))
    return path
