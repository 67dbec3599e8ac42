"""The store plugin: FileStore (seed 004 §4.4) plus verified, piece-addressed content.

Usable without a node::

    from p2pkit.plugins.store import Store
    with Store("/tmp/s", limit_bytes=1 << 30) as store:
        manifest = store.import_file("clip.mp4")

In a node it provides the ``store`` capability (``node.store``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from p2pkit.hookspecs import hookimpl
from p2pkit.rids import is_rid

from ._content import ItemInfo, Store
from ._errors import (
    DiskFullError,
    IncompleteContent,
    InvalidSid,
    StoreError,
    StoreFullError,
    UnknownItem,
    UnsupportedMedia,
)
from ._filestore import FileStore, ObjectInfo, check_sid
from ._leaves import LEAF_SIZE, MAX_LEAVES, block_root, leaf_count, leaf_hashes, leaves_root
from ._manifest import DEFAULT_PIECE_SIZE, Manifest
from ._media import HEADER_BYTES as SNIFF_BYTES  # what sniff() needs of a file's start
from ._media import MediaType, sniff
from ._provider import StoreConfig, StoreProvider

__all__ = [
    "DEFAULT_PIECE_SIZE",
    "LEAF_SIZE",
    "MAX_LEAVES",
    "SNIFF_BYTES",
    "DiskFullError",
    "FileStore",
    "IncompleteContent",
    "InvalidSid",
    "ItemInfo",
    "Manifest",
    "MediaType",
    "ObjectInfo",
    "Store",
    "StoreConfig",
    "StoreError",
    "StoreFullError",
    "StoreProvider",
    "UnknownItem",
    "UnsupportedMedia",
    "block_root",
    "check_sid",
    "is_rid",
    "leaf_count",
    "leaf_hashes",
    "leaves_root",
    "sniff",
]


@hookimpl
def p2pkit_capabilities() -> Mapping[str, Callable[[Any], Any]]:
    return {"store": StoreProvider}


@hookimpl
def p2pkit_config_sections() -> Mapping[str, type]:
    return {"store": StoreConfig}
