"""The flooding scale benchmark on a few nodes: both variants ran the same churn, and only
the one with flooding carried its traffic (docs/plugins/flooding.md, *Benchmark*)."""

from __future__ import annotations

import json

import pytest

from benchmarks.flooding_scale import main


def test_the_scale_benchmark_runs_the_same_churn_with_and_without_flooding(
        capsys: pytest.CaptureFixture[str]) -> None:
    main(["--nodes", "8", "--duration", "6"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with_, without = result["flooding"], result["without_flooding"]
    assert result["nodes"] == with_["nodes"] == without["nodes"] == 8
    assert with_["node_starts"] == without["node_starts"] > 0  # the same arrivals and churn
    counters = with_["flood_counters"]
    assert counters["announces_in"] >= counters["announces_new"] > 0
    assert counters["malformed"] == counters["hits_forged"] == 0
    assert without["flood_counters"] == {}
    assert with_["datagrams_delivered"] > without["datagrams_delivered"] > 0
    for run in (with_, without):
        assert run["wall_s"] > 0 and run["cpu_s"] > 0 and run["peak_rss_MB"] > 0
