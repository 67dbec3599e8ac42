"""Content ids ("rids"): the name of a file on the network — 64 lowercase hex digits (the
SHA-256 of its manifest's canonical encoding, computed by the store plugin). Defined in
the kernel because its API and CLI take rids (``Node.unshare``, ``--unshare``) and every
plugin and the web UI must agree on what one looks like."""

from __future__ import annotations

import re

RID_PATTERN = "^[0-9a-f]{64}$"
_RID_RE = re.compile(r"[0-9a-f]{64}")


def is_rid(value: object) -> bool:
    """True if ``value`` is a rid as the network spells it: 64 lowercase hex digits."""
    return isinstance(value, str) and _RID_RE.fullmatch(value) is not None


def parse_rid(text: str) -> str:
    """A rid as a person copies it — surrounding space and capitals are fine — in the
    network's spelling; ValueError naming the text if it is not one."""
    rid = text.strip().lower()
    if not is_rid(rid):
        raise ValueError(f"{text[:80]!r} is not a content id (64 hex digits)")
    return rid
