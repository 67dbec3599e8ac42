"""Errors of the store plugin.

    P2PKitError (kernel)
    └── StoreError               the store cannot do what was asked (I/O, schema, lock)
        ├── InvalidSid           a sid is not a non-empty string of at most 1024 UTF-8 bytes
        ├── UnknownItem          no object with this sid / no content with this rid
        ├── StoreFullError       the storage limit cannot be met even after eviction
        ├── IncompleteContent    export of content that still misses pieces
        └── UnsupportedMedia     an imported file is not audio, video or an image (HTTP 415)
"""

from __future__ import annotations

from p2pkit._exceptions import P2PKitError


class StoreError(P2PKitError):
    """The store cannot do what was asked: I/O failure, newer schema, store in use."""


class InvalidSid(StoreError, ValueError):
    """A sid is not a non-empty string of at most 1024 UTF-8 bytes without NUL."""


class UnknownItem(StoreError, KeyError):
    """No object with this sid, or no content with this rid, is in the store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown item"


class StoreFullError(StoreError):
    """The write does not fit under the storage limit even after evicting what may go."""


class IncompleteContent(StoreError):
    """The content still misses pieces, so it cannot be exported."""


class UnsupportedMedia(StoreError):
    """The file is not audio, video or an image (judged from its bytes); the web UI maps it to 415."""
