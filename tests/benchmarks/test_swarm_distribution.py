"""The swarm benchmark itself, on a tiny swarm: its JSON line and its ``--diagnose``
report (the figures it prints are docs/plugins/swarm.md's; here only that it runs and
says consistent things)."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from benchmarks.swarm_distribution import _times, main


def test_a_tiny_swarm_reports_its_ratio_and_what_its_blocks_waited_for(
        capsys: pytest.CaptureFixture[str]) -> None:
    main(["-n", "3", "--size-mb", "1", "--diagnose", "0.2,0.5"])
    out, err = capsys.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["n"] == 3 and result["size_bytes"] == 1_000_000
    assert result["ratio_to_bound"] >= 1.0  # nothing beats the fluid bound
    assert result["seconds"] == pytest.approx(result["ratio_to_bound"] * result["bound_seconds"],
                                              rel=0.01)
    reports = re.findall(r"diagnose at ([\d.]+) s: (\d+) leechers downloading; per leecher, of "
                         r"([\d.]+) missing blocks:\n    asked for ([\d.]+)", err)
    assert [r[0] for r in reports] == ["0.20", "0.50"]
    for _t, leechers, missing, asked in reports:
        assert 1 <= int(leechers) <= 3
        assert 0 <= float(asked) <= float(missing) <= 62  # 1 MB in 16 KiB blocks


@pytest.mark.parametrize("text", ["abc", "-1", "", "1,,x", "7200"])
def test_diagnose_times_that_are_not_seconds_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        _times(text)


def test_diagnose_times_are_read_in_any_order() -> None:
    assert _times("7.5,1") == [7.5, 1.0]
