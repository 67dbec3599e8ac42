"""The simulator's speed benchmark on a few nodes: its JSON line says consistent things."""

from __future__ import annotations

import json
import sys

import pytest

from benchmarks.sim_scale import main


def test_the_benchmark_reports_wall_and_cpu_speed_and_the_target_only_where_it_applies(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["sim_scale", "--nodes", "12", "--degree", "2",
                                      "--duration", "6", "--skip-bare"])
    main()
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["nodes"] == 12 and result["sessions_per_node"] > 0
    cpu_s = result["cpu_s"]  # rounded to 0.01 s
    assert 6 / (cpu_s + 0.006) <= result["cpu_speedup"] <= 6 / max(cpu_s - 0.006, 1e-3)
    assert result["target_speedup"] is None and result["meets_target"] is None  # 1000 nodes' target
