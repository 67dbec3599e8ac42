"""The swarm benchmark itself, on a tiny swarm: its JSON line and its ``--diagnose``
report (the figures it prints are docs/plugins/swarm.md's; here only that it runs and
says consistent things)."""

from __future__ import annotations

import argparse
import json
import random
import re
from typing import Any

import pytest

from benchmarks.swarm_distribution import (
    MBIT,
    SEEDER_UP_MBIT,
    UPLOAD_CHOICES_MBIT,
    _step,
    _times,
    main,
)


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


def test_the_wire_split_adds_up_and_leaves_the_run_as_it_was(
        capsys: pytest.CaptureFixture[str]) -> None:
    main(["-n", "3", "--size-mb", "1"])
    plain = json.loads(capsys.readouterr()[0].strip().splitlines()[-1])
    main(["-n", "3", "--size-mb", "1", "--wire"])
    out = capsys.readouterr()[0]
    result = json.loads(out.strip().splitlines()[-1])
    assert "wire" not in plain
    # a capture adds no wake-up: the same run, to the datagram
    for key in ("seconds", "mean_seconds", "queue_drops", "useful_share", "wire_utilisation"):
        assert result[key] == plain[key]
    kinds = result["wire"]
    assert {"DATA, full size", "ACK", "DATA, shorter"} <= set(kinds)
    for kind in kinds.values():
        assert 0 < kind["header_bytes"] <= kind["bytes"]
    full = kinds["DATA, full size"]
    # every full-size datagram: 1400 bytes of UDP payload, IP/UDP and rudp headers in it
    assert full["bytes"] == full["datagrams"] * (1400 + 28)
    assert 64 * full["datagrams"] <= full["header_bytes"] < 0.1 * full["bytes"]
    assert kinds["ACK"]["header_bytes"] == kinds["ACK"]["bytes"]  # nothing but headers
    # the split counts what the hosts sent after the start: what their uplinks carried
    # then, and what their queues dropped
    carried = result["wire_utilisation"] * result["seconds"] * _capacity(result)
    sent = sum(k["bytes"] for k in kinds.values())
    assert 0.9 * carried < sent <= 1.001 * carried + result["queue_drops"] * (1400 + 28)
    assert "headers in all" in out


def _capacity(result: dict[str, Any]) -> float:
    """Bytes/s of every uplink together, drawn as the benchmark draws them: utilisation x
    capacity x time is what the uplinks carried."""
    rng = random.Random(result["seed"])
    ups = [rng.choice(UPLOAD_CHOICES_MBIT) * MBIT for _ in range(result["n"])]
    return (SEEDER_UP_MBIT * MBIT + sum(ups)) / 8


def test_the_timeline_counts_checked_blocks_of_pieces_in_progress(
        capsys: pytest.CaptureFixture[str]) -> None:
    # 1 MB is four pieces: by whole pieces alone, "held" would move in quarters
    main(["-n", "3", "--size-mb", "1", "--timeline", "0.1"])
    rows = re.findall(r"^\s+([\d.]+)\s+(?:\d+%\s+)+([\d.]+)%\s+(\d+)$", capsys.readouterr()[1], re.M)
    times = [float(t) for t, _held, _done in rows]
    held = [float(h) for _t, h, _done in rows]
    assert times[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert held == sorted(held) and held[-1] == 100.0
    assert any(h % 25 for h in held)  # blocks counted before their pieces are whole


@pytest.mark.parametrize("text", ["x", "0", "-0.5", "61"])
def test_timeline_steps_that_are_not_sensible_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        _step(text)
