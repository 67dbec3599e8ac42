"""Random number generators derived from the scenario seed.

Every random choice in a simulation draws from a ``random.Random`` whose seed is a hash of
the scenario seed and a label naming its purpose (``"link", "alice", "up"``). The stream a
component sees therefore does not depend on how many other components exist or in which
order they were created, which keeps runs reproducible when a scenario grows.
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, *labels: object) -> int:
    """A 64-bit integer seed for the purpose named by ``labels`` under ``seed``."""
    text = "/".join([str(seed), *(str(label) for label in labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def derive_rng(seed: int, *labels: object) -> random.Random:
    """A fresh RNG for the purpose named by ``labels`` under ``seed``."""
    return random.Random(derive_seed(seed, *labels))


def derive_bytes(seed: int, *labels: object, length: int = 32) -> bytes:
    """Deterministic bytes, e.g. the seed of a node's Ed25519 identity."""
    text = "/".join([str(seed), *(str(label) for label in labels)])
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(f"{text}#{counter}".encode()).digest()
        counter += 1
    return out[:length]
