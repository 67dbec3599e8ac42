"""A download whose disk fills up half-way, in the simulator (virtual time): it ends at
once with an error saying the disk holding the store is full, the node stays up and keeps
what it stored, and once space is freed the download goes on from there."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from p2pkit.plugins.store import _content
from p2pkit.plugins.swarm import SwarmError
from p2pkit.simulator import Simulation

from p2pkit.diskerrors import is_disk_full
from tests.fulldisk import FullDisk
from tests.media import noise_wav

from .test_swarm_nodes import until
from .test_swarm_sim import _Done, origin_and_leecher, peers_of


@pytest.mark.parametrize("where", ["metadata", "data file"])
def test_a_download_that_fills_the_disk_ends_at_once_saying_so_and_resumes_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    # was: the store's sqlite3.OperationalError (or the StoreError saying only "No space
    # left on device") went up into the swarm's message handler, was counted in
    # handler_errors, the piece was lost and the download ended only through its stall
    # watchdog, 60 s later, saying "no peer offered the missing pieces"
    media = noise_wav(tmp_path / "full.wav", 2_000_000)  # 8 pieces
    seen: dict[str, Any] = {}

    def fill_disk(leecher: Any) -> Any:
        store = leecher.store
        real_db = store._db
        if where == "metadata":
            store._db = FullDisk(real_db)
        else:
            def no_room(*_args: Any) -> None:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            monkeypatch.setattr(_content, "write_all", no_room)

        def free_space() -> None:
            store._db = real_db
            monkeypatch.undo()
        return free_space

    async def scenario(sim: Simulation) -> None:
        _, leecher, manifest = await origin_and_leecher(sim, media)
        rid = manifest.rid
        await until(lambda: len(peers_of(leecher).all()) > 0)
        async with trio.open_nursery() as nursery:
            async def fetch() -> None:
                try:
                    await leecher.swarm.fetch(rid)
                    seen["outcome"] = "complete"
                except SwarmError as exc:
                    seen["outcome"] = exc
                seen["ended"] = sim.now

            nursery.start_soon(fetch)
            await until(lambda: rid in leecher.store and leecher.store.progress(rid)[0] >= 2)
            free_space = fill_disk(leecher)
            seen["filled"] = sim.now
            kept = [i for i in range(manifest.num_pieces) if leecher.store.has_piece(rid, i)]
        seen["kept"] = kept
        seen["still_kept"] = all(leecher.store.read_piece(rid, i) is not None for i in kept)
        seen["handler_errors"] = sum(p.handler_errors for p in peers_of(leecher).all())
        seen["connected"] = len(peers_of(leecher).all())
        free_space()
        with trio.fail_after(300):  # virtual seconds
            await leecher.swarm.fetch(rid)  # the node is up: the download goes on
        seen["complete"] = leecher.store.is_complete(rid) and leecher.store.verify(rid) == []
        raise _Done

    try:
        Simulation(seed=3, duration=600, resolution=0.001).run(scenario)
    except* _Done:
        pass
    error = seen["outcome"]
    assert isinstance(error, SwarmError), error
    message = str(error)
    assert "the disk holding the store" in message and "is full" in message, message
    assert "free some space" in message and "no peer offered" not in message
    assert is_disk_full(error)  # what the web UI's download row tells a full disk by
    # at once: long before the stall watchdog (provider_wait_s = 60 s) could have said anything
    assert seen["ended"] - seen["filled"] < 5.0
    assert seen["kept"] and seen["still_kept"]  # nothing stored was lost or taken as damaged
    assert seen["handler_errors"] == 0 and seen["connected"] == 1  # no peer paid for our disk
    assert seen["complete"]
