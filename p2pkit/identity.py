"""Node identity: an Ed25519 key pair; the node id is SHA-256 of the public key (hex)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ._exceptions import ConfigError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def node_id_of(public_key: bytes) -> str:
    """The node id (64 hex characters) that belongs to a raw Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()


def verify(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s signature of ``data``; never raises."""
    if len(public_key) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


class Identity:
    """A node's key pair. Create with :meth:`generate`, :meth:`from_seed` or
    :meth:`load_or_create` (persists the key with file mode 0600)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self.public_key: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.node_id: str = node_id_of(self.public_key)

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """Deterministic identity from 32 seed bytes (the simulator derives them from its seed)."""
        if len(seed) != 32:
            raise ValueError("an identity seed is exactly 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def load_or_create(cls, path: Path) -> Identity:
        if path.exists():
            raw = path.read_bytes()
            if len(raw) != 32:
                raise ConfigError(f"identity file {path} is corrupt (expected 32 bytes)")
            return cls.from_seed(raw)
        identity = cls.generate()
        raw = identity._private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        return identity

    def sign(self, data: bytes) -> bytes:
        return self._private_key.sign(data)

    def __repr__(self) -> str:
        return f"Identity(node_id={self.node_id[:16]}…)"
