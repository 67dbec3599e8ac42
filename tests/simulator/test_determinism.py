"""Same scenario + same seed -> byte-identical report.json (in-process and via the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import trio
from p2pkit.simulator import LinkProfile, LossSpec, Simulation, run_file
from p2pkit.simulator._determinism import pinned_scheduler
from p2pkit.simulator._report import report_json

SMALL_CHURN = ["groups.0.count=8", "groups.0.session.mean=10.0", "groups.0.downtime.mean=4.0",
               "scenario.duration=25.0", "timeline.0.at=12.0", "timeline.1.at=18.0"]


def test_same_seed_same_report_in_process() -> None:
    _s1, first = run_file("churn", overrides=SMALL_CHURN)
    _s2, second = run_file("churn", overrides=SMALL_CHURN)
    _s3, other = run_file("churn", seed=99, overrides=SMALL_CHURN)
    assert report_json(first) == report_json(second)
    assert report_json(first) != report_json(other)
    assert first["aggregate"]["node_crashes"] > 0  # churn really happened
    assert first["network"]["datagrams_delivered"] > 0  # and the nodes talked


async def _raw_traffic(sim: Simulation) -> None:
    hosts = [sim.add_host(f"h{i}", LinkProfile(up_bps=2e6, latency=0.005, jitter=0.003,
                                              loss=LossSpec.bernoulli(0.05), reorder=0.1))
             for i in range(6)]
    endpoints = [h.bind(5000) for h in hosts]

    async def chatter(index: int) -> None:
        rng = sim.rng("chatter", index)
        endpoint = endpoints[index]

        def dispatch(batch: list[tuple[bytes, tuple[str, int]]], now: float) -> None:
            for data, _addr in batch:
                sim.metrics.observe("latency_s", now - float(data.decode()), node=f"h{index}")

        async with trio.open_nursery() as nursery:
            await nursery.start(endpoint.run, dispatch)
            while True:
                await trio.sleep(rng.expovariate(50))
                target = endpoints[rng.randrange(len(endpoints))]
                endpoint.send(str(sim.now).encode().ljust(rng.randrange(20, 1400)),
                              target.local_address)

    for index in range(len(endpoints)):
        sim.spawn(chatter, index)


def test_raw_traffic_is_reproducible_and_seed_sensitive() -> None:
    reports = [report_json(Simulation(seed, duration=5.0).run(_raw_traffic)) for seed in (4, 4, 5)]
    assert reports[0] == reports[1] != reports[2]


def test_scheduler_state_is_restored() -> None:
    run_module = trio._core._run
    before = (run_module._r.getstate(), run_module._ALLOW_DETERMINISTIC_SCHEDULING)
    with pinned_scheduler(3):
        assert run_module._ALLOW_DETERMINISTIC_SCHEDULING
    assert (run_module._r.getstate(), run_module._ALLOW_DETERMINISTIC_SCHEDULING) == before


def test_cli_runs_are_byte_identical_across_processes(tmp_path: Path) -> None:
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"run{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        sets = [arg for item in SMALL_CHURN for arg in ("--set", item)]
        result = subprocess.run(
            [sys.executable, "-m", "p2pkit.cli", "sim", "run", "churn", "--seed", "7",
             "--out", str(out), "--no-plots", "--quiet", *sets],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )
        assert result.returncode == 0, result.stderr
        outputs.append((out / "report.json").read_bytes())
    assert outputs[0] == outputs[1]


def test_showing_progress_does_not_change_the_run() -> None:
    """`p2pkit sim run churn` and `p2pkit sim run churn --quiet` gave two reports."""
    shown: list[float] = []
    _s1, quiet = run_file("churn", overrides=SMALL_CHURN)
    _s2, watched = run_file("churn", overrides=SMALL_CHURN,
                            progress=lambda now, total: shown.append(now))
    assert shown and shown[-1] <= 25.0
    assert report_json(quiet) == report_json(watched)
