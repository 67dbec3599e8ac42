"""The public surface is what the docs describe, and the store satisfies the kernel's
``Store`` protocol."""

from __future__ import annotations

from pathlib import Path

import p2pkit.plugins.store as store_plugin
from p2pkit.plugins.store import Store

from p2pkit.capabilities import Store as StoreProtocol

DOC = (Path(__file__).resolve().parents[3] / "docs" / "plugins" / "store.md").read_text()


def test_exports_exist_and_are_documented() -> None:
    for name in store_plugin.__all__:
        assert hasattr(store_plugin, name), name
    for name in ("Store", "FileStore", "Manifest", "StoreFullError", "UnsupportedMedia",
                 "InvalidSid", "UnknownItem", "IncompleteContent", "StoreError"):
        assert name in store_plugin.__all__ and f"{name}" in DOC, name


def test_documented_methods_exist() -> None:
    for method in ("create", "append", "read", "set_storage_limit", "evict_until", "close_idle",
                   "import_file", "import_file_async", "begin_download", "write_piece",
                   "has_piece", "have_bitmap", "missing_pieces", "read_piece", "read_content",
                   "is_complete", "manifest", "manifest_bytes", "items", "item", "remove",
                   "pin_content", "verify", "export", "export_async", "room_for_download"):
        assert callable(getattr(Store, method)), method
        assert f"{method}(" in DOC or f"`{method}`" in DOC, method


def test_satisfies_the_kernel_protocol(tmp_path: Path) -> None:
    with Store(tmp_path / "s") as s:
        assert isinstance(s, StoreProtocol)


def test_plugin_hooks() -> None:
    assert store_plugin.p2pkit_capabilities() == {"store": store_plugin.StoreProvider}
    assert store_plugin.p2pkit_config_sections() == {"store": store_plugin.StoreConfig}
