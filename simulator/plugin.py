"""The ``p2pkit sim`` command (registered through the ``p2pkit_cli_commands`` hook).

    p2pkit sim list
    p2pkit sim run FILE|NAME [--seed N] [--out DIR] [--set key.path=value ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from p2pkit.hookspecs import hookimpl


@hookimpl
def p2pkit_cli_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    sim = subparsers.add_parser("sim", help="run network simulations in virtual time")
    sim_sub = sim.add_subparsers(dest="sim_command", metavar="{run,list}", required=True)
    run = sim_sub.add_parser("run", help="run a scenario (TOML or Python file, or built-in name)")
    run.add_argument("scenario", help="scenario file, or the name of a built-in scenario")
    run.add_argument("--seed", type=int, help="override the scenario's seed")
    run.add_argument("--out", type=Path, help="output directory (default: sim-out/<name>-<seed>)")
    run.add_argument("--set", action="append", default=[], dest="overrides",
                     metavar="KEY.PATH=VALUE",
                     help="override a scenario value, e.g. links.loss1.up_loss=0.02 (repeatable)")
    run.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)
    listing = sim_sub.add_parser("list", help="list the built-in scenarios")
    listing.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ._scenario import builtin_scenarios

    table = Table(title="built-in scenarios", show_header=True)
    table.add_column("name")
    table.add_column("description")
    for name, path in builtin_scenarios().items():
        try:
            description = tomllib.loads(path.read_text()).get("scenario", {}).get("description", "")
        except tomllib.TOMLDecodeError:
            description = "(unreadable)"
        table.add_row(name, description)
    Console().print(table)
    return 0


def _reexec_with_fixed_hash_seed() -> None:
    """String hashing must not vary between runs (set iteration order); re-run once with
    PYTHONHASHSEED=0 when we were started from the real command line."""
    if os.environ.get("PYTHONHASHSEED") == "0":
        return
    argv = sys.orig_argv
    if "sim" not in sys.argv[1:3]:
        return  # called programmatically (tests): cannot re-execute faithfully
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, *argv[1:]])


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ._runner import load

    _reexec_with_fixed_hash_seed()
    console = Console()
    sim, fn, _spec = load(args.scenario, args.overrides)
    if args.seed is not None:
        sim = sim.reseeded(args.seed)
    out_dir = args.out or Path("sim-out") / f"{sim.name}-{sim.seed}"
    started = time.perf_counter()
    if args.quiet:
        report = sim.run(fn)
    else:
        with Progress(
            TextColumn(f"[bold]{sim.name}[/] seed {sim.seed}"), BarColumn(),
            TextColumn("{task.completed:.1f}/{task.total:.0f} virtual s"), TimeElapsedColumn(),
            console=console, transient=True,
        ) as progress:
            task = progress.add_task("sim", total=sim.duration)
            report = sim.run(fn, progress=lambda now, total: progress.update(task, completed=now))
    wall = time.perf_counter() - started
    from ._report import write_plots, write_report
    from ._summary import summary_tables

    path = write_report(report, out_dir)
    plots = [] if args.no_plots else write_plots(sim, report, out_dir)
    for table in summary_tables(report, wall):
        console.print(table)
    for note in report["notes"]:  # what a reader should know: the tables do not say it
        console.print(f"note:   {note}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {path}")
    for plot in plots:
        console.print(f"plot:   {plot}")
    return 0
