"""``p2pkit files`` and ``p2pkit search``: one-shot commands with their own short-lived node.

Each starts an ephemeral node (no disk state, any free port), dials ``--bootstrap``,
waits until the network's file list has settled (bounded by ``--timeout``), prints a
table or JSON and exits: 0 on success, 1 when no peer answered.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from rich.console import Console
from rich.table import Table
from rich.text import Text

from p2pkit.cli import (
    UsageError,
    add_node_arguments,
    config_from_args,
    console,
    print_error,
    run_one_shot,
    setup_logging,
)
from p2pkit.node import open_node

SETTLE_QUIET = 1.0  # the list has settled when nothing new arrived for this long


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    files = subparsers.add_parser("files", help="list the files the network offers")
    _common(files)
    files.set_defaults(func=cmd_files)

    search = subparsers.add_parser("search", help="search the network's files by title, description or name")
    search.add_argument("query", help="text to look for (case-insensitive)")
    _common(search)
    search.set_defaults(func=cmd_search)


def _common(parser: argparse.ArgumentParser) -> None:
    add_node_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="give up after this long (default 10)")


def cmd_files(args: argparse.Namespace) -> int:
    async def action(node: Any) -> list[dict[str, Any]]:
        return list(node.network_files())

    return _run(args, action, empty="the network offers no files")


def cmd_search(args: argparse.Namespace) -> int:
    async def action(node: Any) -> list[dict[str, Any]]:
        return list(await node.search(args.query))

    return _run(args, action, empty=f"nothing matches {args.query!r}")


def _run(args: argparse.Namespace,
         action: Callable[[Any], Awaitable[list[dict[str, Any]]]], *, empty: str) -> int:
    if not args.bootstrap:
        raise UsageError(f"p2pkit {args.command} needs --bootstrap HOST:PORT (a running node)")
    if not args.timeout > 0:
        raise UsageError("--timeout must be > 0")
    given = [flag for flag, value in (("--data-dir", args.data_dir), ("--profile", args.profile),
                                      ("--repeater", args.repeater)) if value is not None]
    if given:  # taken and ignored before: its node keeps nothing and serves no repeater
        raise UsageError(f"p2pkit {args.command} runs a throwaway node: {', '.join(given)} "
                         "does not apply")
    overrides: dict[str, Any] = {"ephemeral": True, "repeater": "off", "discovery": "flooding"}
    if args.port is None:
        overrides["port"] = 0
    if args.log_level is None:
        overrides["log_level"] = "warning"  # retries are noise for a one-shot command
    # A one-shot node learns the list from its bootstrap peers' sync; dialing more peers
    # would only add churn to the network. ``--set flooding.peer_exchange=true`` wins.
    args.assignments = ["flooding.peer_exchange=false", *(args.assignments or ())]
    config = config_from_args(args, **overrides)
    setup_logging(config.node.log_level)

    async def main() -> list[dict[str, Any]] | None:
        async with open_node(config) as node:
            deadline = trio.current_time() + args.timeout
            if not await node.discovery.wait_settled(deadline, quiet=SETTLE_QUIET):
                return None
            with trio.move_on_at(deadline + node.discovery.config.search_timeout):
                return await action(node)
            return None

    results = run_one_shot(main)
    if results is None:
        where = ", ".join(args.bootstrap)
        print_error(f"no peer answered at {where} within {args.timeout:g} s")
        return 1
    if args.json:
        print(json.dumps(results, indent=2))
    elif not results:
        console.print(empty)
    else:
        print_table(results)
    return 0


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _peer_text(text: str) -> Text:
    """Text another node chose, shown literally: a Text is never parsed as rich markup,
    and control characters (an ESC could restyle or clear the terminal) become U+FFFD."""
    return Text("".join(c if c.isprintable() else "\ufffd" for c in text))


RID_PREFIX = 16  # hex digits shown when the terminal is too narrow for a whole rid


def print_table(files: list[dict[str, Any]]) -> None:
    out = Console(soft_wrap=False)
    whole = out.width >= 120  # a 64-digit rid squeezes every other column below that
    table = Table(title=f"{len(files)} file(s) on the network")
    table.add_column("rid", no_wrap=True, style="cyan")
    table.add_column("name", overflow="fold")
    table.add_column("title", overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("category", no_wrap=True)
    table.add_column("providers", justify="right", no_wrap=True)
    for f in files:
        rid = f["rid"] if whole else f["rid"][:RID_PREFIX] + "…"
        table.add_row(rid, _peer_text(f["name"]), _peer_text(f["title"]), human_size(f["size"]),
                      _peer_text(f["category"]), str(len(f["providers"])))
    out.print(table)
    if not whole:
        out.print("[dim]rids shortened to fit; --json prints them whole[/dim]")
