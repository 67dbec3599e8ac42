"""Run a benchmark over several seeds and average its figures.

One seed of a simulator benchmark is one event order; a change that moves the swarm's
ratio by 0.02 on one seed can move it by -0.03 on the next (docs/plugins/swarm.md,
*Benchmark*). A change is judged on the mean over seeds, so this runs the same command
once per seed, in separate processes, a few at a time, and averages what each run's last
JSON line reports::

    python -m benchmarks.seeds swarm_distribution --seeds 1-8 --jobs 2 -- --quick
    python -m benchmarks.seeds rudp_lossy --seeds 1,2,5 -- --loss 0.05

Everything after ``--`` goes to the benchmark, followed by ``--seed S``. The last line of
output is one JSON object: ``benchmark``, ``seeds``, ``mean`` (every number all runs
report, averaged over the seeds) and ``runs`` (each run's own JSON, with its seed). A run
that fails stops the others and is reported with the end of its error output.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent  # where ``-m benchmarks.NAME`` is found
MAX_SEEDS = 64
SHOWN = ("ratio_to_bound", "seconds", "mean_seconds", "useful_share", "wire_utilisation")


class RunFailed(Exception):
    """A benchmark run exited with an error or printed no JSON line."""


def parse_seeds(text: str) -> list[int]:
    """``1-8``, ``1,3,5`` or ``1-4,9``: distinct seeds in the order given."""
    seeds: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d{1,9})(?:-(\d{1,9}))?", part)
        if match is None:
            raise argparse.ArgumentTypeError(f"not a seed or a range of seeds: {part!r}")
        lo = int(match[1])
        hi = int(match[2]) if match[2] is not None else lo
        if hi < lo:
            raise argparse.ArgumentTypeError(f"a range must go up: {part!r}")
        if hi - lo >= MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"at most {MAX_SEEDS} seeds: {part!r}")
        seeds.extend(s for s in range(lo, hi + 1) if s not in seeds)
        if len(seeds) > MAX_SEEDS:
            raise argparse.ArgumentTypeError(f"at most {MAX_SEEDS} seeds: {text[:80]!r}")
    return seeds


def benchmark_name(text: str) -> str:
    """A module of this package that can be run (``swarm_distribution``)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", text) or text == "seeds":
        raise argparse.ArgumentTypeError(f"not a benchmark name: {text!r}")
    if importlib.util.find_spec(f"benchmarks.{text}") is None:
        raise argparse.ArgumentTypeError(f"no benchmark called {text!r} in benchmarks/")
    return text


def last_json(output: str) -> dict[str, Any]:
    """The JSON object on the last non-empty line of a benchmark's output."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise RunFailed("it printed nothing")
    try:
        report = json.loads(lines[-1])
    except json.JSONDecodeError:
        raise RunFailed(f"its last line is not JSON: {lines[-1][:200]!r}") from None
    if not isinstance(report, dict):
        raise RunFailed("its last line is not a JSON object")
    return report


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def average(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of every key that is a finite number in every run."""
    if not runs:
        return {}
    keys = [k for k in runs[0] if all(_number(run.get(k)) for run in runs)]
    return {k: sum(run[k] for run in runs) / len(runs) for k in keys}


async def run_seeds(name: str, seeds: list[int], jobs: int, args: list[str],
                    report: Callable[[dict[str, Any]], None] | None = None,
                    ) -> list[dict[str, Any]]:
    """Each seed's JSON (with ``seed``), in the order of ``seeds``; ``report(run)`` is
    called as each one ends. The first failure cancels the runs still going."""
    results: dict[int, dict[str, Any]] = {}
    failures: list[str] = []
    waiting = iter(seeds)  # each worker takes the next seed: they start in the order given

    async def worker(cancel_scope: trio.CancelScope) -> None:
        for seed in waiting:
            await one(seed, cancel_scope)

    async def one(seed: int, cancel_scope: trio.CancelScope) -> None:
        command = [sys.executable, "-m", f"benchmarks.{name}", *args, "--seed", str(seed)]
        done = await trio.run_process(command, capture_stdout=True, capture_stderr=True,
                                      cwd=ROOT, check=False)
        try:
            if done.returncode != 0:
                tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
                raise RunFailed(f"exited with {done.returncode}: " + " | ".join(tail))
            run = last_json(done.stdout.decode(errors="replace"))
        except RunFailed as exc:
            failures.append(f"seed {seed}: {exc}")
            cancel_scope.cancel()  # the other runs' processes are killed
            return
        results[seed] = {**run, "seed": seed}
        if report is not None:
            report(results[seed])

    async with trio.open_nursery() as nursery:
        for _ in range(min(jobs, len(seeds))):
            nursery.start_soon(worker, nursery.cancel_scope)
    if failures:
        raise RunFailed(failures[0])
    return [results[seed] for seed in seeds]


def _row(run: dict[str, Any]) -> str:
    """The headline figures a run has, for a line of the table."""
    return "  ".join(f"{k} {run[k]:.3f}" for k in SHOWN if _number(run.get(k)))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    ours, passed = argv[:split], argv[split + 1:]  # ours, then the benchmark's
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("benchmark", type=benchmark_name, help="a module of benchmarks/")
    parser.add_argument("--seeds", type=parse_seeds, default=parse_seeds("1-8"),
                        help="seeds to run: 1-8 (the default), 1,3,5 or 1-4,9")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    args = parser.parse_args(ours)
    if not 1 <= args.jobs <= 32:
        parser.error("--jobs must be 1 to 32")
    if any(a == "--seed" or a.startswith("--seed=") for a in passed):
        parser.error("the seed is given per run; use --seeds")

    def report(run: dict[str, Any]) -> None:
        print(f"  seed {run['seed']:>3}  {_row(run)}", flush=True)

    try:
        runs = trio.run(run_seeds, args.benchmark, args.seeds, args.jobs, passed, report)
    except RunFailed as exc:
        sys.exit(f"error: {exc}")
    mean = average([{k: v for k, v in run.items() if k != "seed"} for run in runs])
    print(f"  mean over {len(runs)} seeds  {_row(mean)}")
    print(json.dumps({"benchmark": args.benchmark, "seeds": args.seeds, "mean": mean,
                      "runs": runs}))


if __name__ == "__main__":
    main()
