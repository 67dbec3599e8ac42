"""``p2pkit get RID --bootstrap HOST:PORT [-o PATH] [--timeout S]``.

A one-shot node (ephemeral unless ``--data-dir``/``--profile`` is given, which also makes
an interrupted download resume) dials the bootstrap peers, downloads the content from
every peer that has it with a progress bar, exports it verified and exits 0. It exits 1
with one clear line when it cannot finish: no provider within ``swarm.provider_wait_s``
(60 s by default) or the ``--timeout`` ran out — then the line also says what the
missing blocks were waiting for (``SwarmProvider.diagnose``): peers they were asked of,
peers that choke us, or no peer at all.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

import trio
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from p2pkit.cli import (
    UsageError,
    add_node_arguments,
    config_from_args,
    console,
    print_error,
    print_line,
    run_one_shot,
    setup_logging,
)
from p2pkit.node import open_node
from p2pkit.rids import parse_rid

from ._errors import NoProvidersError, SwarmError
from ._output import output_problem


def add_get_command(subparsers: argparse._SubParsersAction[Any]) -> None:
    get = subparsers.add_parser("get", help="download a file from the peers that have it")
    get.add_argument("rid", help="content id (64 hex digits, see `p2pkit files`)")
    add_node_arguments(get)
    get.add_argument("-o", "--output", metavar="PATH",  # text: Path() drops a trailing slash
                     help="file or directory to write (default: the file's name, here); an "
                          "existing regular file is replaced")
    get.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                     help="give up after this long (default: none; the download still ends when nothing "
                          "arrives and no peer offers a missing piece for swarm.provider_wait_s)")
    get.add_argument("--quiet", action="store_true", help="no progress bar")
    get.set_defaults(func=cmd_get)


def cmd_get(args: argparse.Namespace) -> int:
    if not args.bootstrap:
        raise UsageError("p2pkit get needs --bootstrap HOST:PORT (a running node)")
    try:
        args.rid = parse_rid(args.rid)  # as copied from anywhere: a rid is its hex digits
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.timeout is not None and not args.timeout > 0:
        raise UsageError("--timeout must be > 0")
    overrides: dict[str, Any] = {}
    if args.data_dir is None and args.profile is None and args.config is None:
        overrides["ephemeral"] = True
    if args.repeater is None:
        overrides["repeater"] = "off"
    if args.port is None:
        overrides["port"] = 0
    if args.log_level is None:
        overrides["log_level"] = "warning"
    config = config_from_args(args, **overrides)
    setup_logging(config.node.log_level)
    dest = check_output(args.output)

    sources: dict[str, int] = {}

    async def main() -> tuple[Path | None, str]:
        async with open_node(config) as node:
            have, total = _resumable(node, args.rid)
            if have:
                print_line(f"resuming: {have} of {total} pieces already here")
            with trio.move_on_after(args.timeout if args.timeout else float("inf")):
                try:
                    # nobody at the bootstrap address (a mistyped port): said as `p2pkit
                    # files` says it, not after the whole provider wait
                    with trio.CancelScope() as nobody_answered:
                        node.nursery.start_soon(_stop_if_nobody_answers, node, nobody_answered)
                        return await _download(node, args.rid, dest, quiet=args.quiet), ""
                    where = ", ".join(args.bootstrap)
                    return None, f"no peer answered at {where} within {BOOTSTRAP_WAIT_S:g} s"
                except SwarmError as exc:
                    # (not for a refusal of our own, e.g. P2PDisabledError: no peer was asked)
                    if isinstance(exc, NoProvidersError) and node.peers is not None and not len(node.peers):
                        where = ", ".join(args.bootstrap)
                        return None, f"no peer answered at {where}; {exc}"
                    return None, str(exc)
                finally:
                    torrent = node.swarm.torrents.get(args.rid)
                    if torrent is not None:
                        sources.update(torrent.bytes_from)
            waiting = waiting_for(node.swarm.diagnose(args.rid))
            if node.store is not None and node.store.manifest(args.rid) is None:
                waiting = f"; no peer offers {args.rid[:12]} (yet)" + waiting
            if node.peers is not None and not len(node.peers):
                waiting = f"; no peer answered at {', '.join(args.bootstrap)}" + waiting
            return None, f"the download did not finish within {args.timeout:g} s" + waiting

    path, error = run_one_shot(main)
    if path is None:
        print_error(error)
        return 1
    for peer_id, n in sorted(sources.items(), key=lambda kv: -kv[1]):
        print_line(f"  from peer {peer_id}: {n} bytes")
    digest = _sha256(path)
    print_line(f"saved {path} ({path.stat().st_size} bytes, verified, sha256 {digest})")
    return 0


BOOTSTRAP_WAIT_S = 10.0  # as long as `p2pkit files` waits by default


async def _stop_if_nobody_answers(node: Any, scope: trio.CancelScope) -> None:
    """Cancel ``scope`` (the download) if no peer is connected after BOOTSTRAP_WAIT_S."""
    await trio.sleep(BOOTSTRAP_WAIT_S)
    if node.peers is not None and not len(node.peers):
        scope.cancel()


def check_output(text: str | None) -> Path:
    """``-o``, checked before anything is downloaded (:func:`output_problem`): a
    UsageError (exit 2) when it cannot be written."""
    if text is None:
        return Path.cwd()
    problem = output_problem(text)
    if problem is not None:
        raise UsageError(f"-o {problem}")
    return Path(text)


def waiting_for(report: dict[str, Any] | None) -> str:
    """What an unfinished download's missing blocks waited for (SwarmProvider.diagnose),
    as the end of the error line: which way to look (a slow peer, choking, nobody)."""
    if not report or not report["missing_blocks"]:
        return ""
    askable = sum(report["askable"].values())
    parts = [f"{report['requested']} asked of {len(report['requested_from'])} peer(s)"]
    if askable:
        parts.append(f"{askable} held by peers that unchoke us, not asked yet")
    if report["only_choking_peers"]:
        parts.append(f"{report['only_choking_peers']} held only by peers that choke us")
    if report["nobody"]:
        parts.append(f"{report['nobody']} offered by no peer yet")
    return f"; {report['missing_blocks']} blocks missing: " + ", ".join(parts)


def _resumable(node: Any, rid: str) -> tuple[int, int]:
    """(pieces already stored, pieces in total) of a download left unfinished before."""
    store = node.store
    if store is None or store.manifest(rid) is None or store.is_complete(rid):
        return 0, 0
    have, total = store.progress(rid)
    return int(have), int(total)


async def _download(node: Any, rid: str, dest: Path, *, quiet: bool) -> Path:
    swarm = node.capability("swarm")
    if quiet:
        return await node.download(rid, dest)  # type: ignore[no-any-return]
    columns = (  # the description is a peer's file name: text, not markup
        TextColumn("{task.description}", style="bold", markup=False), BarColumn(), DownloadColumn(),
        TransferSpeedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[peers]} peers"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{rid[:12]}…", total=None, peers=0)

        def progress(done: int, total: int) -> None:
            torrent = swarm.torrents.get(rid)
            if torrent is not None:
                bar.update(task, description=torrent.manifest.name[:40])
            bar.update(task, completed=done, total=total,
                       peers=len(torrent.peers) if torrent is not None else 0)

        return await node.download(rid, dest, progress=progress)  # type: ignore[no-any-return]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


__all__ = ["add_get_command", "cmd_get"]
