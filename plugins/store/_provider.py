"""The store as a node capability: config section, provider, fields, idle-handle service."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs
import trio

from p2pkit.events import ContentRemoved, Event, GenericEvent, Notice, changed_setting
from p2pkit.fields import Field, FieldType
from p2pkit.hookspecs import hookimpl

from ._content import Store
from ._errors import StoreError
from ._manifest import DEFAULT_PIECE_SIZE, MAX_PIECE_SIZE, MIN_PIECE_SIZE

MIB = 1024 * 1024


def _piece_size_ok(_inst: Any, _attr: Any, value: int) -> None:
    if not MIN_PIECE_SIZE <= value <= MAX_PIECE_SIZE or value & (value - 1):
        raise ValueError("store.piece_size must be a power of two between 16384 and 16777216")


def _positive(_inst: Any, attr: Any, value: float) -> None:
    if value <= 0:
        raise ValueError(f"store.{attr.name} must be > 0")


@attrs.define
class StoreConfig:
    """``[store]``: how content is cut, kept and cleaned up."""

    piece_size: int = attrs.field(default=DEFAULT_PIECE_SIZE, validator=_piece_size_ok)
    idle_close_s: float = attrs.field(default=5.0, validator=_positive)  # seed: 5 s
    sweep_interval_s: float = attrs.field(default=1.0, validator=_positive)
    copy_shares: bool = False  # False: own shares kept by reference (verified on every read)
    durable: bool = False  # True: fsync every write (survives power loss, slower)
    thumbnail_px: int = 160


class StoreProvider(Store):
    """The node's store: ``<data_dir>/store``, or a temporary directory for an ephemeral
    node (removed when the node stops). Limit from ``cfg.cache_limit_mb``."""

    def __init__(self, node: Any) -> None:
        self.node = node
        cfg = _section(node)
        self._tmpdir: str | None = None
        data_dir = getattr(node, "data_dir", None)
        if data_dir is None:
            self._tmpdir = tempfile.mkdtemp(prefix="p2pkit-store-")
            root = Path(self._tmpdir)
            weakref.finalize(self, shutil.rmtree, self._tmpdir, ignore_errors=True)
        else:
            root = Path(data_dir) / "store"
        settings = getattr(node, "settings", None)
        limit_mb = getattr(settings, "cache_limit_mb", None)
        super().__init__(
            root, piece_size=cfg.piece_size, copy_shares=cfg.copy_shares,
            thumbnail_px=cfg.thumbnail_px, idle_close_s=cfg.idle_close_s,
            durable=cfg.durable and self._tmpdir is None, volatile=self._tmpdir is not None,
            limit_bytes=None if limit_mb is None else int(limit_mb) * MIB,
            monotonic=self._now,
        )
        self.sweep_interval_s = cfg.sweep_interval_s
        # a node with a data directory is usually a real one: its thumbnail decoding runs
        # in a worker thread, off the node's trio thread — unless trio's clock is virtual
        # (a simulated node kept on disk, a test's autojump clock): see virtual_time()
        self.probe_in_thread = self._tmpdir is None
        self.on_content = self._content_event
        self.on_evict = self._evict_event

    _last_now = 0.0

    def _now(self) -> float:
        """trio's clock (virtual in the simulator); the last value seen when called
        outside trio (a worker thread), so idle times stay on one clock."""
        try:
            self._last_now = trio.current_time()
        except RuntimeError:
            pass
        return self._last_now

    # ------------------------------------------------------------------ events out

    def _emit(self, event: Event) -> None:
        emit = getattr(self.node, "emit", None)
        if emit is not None:
            emit(event)

    def _content_event(self, what: str, rid: str) -> None:
        # node.share()/unshare() announce ContentAdded/ContentRemoved themselves; the
        # store only reports what the node cannot know (completion, eviction).
        manifest = self.manifest(rid)
        name = manifest.name if manifest else ""
        self._emit(GenericEvent(kind=f"store.{what}", data={"rid": rid, "name": name}))

    def _evict_event(self, kind: str, key: str, size: int) -> None:
        self._emit(GenericEvent(kind="store.evicted", data={"kind": kind, "key": key, "bytes": size}))
        if kind == "content":  # the network must stop counting us as a provider
            self._emit(ContentRemoved(rid=key, local=True))

    # ------------------------------------------------------------------ hooks

    @hookimpl
    def p2pkit_fields(self, node: Any) -> Iterable[Field]:
        return [
            Field("store.used_bytes", FieldType.INT, lambda: self.used_bytes,
                  description="bytes the store occupies (shares by reference count 0)"),
            Field("store.limit_bytes", FieldType.INT, lambda: self.limit_bytes or 0,
                  description="storage limit in bytes (cfg.cache_limit_mb), 0 = none"),
            Field("store.items", FieldType.INT, lambda: len(self._content) + len(self._objects),
                  description="number of content items and seed resources stored"),
        ]

    @hookimpl
    def p2pkit_services(self, node: Any) -> Iterable[Any]:
        return [self.serve]

    @hookimpl
    def p2pkit_event(self, node: Any, event: Event) -> None:
        change = changed_setting(event)
        if change is None:
            return
        key, value = change
        if key == "cache_limit_mb" and isinstance(value, int) and not isinstance(value, bool) and value > 0:
            try:
                self.set_storage_limit(value * MIB)
            except StoreError as exc:  # evicting writes the metadata: a full disk, say
                self._emit(Notice(level="warning", source="store", message=(
                    f"cfg.cache_limit_mb {value} applies, but nothing could be evicted to "
                    f"fit it: {exc}")))
                return
            if self.used_bytes > value * MIB:  # what is left is pinned or downloading
                self._emit(Notice(level="warning", source="store", message=(
                    f"cfg.cache_limit_mb {value} is below what shared copies and running "
                    f"downloads take ({self.used_bytes / MIB:.1f} MiB, none of it may be "
                    "evicted): a running download that needs more room fails, and no new "
                    "one fits, until the limit is raised or shares are removed")))

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The sweep: every ``sweep_interval_s`` while there are open handles or sizes
        SQLite has not learnt yet; asleep (no timer at all) while the store is idle, which matters
        in the simulator where every distinct wake-up instant costs."""
        self._token = trio.lowlevel.current_trio_token()
        self._wake = trio.Event()
        self.on_activity = self._activity
        task_status.started()
        try:
            while True:
                if self.idle:
                    self._wake = trio.Event()
                    await self._wake.wait()
                await trio.sleep(self.sweep_interval_s)
                self.close_idle()
        finally:
            self.on_activity = None
            self.close()

    _token: Any = None
    _wake: trio.Event | None = None

    def _activity(self) -> None:
        wake = self._wake
        if wake is None or wake.is_set():
            return
        try:
            trio.lowlevel.current_task()
        except RuntimeError:  # a worker thread: hand the wake-up to trio's thread
            if self._token is not None:
                with contextlib.suppress(trio.RunFinishedError):
                    self._token.run_sync_soon(wake.set)
            return
        wake.set()

    def close(self) -> None:
        """Close the store; an ephemeral node's temporary directory is removed."""
        super().close()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)


def _section(node: Any) -> StoreConfig:
    config = getattr(node, "config", None)
    if config is not None:
        with contextlib.suppress(Exception):  # kernel raises ConfigError if unbound
            section = config.section("store")
            if isinstance(section, StoreConfig):
                return section
    return StoreConfig()
