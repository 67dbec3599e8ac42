"""The store inside a real node: data directory, fields, settings, events, idle service."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
from p2pkit.plugins.store import Store, StoreProvider
from p2pkit.plugins.store._provider import MIB

from p2pkit import NodeConfig, open_node
from p2pkit.events import Event, GenericEvent
from p2pkit.hookspecs import hookimpl

# Only the store: other built-ins (transport, discovery...) are not under test here.
OTHER_BUILTINS = ["rudp", "flooding", "swarm"]


def config(tmp_path: Path | None = None, store: dict[str, object] | None = None,
           cfg: dict[str, object] | None = None) -> NodeConfig:
    node: dict[str, object] = {"host": "127.0.0.1", "port": 0, "disable": OTHER_BUILTINS, "repeater": "off"}
    if tmp_path is None:
        node["ephemeral"] = True
    else:
        node["data_dir"] = str(tmp_path)
    return NodeConfig.from_mapping({"node": node, "store": store or {}, "cfg": cfg or {}})


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def p2pkit_event(self, node: object, event: Event) -> None:
        self.events.append(event)


async def test_ephemeral_node_uses_a_temporary_store(media: dict[str, Path]) -> None:
    async with open_node(config(cfg={"cache_limit_mb": 3})) as node:
        store = node.store
        assert isinstance(store, StoreProvider)
        root = store.root
        assert root.is_dir()
        assert node.fields.get("store.limit_bytes") == 3 * MIB
        manifest = await node.share(media["png"], title="Noise")
        assert manifest.title == "Noise"
        assert node.fields.get("store.items") == 1
        assert node.fields.get("store.used_bytes") == 0  # by reference
    assert not root.exists()  # removed with the node


async def test_persistent_node_keeps_its_store(tmp_path: Path, media: dict[str, Path]) -> None:
    async with open_node(config(tmp_path / "data", store={"copy_shares": True})) as node:
        manifest = await node.share(media["wav"])
        assert node.store.root == tmp_path / "data" / "store"
        assert node.fields.get("store.used_bytes") == manifest.size
    async with open_node(config(tmp_path / "data")) as node:
        assert node.store.is_complete(manifest.rid)
        assert node.store.read_content(manifest.rid, 0, 10) == media["wav"].read_bytes()[:10]


async def test_cache_limit_setting_drives_the_limit(tmp_path: Path) -> None:
    recorder = Recorder()
    async with open_node(config(tmp_path / "d", cfg={"cache_limit_mb": 4}), plugins=[recorder]) as node:
        store = node.store
        store.create("old")
        store.append("old", b"o" * (2 * MIB))
        store.create("new")
        store.append("new", b"n" * (MIB + 5))
        node.fields.set("cfg.cache_limit_mb", 2)  # the kernel emits settings.changed
        assert node.fields.get("store.limit_bytes") == 2 * MIB
        assert not store.exists("old") and store.exists("new")
        assert node.fields.get("store.used_bytes") == MIB + 5
        evicted = [e for e in recorder.events if isinstance(e, GenericEvent) and e.kind == "store.evicted"]
        assert [e.data["key"] for e in evicted] == ["old"]
    async with open_node(config(tmp_path / "d")) as node:  # the setting persisted
        assert node.store.limit_bytes == 2 * MIB


async def test_a_limit_below_what_cannot_be_evicted_says_so(tmp_path: Path) -> None:
    """Lowered below what is pinned, the limit was taken without a word and every later
    download failed for want of room."""
    from p2pkit import Notice

    recorder = Recorder()
    async with open_node(config(tmp_path / "d", cfg={"cache_limit_mb": 8}), plugins=[recorder]) as node:
        store = node.store
        store.create("kept")
        store.append("kept", b"k" * (3 * MIB))
        store.pin("kept")
        node.fields.set("cfg.cache_limit_mb", 4)  # room enough: nothing said
        assert not [e for e in recorder.events if isinstance(e, Notice)]
        node.fields.set("cfg.cache_limit_mb", 2)
        assert store.exists("kept")
        (notice,) = [e for e in recorder.events if isinstance(e, Notice)]
        assert notice.level == "warning" and notice.source == "store"
        assert "cache_limit_mb 2" in notice.message and "3.0 MiB" in notice.message


async def test_evicted_content_is_announced_removed(tmp_path: Path, store: Store, media: dict[str, Path]) -> None:
    from p2pkit.events import ContentRemoved

    manifest = store.import_file(media["png"])  # the seeder (no node needed)
    recorder = Recorder()
    async with open_node(config(cfg={"cache_limit_mb": 1}, store={"piece_size": 16384}),
                         plugins=[recorder]) as node:
        node.store.begin_download(manifest)
        for i in range(manifest.num_pieces):
            assert node.store.write_piece(manifest.rid, i, store.read_piece(manifest.rid, i))
        completed = [e for e in recorder.events if isinstance(e, GenericEvent) and e.kind == "store.completed"]
        assert [e.data["rid"] for e in completed] == [manifest.rid]
        node.store.create("big")
        node.store.append("big", bytes(MIB - 1000))  # the download must go to make room
        assert manifest.rid not in node.store
    removed = [e for e in recorder.events if isinstance(e, ContentRemoved)]
    assert [(e.rid, e.local) for e in removed] == [(manifest.rid, True)]


async def test_idle_handles_close_in_virtual_time(autojump_clock: trio.testing.MockClock) -> None:
    async with open_node(config(store={"idle_close_s": 5.0, "sweep_interval_s": 1.0})) as node:
        store = node.store
        store.create("a")
        store.append("a", b"x")
        assert store.open_handles == 1
        await trio.sleep(3)
        assert store.open_handles == 1
        await trio.sleep(3.5)
        assert store.open_handles == 0
        assert store.read("a", 0, 1) == b"x"


def test_bad_store_config_names_the_key() -> None:
    from p2pkit import ConfigError

    async def main() -> None:
        async with open_node(config(store={"piece_size": 1000})):
            pass

    with pytest.raises(ConfigError, match="piece_size"):
        trio.run(main)


async def test_idle_store_sleeps_without_timers(autojump_clock: trio.testing.MockClock) -> None:
    async with open_node(config(store={"idle_close_s": 5.0, "sweep_interval_s": 1.0})) as node:
        store = node.store
        await trio.sleep(100)
        assert store.counters.get("sweeps", 0) == 0  # nothing open: no wake-ups at all
        store.create("a")  # opens a handle: the sweep wakes up
        await trio.sleep(7)
        assert store.open_handles == 0
        sweeps = store.counters["sweeps"]
        assert 5 <= sweeps <= 7
        await trio.sleep(100)
        assert store.counters["sweeps"] == sweeps  # idle again


async def test_activity_from_a_worker_thread_wakes_the_sweep(
        autojump_clock: trio.testing.MockClock) -> None:
    async with open_node(config(store={"idle_close_s": 2.0})) as node:
        store = node.store
        await trio.to_thread.run_sync(store.create, "t")
        await trio.sleep(5)
        assert store.open_handles == 0


async def test_ephemeral_store_is_volatile_and_persistent_is_not(tmp_path: Path) -> None:
    async with open_node(config()) as node:
        assert node.store.volatile and not node.store.durable
    async with open_node(config(tmp_path / "d", store={"durable": True})) as node:
        assert node.store.durable and not node.store.volatile


async def test_a_lower_limit_that_cannot_evict_on_a_full_disk_says_so(tmp_path: Path) -> None:
    """Eviction writes the metadata; on a full disk it failed inside the settings event
    and came out as a traceback from "event observer store failed"."""
    from p2pkit import Notice
    from tests.fulldisk import FullDisk

    recorder = Recorder()
    async with open_node(config(tmp_path / "d", cfg={"cache_limit_mb": 8}), plugins=[recorder]) as node:
        store = node.store
        store.create("old")
        store.append("old", b"o" * (3 * MIB))
        real_db, store._db = store._db, FullDisk(store._db)
        try:
            node.fields.set("cfg.cache_limit_mb", 1)
        finally:
            store._db = real_db
        assert node.observer_errors == 0
        assert store.exists("old")  # nothing lost
        (notice,) = [e for e in recorder.events if isinstance(e, Notice)]
        assert notice.level == "warning" and notice.source == "store"
        assert "is full" in notice.message and "cache_limit_mb 1" in notice.message
