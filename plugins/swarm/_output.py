"""Where a download may be written, checked before anything is fetched.

A download that can only fail at its export wastes the whole transfer (and an ephemeral
node's data goes with it), so ``download(dest=...)`` and ``p2pkit get -o`` ask this first.
The export itself (the store's) writes a temporary file and renames it onto the target:
that would replace a device, a FIFO or a socket — ``-o /dev/null`` as root replaced
/dev/null — so only a regular file is ever replaced.
"""

from __future__ import annotations

import os
from pathlib import Path


def output_problem(dest: str | Path, *, file: bool = False) -> str | None:
    """Why ``dest`` (a file to write, or a directory to write the file's name into; with
    ``file``, only a file) cannot be written; None when it can. Given as text, a trailing
    slash means a directory (``Path`` would drop it)."""
    text = os.fspath(dest)
    path = Path(text)
    if text.endswith(("/", os.sep)) and not path.is_dir():
        return f"{text}: {'is not a directory' if path.exists() else 'no such directory'}"
    if path.is_dir() and not file:
        if not os.access(path, os.W_OK | os.X_OK):
            return f"{text}: the directory is not writable"
        return None
    if path.exists() and not path.is_file():
        return f"{text}: exists and is not a regular file"
    parent = path.parent
    if not parent.is_dir():
        return f"{text}: no such directory {str(parent)!r}"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{text}: the directory {str(parent)!r} is not writable"
    return None


__all__ = ["output_problem"]
