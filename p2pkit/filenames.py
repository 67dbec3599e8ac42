"""File names peers give each other. Defined in the kernel because every plugin that
carries one (the store's manifests, flooding's announcements) and every program that
prints or saves one must agree on what a peer may send: a name is written to the disk as
is by ``p2pkit get`` and shown in terminals and lists."""

from __future__ import annotations

import unicodedata

MAX_NAME_BYTES = 255  # what file systems allow for one path component
# Bidirectional controls: "clip\u202egpj.exe" shows as "clipexe.jpg".
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _unsafe_char(c: str) -> bool:
    # control characters, and the line and paragraph separators (str.splitlines breaks there)
    return unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in _BIDI_CONTROLS


def name_problem(name: str) -> str | None:
    """Why ``name`` (another node's choice) is not a file name we save under or print, or
    None. An ESC could clear or retitle the terminal, a newline split a line scripts read,
    a leading dot hide the file (or replace a dotfile where ``get`` runs)."""
    if not name:
        return "must not be empty"
    if "/" in name or "\\" in name or name in (".", ".."):
        return "must be a plain file name"
    if name.startswith("."):
        return "must not start with a dot"
    if any(_unsafe_char(c) for c in name):
        return "must not contain control characters"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"must be at most {MAX_NAME_BYTES} bytes long"
    return None


def plain_name(name: str) -> str:
    """``name`` (a local file's) made into one every peer accepts (:func:`name_problem`):
    valid UTF-8, separators and control characters as "_", no leading dot, at most
    255 bytes."""
    name = name.encode("utf-8", "replace").decode("utf-8")
    name = "".join("_" if c in "/\\" or _unsafe_char(c) else c for c in name).lstrip(".")
    name = name.encode("utf-8")[:MAX_NAME_BYTES].decode("utf-8", "ignore")
    return name or "file"
