"""The multi-seed runner: real benchmark processes, and its parsers on hostile text."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.seeds import (
    MAX_SEEDS,
    ROOT,
    RunFailed,
    average,
    benchmark_name,
    last_json,
    parse_seeds,
)


def _seeds_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks.seeds", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def test_two_seeds_of_a_tiny_swarm_are_run_and_averaged() -> None:
    done = _seeds_command("swarm_distribution", "--seeds", "1,2", "--",
                          "-n", "2", "--size-mb", "0.5")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["benchmark"] == "swarm_distribution" and report["seeds"] == [1, 2]
    runs = report["runs"]
    assert [run["seed"] for run in runs] == [1, 2]
    assert all(run["n"] == 2 and run["size_bytes"] == 500_000 for run in runs)
    assert runs[0]["bound_seconds"] != runs[1]["bound_seconds"]  # the seed reached each run
    ratios = [run["ratio_to_bound"] for run in runs]
    assert report["mean"]["ratio_to_bound"] == pytest.approx(sum(ratios) / 2)
    assert "mean over 2 seeds" in done.stdout


def test_a_failing_run_is_reported_with_its_seed_and_error() -> None:
    done = _seeds_command("swarm_distribution", "--seeds", "3", "--", "--loss", "lots")
    assert done.returncode != 0
    assert "seed 3: exited with 2" in done.stderr and "invalid float value" in done.stderr


def test_the_seed_cannot_be_passed_to_the_benchmark_too() -> None:
    done = _seeds_command("swarm_distribution", "--", "--seed", "4")
    assert done.returncode == 2 and "use --seeds" in done.stderr


@pytest.mark.parametrize(("text", "seeds"), [
    ("1-8", [1, 2, 3, 4, 5, 6, 7, 8]),
    ("3", [3]),
    ("1,3,5", [1, 3, 5]),
    ("1-3,2,9", [1, 2, 3, 9]),
    (" 4 , 0-1", [4, 0, 1]),
])
def test_seeds_are_read_as_lists_and_ranges(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "1-", "-3", "5-2", "1,,2", "1.5", f"0-{MAX_SEEDS}",
                                  ",".join(f"{i * 100}-{i * 100 + 9}" for i in range(7))])
def test_seeds_that_are_not_seeds_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_seeds(text)


@given(st.text(max_size=40))
def test_any_seed_text_is_a_short_list_of_seeds_or_a_clear_refusal(text: str) -> None:
    try:
        seeds = parse_seeds(text)
    except argparse.ArgumentTypeError as exc:
        assert str(exc)
    else:
        assert 1 <= len(seeds) <= MAX_SEEDS and len(set(seeds)) == len(seeds)
        assert all(isinstance(s, int) and s >= 0 for s in seeds)


@pytest.mark.parametrize("name", ["../swarm_distribution", "seeds", "no_such_benchmark",
                                  "Swarm", "os.path", ""])
def test_only_benchmarks_of_the_package_are_run(name: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        benchmark_name(name)
    assert benchmark_name("store_io") == "store_io"


@pytest.mark.parametrize("output", ["", "\n\n", "ratio 1.3\n", "[1, 2]\n", '{"a": 1}\nnot json'])
def test_output_without_a_json_object_last_is_a_failed_run(output: str) -> None:
    with pytest.raises(RunFailed):
        last_json(output)


def test_the_last_json_line_is_read_past_trailing_blank_lines() -> None:
    assert last_json('text\n{"a": 1}\n{"ratio": 1.25}\n\n') == {"ratio": 1.25}


def test_only_numbers_every_run_reports_are_averaged() -> None:
    runs = [{"ratio": 1.2, "n": 100, "ok": True, "name": "x", "gone": 1.0, "nan": math.nan},
            {"ratio": 1.4, "n": 100, "ok": False, "name": "x", "nan": 1.0}]
    assert average(runs) == pytest.approx({"ratio": 1.3, "n": 100})
    assert average([]) == {}
