import hashlib
import os
import stat
from pathlib import Path

import pytest

from p2pkit import ConfigError, Identity
from p2pkit.identity import node_id_of, verify


def test_node_id_is_sha256_of_public_key() -> None:
    identity = Identity.generate()
    assert identity.node_id == hashlib.sha256(identity.public_key).hexdigest()
    assert node_id_of(identity.public_key) == identity.node_id
    assert len(identity.node_id) == 64


def test_sign_and_verify() -> None:
    identity = Identity.generate()
    signature = identity.sign(b"hello")
    assert verify(identity.public_key, signature, b"hello")
    assert not verify(identity.public_key, signature, b"hellO")
    assert not verify(Identity.generate().public_key, signature, b"hello")
    assert not verify(b"short", signature, b"hello")
    assert not verify(identity.public_key, b"\x00" * 64, b"hello")


def test_a_key_seen_before_still_checks_every_signature() -> None:
    identity, other = Identity.generate(), Identity.generate()
    for i in range(3):  # the same key again and again: every answer is its own
        message = b"message %d" % i
        assert verify(identity.public_key, identity.sign(message), message)
        assert not verify(identity.public_key, identity.sign(message), message + b"!")
        assert not verify(identity.public_key, other.sign(message), message)
    assert not verify(b"\xff" * 32, identity.sign(b"m"), b"m")  # not a valid key encoding


def test_persisted_with_mode_0600_and_reloaded(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    first = Identity.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Identity.load_or_create(path).node_id == first.node_id


def test_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    path.write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="corrupt"):
        Identity.load_or_create(path)


def test_seeded_identity_is_deterministic() -> None:
    assert Identity.from_seed(b"\x01" * 32).node_id == Identity.from_seed(b"\x01" * 32).node_id
    with pytest.raises(ValueError):
        Identity.from_seed(b"\x01")


# RFC 8032 §7.1, TEST 2: seed, public key, one-byte message, signature.
RFC8032_SEED = bytes.fromhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb")
RFC8032_PUBLIC = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
RFC8032_SIGNATURE = bytes.fromhex(
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
    "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
)


def test_standard_ed25519_so_identity_files_and_signatures_outlive_the_library() -> None:
    identity = Identity.from_seed(RFC8032_SEED)
    assert identity.public_key == RFC8032_PUBLIC
    assert identity.sign(b"\x72") == RFC8032_SIGNATURE
    assert verify(RFC8032_PUBLIC, RFC8032_SIGNATURE, b"\x72")


def test_an_identity_file_is_the_32_byte_seed(tmp_path: Path) -> None:
    path = tmp_path / "identity.key"
    path.write_bytes(RFC8032_SEED)  # what every version of p2pkit wrote
    assert Identity.load_or_create(path).public_key == RFC8032_PUBLIC


def test_verify_takes_any_bytes_like_and_never_raises() -> None:
    identity = Identity.from_seed(RFC8032_SEED)
    assert verify(bytearray(RFC8032_PUBLIC), memoryview(RFC8032_SIGNATURE), bytearray(b"\x72"))
    assert not verify(RFC8032_PUBLIC, RFC8032_SIGNATURE, b"")
    assert not verify(RFC8032_PUBLIC[:31] + b"\x00\x00", RFC8032_SIGNATURE, b"\x72")
    assert identity.public_key == RFC8032_PUBLIC


def test_a_small_order_key_proves_nothing() -> None:
    # The identity point: with it, (R, S) = (identity, 0) "verifies" any message under a
    # lax check. A peer claiming this key must not be accepted.
    identity_point = b"\x01" + b"\x00" * 31
    assert not verify(identity_point, identity_point + b"\x00" * 32, b"any message")
