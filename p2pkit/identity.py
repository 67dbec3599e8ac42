"""Node identity: an Ed25519 key pair; the node id is SHA-256 of the public key (hex).

libsodium (PyNaCl) signs and verifies: measured on the 2-core machine that runs our
benchmarks, 28 µs and 73 µs for a handshake-sized message against 41 µs and 143 µs with
OpenSSL (``cryptography``), and every session's handshake does both twice
(docs/simulator.md, *Speed*). The price is on large messages, where libsodium's SHA-512
is slower and its API copies the message: from ~32 KiB on OpenSSL was faster (1 MiB:
verify 5.2 ms against 1.8 ms) — flooding's signed lists are usually a few KiB and capped
at 1 MiB. Ed25519 is deterministic, so keys, signatures and identity files are the same
with either library; verification is stricter (small-order keys, non-canonical
encodings are rejected).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import CryptoError

from ._exceptions import ConfigError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32


def node_id_of(public_key: bytes) -> str:
    """The node id (64 hex characters) that belongs to a raw Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()


BytesLike = bytes | bytearray | memoryview


def verify(public_key: BytesLike, signature: BytesLike, data: BytesLike) -> bool:
    """True if ``signature`` is ``public_key``'s signature of ``data``; never raises."""
    # Must stay: PyNaCl passes the key to C without checking its length.
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        # libsodium also rejects small-order keys and non-canonical signatures
        crypto_sign_open(bytes(signature) + bytes(data), bytes(public_key))
    except CryptoError:  # BadSignatureError, or a key that is not a curve point
        return False
    return True


class Identity:
    """A node's key pair. Create with :meth:`generate`, :meth:`from_seed` or
    :meth:`load_or_create` (persists the 32-byte seed with file mode 0600)."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError("an identity seed is exactly 32 bytes")
        self._seed = seed
        self.public_key, self._secret_key = crypto_sign_seed_keypair(seed)
        self.node_id: str = node_id_of(self.public_key)

    @classmethod
    def generate(cls) -> Identity:
        return cls(os.urandom(SEED_BYTES))

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """Deterministic identity from 32 seed bytes (the simulator derives them from its seed)."""
        return cls(seed)

    @classmethod
    def load_or_create(cls, path: Path) -> Identity:
        if path.exists():
            raw = path.read_bytes()
            if len(raw) != SEED_BYTES:
                raise ConfigError(f"identity file {path} is corrupt (expected 32 bytes)")
            return cls.from_seed(raw)
        identity = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(identity._seed)
        return identity

    def sign(self, data: bytes) -> bytes:
        return crypto_sign(data, self._secret_key)[:SIGNATURE_BYTES]

    def __repr__(self) -> str:
        return f"Identity(node_id={self.node_id[:16]}…)"
