"""The ``p2pkit`` command line.

Sub-commands of the kernel: ``node``, ``version``, ``ctl``. Plugins add their own
(``sim``, ``web``, ``files``, ...) through the ``p2pkit_cli_commands`` hook. Every failure
a user can cause is one clear line on stderr and a non-zero exit, never a traceback — a
Ctrl-C while Python still imports the command included. A reader that leaves early
(``p2pkit files | head -1``) ends a command quietly, exit 0.

This module imports nothing heavy: :func:`main` imports the command line (``p2pkit._cli``,
trio, rich, the plugins) inside its guard. Its other names are ``p2pkit._cli``'s.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._cli import (
        LOG_LEVELS,
        STOP_SIGNALS,
        ConsoleNotices,
        UsageError,
        add_node_arguments,
        add_share_arguments,
        build_parser,
        builtin_store,
        check_share_arguments,
        check_share_files,
        cmd_node,
        cmd_version,
        command_parser,
        config_from_args,
        console,
        describe,
        print_error,
        print_line,
        run_one_shot,
        run_until_interrupted,
        setup_logging,
        share_files,
    )

__all__ = [
    "LOG_LEVELS", "STOP_SIGNALS", "ConsoleNotices", "UsageError",
    "add_node_arguments", "add_share_arguments", "build_parser", "builtin_store",
    "check_share_arguments",
    "check_share_files", "cmd_node", "cmd_version", "command_parser", "config_from_args",
    "console", "describe", "main", "print_error", "print_line", "run_one_shot",
    "run_until_interrupted", "setup_logging", "share_files",
]


def main(argv: Sequence[str] | None = None) -> int:
    """The ``p2pkit`` command (the console script's entry point)."""
    try:
        from ._cli import main as run

        return run(argv)
    except KeyboardInterrupt:
        # Ctrl-C in the first few tenths of a second (a traceback through the imports),
        # or at any moment the command's own handling does not cover
        sys.stderr.write("error: interrupted\n")
        return 130


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import _cli

        return getattr(_cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
