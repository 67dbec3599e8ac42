"""The ``p2pkit`` command line, behind :mod:`p2pkit.cli` (which imports this only once
it can catch a Ctrl-C that comes while these imports run)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import select
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pluggy
import trio
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from ._exceptions import ConfigError, P2PKitError, leaf_exceptions
from .compiled import build_description
from .config import LOG_LEVELS as LOG_LEVELS  # (p2pkit.cli's, as before)
from .config import (
    NodeConfig,
    NodeSection,
    convert,
    load_config,
    merged_sources,
    parse_assignment,
)
from .events import Event, Notice
from .hookspecs import hookimpl
from .node import Node, open_node
from .plugin_manager import create_plugin_manager
from .rids import parse_rid
from .version import __version__

console = Console(stderr=True)


class UsageError(P2PKitError):
    """A command line that cannot be carried out (reported as one line, exit 2)."""


# ---------------------------------------------------------------------------- shared flags


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags every command that runs a node accepts."""
    parser.add_argument("--config", type=Path, help="TOML config file")
    parser.add_argument("--port", type=int, help="UDP port (0 = any free port)")
    parser.add_argument("--host", dest="udp_host", help="UDP bind address")
    parser.add_argument("--data-dir", help="data directory (default: per-user, per profile)")
    parser.add_argument("--profile", help="profile name (separate identity and data)")
    parser.add_argument("--bootstrap", action="append", default=None, metavar="HOST:PORT",
                        help="a peer to contact at start (repeatable)")
    parser.add_argument("--plugin", action="append", default=None, metavar="MODULE:ATTR",
                        help="load an extra plugin (repeatable)")
    parser.add_argument("--repeater", metavar="PATH", help="repeater socket path, or 'off'")
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="log verbosity")
    parser.add_argument("--set", action="append", default=None, metavar="SECTION.KEY=VALUE",
                        dest="assignments", help="set any config key (repeatable)")


def config_from_args(args: argparse.Namespace, **node_overrides: Any) -> NodeConfig:
    """Config file < environment < flags (``--set`` first, then the named flags)."""
    overrides: dict[str, dict[str, Any]] = {}
    for text in args.assignments or ():
        section, key, value = parse_assignment(text)
        overrides.setdefault(section, {})[key] = value
    node = overrides.setdefault("node", {})
    flag_values = {
        "port": args.port, "host": args.udp_host, "data_dir": args.data_dir,
        "profile": args.profile, "bootstrap": args.bootstrap, "plugins": args.plugin,
        "repeater": args.repeater, "log_level": args.log_level,
    }
    node.update({k: v for k, v in flag_values.items() if v is not None})
    node.update(node_overrides)
    return load_config(args.config, overrides=overrides)


def setup_logging(level: str) -> None:
    if level not in LOG_LEVELS:
        raise ConfigError(f"node.log_level: expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    logging.basicConfig(
        level=level.upper(), format="%(name)s: %(message)s", datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False)], force=True,
    )


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
R = TypeVar("R")


def run_until_interrupted(main: Callable[[], Awaitable[int | None]]) -> int:
    """Run ``main`` (a node or web server) under trio; Ctrl-C or SIGTERM cancels it
    cleanly (exit 0)."""
    result, _ = _run_stoppable(main, STOP_SIGNALS, saying="[dim]stopping…[/dim]")
    return result or 0


class Terminated(Exception):
    """A one-shot command was sent SIGTERM: it stopped as on Ctrl-C (exit 143)."""


def run_one_shot(main: Callable[[], Awaitable[R]]) -> R:
    """``trio.run(main)`` for a one-shot command (get, files, search). SIGTERM (kill,
    timeout, systemd) cancels it as Ctrl-C does, so that its node stops and removes its
    temporary store — the default action killed it where it stood, leaving the store
    in $TMPDIR — and then raises Terminated."""
    result, stopped = _run_stoppable(main, (signal.SIGTERM,), saying=None)
    if stopped:
        raise Terminated
    return result  # type: ignore[return-value]  # (main returned: not stopped)


def _run_stoppable(main: Callable[[], Awaitable[R]], signums: tuple[int, ...], *,
                   saying: str | None) -> tuple[R | None, bool]:
    """``trio.run(main)``; a signal of ``signums`` cancels it as an enclosing scope
    would. Returns main's result (None when stopped) and whether a signal stopped it.

    From just before trio starts until the process ends, those signals are caught by a
    handler that only notes them: one that comes before the receiver listens still stops
    the run, and one that comes after it stopped — while the interpreter winds down — no
    longer kills a process that stopped cleanly (exit -15)."""
    noted: list[int] = []
    stopped_by_signal = False

    def note_signal(signum: int, frame: object) -> None:
        noted.append(signum)

    async def runner() -> R | None:
        nonlocal stopped_by_signal
        result: list[R] = []
        with trio.open_signal_receiver(*signums) as signals:
            async with trio.open_nursery() as nursery:

                async def body() -> None:
                    result.append(await main())
                    nursery.cancel_scope.cancel()

                async def stop_on_signal() -> None:
                    nonlocal stopped_by_signal
                    if not noted:  # else one came before the receiver listened
                        async for _ in signals:
                            break
                    if saying is not None:
                        console.print(saying)
                    stopped_by_signal = True
                    nursery.cancel_scope.cancel()

                nursery.start_soon(body)
                nursery.start_soon(stop_on_signal)
        return result[0] if result else None

    # the receiver puts back, when it closes, the handlers it found: these
    previous = {signum: signal.signal(signum, note_signal) for signum in signums}
    try:
        return trio.run(runner), stopped_by_signal
    finally:
        for signum, handler in previous.items():
            # SIG_IGN, not a Python handler: the interpreter puts back the default action
            # of every signal that has one while it shuts down
            signal.signal(signum, signal.SIG_IGN if stopped_by_signal else handler)


def print_line(text: str | Text) -> None:
    """One line on stderr, never reflowed (scripts grep rids and hashes out of it, and a
    console that is not a terminal is 80 columns wide), never read as markup (a file
    named ``song [live].mp3`` would lose ``[live]``)."""
    console.print(text if isinstance(text, Text) else Text(text), soft_wrap=True, highlight=False)


class ConsoleNotices:
    """A plugin that shows a node's Notices on the console at their level, one line each
    (``warning: store: cfg.cache_limit_mb 1 is below …``): the web UI has a panel for
    them, a terminal had nothing."""

    p2pkit_name = "console-notices"
    STYLES = {"error": "red", "warning": "yellow"}

    @hookimpl
    def p2pkit_event(self, event: Event) -> None:
        if not isinstance(event, Notice):
            return
        level = logging.getLevelName(event.level.upper())
        if not logging.getLogger("p2pkit").isEnabledFor(level if isinstance(level, int) else logging.WARNING):
            return
        source = f"{event.source}: " if event.source else ""
        print_line(Text(f"{event.level}: ", style=self.STYLES.get(event.level, "")) + Text(source + event.message))


def print_error(message: str) -> None:
    """``error: message``, one line (see :func:`print_line`)."""
    print_line(Text("error: ", style="red") + Text(message))


def describe(node: Node) -> None:
    host, port = node.endpoint.local_address
    console.print(f"[bold]p2pkit node[/bold] {node.id}")
    console.print(f"  udp       {host}:{port}")
    if node.data_dir is not None:
        print_line(f"  data dir  {node.data_dir}")
    plugins = ", ".join(f"{cap}={name}" for cap, name in sorted(node.provider_names.items()))
    console.print(f"  providers {plugins or 'none'}")


def add_share_arguments(parser: argparse.ArgumentParser) -> None:
    """``--share FILE`` and ``--unshare RID`` (node and web)."""
    parser.add_argument("--share", action="append", type=Path, metavar="FILE",
                        help="share a media file (repeatable); it stays shared across "
                             "restarts with the same data dir until unshared")
    parser.add_argument("--unshare", action="append", metavar="RID",
                        help="stop sharing RID and remove it from the store (repeatable)")


def check_share_arguments(args: argparse.Namespace, config: NodeConfig | None = None) -> None:
    """``--share`` files and ``--unshare`` rids, checked before the node starts (the
    files' media types too when ``config``, if given, leaves the built-in store in use)."""
    check_share_files(args.share or (), media=config is None or builtin_store(config))
    try:
        args.unshare = [parse_rid(rid) for rid in args.unshare or ()]
    except ValueError as exc:
        raise UsageError(f"--unshare: {exc}") from None


def builtin_store(config: NodeConfig) -> bool:
    """The node ``config`` describes stores content in the built-in store plugin."""
    return config.node.store in ("auto", "store") and "store" not in config.node.disable


def check_share_files(paths: Iterable[Path], *, media: bool = True) -> list[Path]:
    """``--share`` files, checked before the node starts (a missing one was found only
    after the node was up and announced; a text file after the files before it were
    shared for good): UsageError naming the first that is not a readable regular file,
    or — ``media`` — not a media file the built-in store takes."""
    checked = list(paths)
    for path in checked:
        if not path.is_file():
            raise UsageError(f"--share {path}: {'not a regular file' if path.exists() else 'no such file'}")
        if not os.access(path, os.R_OK):
            raise UsageError(f"--share {path}: not readable")
        if media:
            _check_media(path)
    return checked


def _check_media(path: Path) -> None:
    """UsageError if the built-in store would refuse ``path`` as not media (its sniffing)."""
    from p2pkit.plugins.store import SNIFF_BYTES, UnsupportedMedia, sniff

    with path.open("rb") as file:
        header = file.read(SNIFF_BYTES)
    try:
        if not header:
            raise UnsupportedMedia(f"{path.name}: the file is empty")
        sniff(header, path.name)
    except UnsupportedMedia as exc:
        raise UsageError(f"--share {path}: {exc}") from None


async def share_files(node: Node, paths: Iterable[Path], unshare: Iterable[str] = ()) -> None:
    """``--unshare RID`` then ``--share FILE``; prints what this node shares — also what an
    earlier run shared (a share stays until unshared: a restarted node said nothing of
    it). Names are shown as they are, never read as markup (``song [live].mp3``)."""
    for rid in unshare:
        print_line(f"  unshared  {rid}" if await node.unshare(rid) else f"  not here  {rid}")
    store = node.store
    before = {item.rid for item in store.items() if item.pinned} if store is not None else set()
    new: set[str] = set()
    try:
        for path in paths:
            new.add((await node.share(path)).rid)
    except Exception:
        # all or nothing: the command fails, so the files before this one, shared only now,
        # are not left shared for good
        for rid in new - before:
            await node.unshare(rid)
        raise
    for item in sorted(store.items() if store is not None else (), key=lambda i: i.name):
        if item.pinned and getattr(item, "broken", False):
            # its file changed or is gone: nobody can download it, though it is listed
            print_line(f"  {'broken':9} {item.rid}  {item.name} (the shared file changed or is "
                       "gone: share it again, or --unshare RID)")
        elif item.pinned:
            print_line(f"  {'shared' if item.rid in new else 'sharing':9} {item.rid}  {item.name}")


# ---------------------------------------------------------------------------- commands


def cmd_node(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    check_share_arguments(args, config)
    setup_logging(config.node.log_level)

    async def main() -> None:
        async with open_node(config, plugins=[ConsoleNotices()]) as node:
            await trio.lowlevel.checkpoint_if_cancelled()  # not "started" after "stopping…"
            describe(node)
            await share_files(node, args.share or (), args.unshare)
            await trio.sleep_forever()

    return run_until_interrupted(main)


def cmd_version(args: argparse.Namespace) -> int:
    print(f"p2pkit {__version__}, {build_description()}")
    return 0


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole command line, plugins' commands too. ``argv`` (default: this process's)
    is read only for the plugins ``[node] disable`` names (see :func:`cli_plugins`)."""
    parser = argparse.ArgumentParser(prog="p2pkit", description="peer-to-peer toolkit on trio")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    node = sub.add_parser("node", help="run a node until Ctrl-C")
    add_node_arguments(node)
    add_share_arguments(node)
    node.set_defaults(func=cmd_node)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version)

    from .repeater.cli import add_ctl_command

    add_ctl_command(sub)
    pm = cli_plugins(sys.argv[1:] if argv is None else argv)
    for impl in reversed(pm.hook.p2pkit_cli_commands.get_hookimpls()):
        before = dict(sub.choices), list(sub._choices_actions)
        try:
            impl.function(*({"subparsers": sub}[arg] for arg in impl.argnames))
        except Exception as exc:  # its commands are left out, not every command
            sub.choices.clear()
            sub.choices.update(before[0])
            sub._choices_actions[:] = before[1]
            _warn_plugin_left_out(impl.plugin_name, f"p2pkit_cli_commands failed: {type(exc).__name__}: {exc}")
    return parser


def cli_plugins(argv: Sequence[str]) -> pluggy.PluginManager:
    """The plugins whose commands the command line offers, loaded leniently: one that is
    broken (fails to import, a misspelt or async hook) is a warning on stderr and its
    commands are missing, while every other command — ``version``, ``ctl`` — still works.
    The plugins ``[node] disable`` names (in ``--config``'s file, ``P2PKIT_NODE__DISABLE``,
    ``--set node.disable=…``) are not loaded: so a broken one can be silenced."""
    return create_plugin_manager(
        disabled=_disabled_plugins(argv),
        on_error=lambda name, exc: _warn_plugin_left_out(name, str(exc)))


def _warn_plugin_left_out(name: str, why: str) -> None:
    print_line(Text("warning: ", style="yellow") + Text(
        f"plugin {name!r} left out (its commands are missing): {why}"))


def _disabled_plugins(argv: Sequence[str]) -> list[str]:
    """``[node] disable`` as a command in ``argv`` would read it (config file < environment
    < ``--set``), before any command is parsed; empty if it cannot be read — the command
    that reads the config reports why."""
    # (errors are the command's to report, with its own usage: this parser's would not be)
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    pre.add_argument("--config", type=Path)
    pre.add_argument("--set", action="append", default=[], dest="assignments")
    try:
        known, _ = pre.parse_known_args(list(argv))
    except argparse.ArgumentError:
        return []
    try:
        node_sets: dict[str, Any] = {}
        for text in known.assignments:
            section, key, value = parse_assignment(text)
            if section == "node":
                node_sets[key] = value
        node = merged_sources(known.config, overrides={"node": node_sets}).get("node", {})
        if "disable" not in node:
            return []
        return list(convert(NodeSection, {"disable": node["disable"]}, "node").disable)
    except ConfigError:
        return []


def command_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The innermost (sub)command ``argv`` names: its usage is the one to show for its
    mistakes (``p2pkit sim run``'s, not ``p2pkit``'s)."""
    for token in argv:
        commands = next((action.choices for action in parser._actions
                         if isinstance(action, argparse._SubParsersAction)), {})
        if token in commands:
            parser = commands[token]
    return parser


def _only_error(group: BaseExceptionGroup[Any]) -> BaseException | None:
    """The one error a group carries (nurseries wrap even a lone error), also when several
    tasks failed with the same one (every node of a simulated group given the same bad
    config); None when they differ."""
    leaves = leaf_exceptions(group)
    if leaves and len({(type(leaf), str(leaf)) for leaf in leaves}) == 1:
        return leaves[0]
    return None


def _reader_left() -> bool:
    """The reader of stdout or stderr is gone (``p2pkit files | head -1``): a pipe whose
    reading end is closed polls as an error on its writing end."""
    poll = select.poll()
    for fd in (1, 2):
        poll.register(fd, select.POLLOUT)  # a closed fd polls as POLLNVAL, not an error
    return any(events & select.POLLERR for _fd, events in poll.poll(0))


def _silence_stdout() -> None:
    """stdout to /dev/null: the interpreter's last flush must not fail once more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
    finally:
        os.close(devnull)


def _raise_broken_pipe(console: Console) -> None:
    """rich's consoles (plugins' tables on stdout) exit 1 when their reader left; this
    makes them raise BrokenPipeError as ``print`` does, for :func:`main` to end every such
    command the same way."""
    console.quiet = True
    raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


@contextlib.contextmanager
def _broken_pipe_raised() -> Iterator[None]:
    original = Console.on_broken_pipe
    setattr(Console, "on_broken_pipe", _raise_broken_pipe)  # noqa: B010 (mypy: a method)
    try:
        yield
    finally:
        setattr(Console, "on_broken_pipe", original)  # noqa: B010


def main(argv: Sequence[str] | None = None) -> int:
    with _broken_pipe_raised():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        parser = build_parser(argv)
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # argparse would print the top-level usage, not the command's
            words = sys.argv[1:] if argv is None else argv
            command_parser(parser, words).error(f"unrecognized arguments: {' '.join(unknown)}")
        try:
            code = args.func(args)
            sys.stdout.flush()  # here, not as the interpreter ends: a reader gone is seen
        except BaseExceptionGroup as group:
            only = _only_error(group)
            if isinstance(only, P2PKitError | OSError | KeyboardInterrupt):
                raise only from None
            raise
    except P2PKitError as exc:
        print_error(str(exc))
        return 2
    except BrokenPipeError as exc:
        if not _reader_left():  # a socket's peer, not our reader
            print_error(f"{exc.strerror or exc}")
            return 1
        # the reader had what it wanted (| head): nothing to say, and the outcome does not
        # hang on how much of the output the pipe took before the reader left
        _silence_stdout()
        return 0
    except OSError as exc:
        print_error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return 1
    except Terminated:  # SIGTERM to a one-shot command: it did not finish either
        print_error("terminated")
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        # Only a one-shot command (get, files, search) sees Ctrl-C here — node and web
        # stop on it by themselves, exit 0 — and it did not finish: a script's
        # `p2pkit get … && play` must not go on (128 + SIGINT, as shells report it)
        print_error("interrupted")
        return 130
    return int(code or 0)

