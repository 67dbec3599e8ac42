"""What a simulated node keeps across a crash and restart: an ephemeral node (the default)
comes back with an empty store; one with a data directory keeps its store, and its store
never uses a worker thread (virtual time would jump past it)."""

from __future__ import annotations

import threading
import wave
from pathlib import Path
from typing import Any

from p2pkit.simulator import Simulation
from p2pkit.simulator._report import report_json


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * 400)
    return path


def _share_crash_restart(media: Path, config: dict[str, Any]) -> dict[str, Any]:
    async def scenario(sim: Simulation) -> None:
        seeder = sim.add_node("seeder", config=config)
        node = await sim.start(seeder)
        before = sim.now
        manifest = await node.share(media)
        sim.results["share_took_s"] = sim.now - before
        await sim.sleep(1)
        await sim.crash(seeder)
        await sim.sleep(1)
        node = await sim.start(seeder)
        sim.results["kept"] = node.store.manifest(manifest.rid) is not None

    return Simulation(seed=3, duration=10).run(scenario)


def test_a_node_with_a_data_dir_keeps_its_store_in_virtual_time(
        tmp_path: Path, probe_threads: list[int]) -> None:
    media = _wav(tmp_path / "tone.wav")
    reports = [
        _share_crash_restart(media, {"node": {"ephemeral": False,
                                              "data_dir": str(tmp_path / f"data{run}")}})
        for run in (1, 2)
    ]
    assert reports[0]["results"] == {"share_took_s": 0.0, "kept": True}
    assert report_json(reports[0]) == report_json(reports[1])
    assert probe_threads == [threading.get_ident()] * 2  # never a worker thread


def test_an_ephemeral_node_comes_back_with_an_empty_store(tmp_path: Path) -> None:
    report = _share_crash_restart(_wav(tmp_path / "tone.wav"), {})
    assert report["results"] == {"share_took_s": 0.0, "kept": False}
