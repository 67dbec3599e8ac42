"""Open file descriptors shared by reads and writes, closed when idle (seed 004 §4.4.3).

A use only sets a flag (no clock read on the read/append path: in a node the clock is
trio's, ~0.3 µs a call); the sweep turns the flag into a time. A handle used since the
previous sweep counts as used at this sweep, so it is closed once ``idle_s`` has passed
without use, give or take one sweep interval (never earlier).
"""

from __future__ import annotations

import os
from collections.abc import Callable


class Handle:
    """One open descriptor. ``touched``: used since the last sweep."""

    __slots__ = ("fd", "touched", "used")

    def __init__(self, fd: int, used: float) -> None:
        self.fd = fd
        self.used = used
        self.touched = False


class HandleCache:
    """path → open :class:`Handle`. Not thread-safe by itself: the store calls it under
    its lock. ``entries`` is public so the store's hot paths can look a handle up inline
    (set ``touched`` on the one they use)."""

    def __init__(self, monotonic: Callable[[], float], max_open: int = 128,
                 on_open: Callable[[], None] | None = None) -> None:
        self._monotonic = monotonic
        self._on_open = on_open
        self._max_open = max_open
        self.entries: dict[str, Handle] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, path: str, *, writable: bool = True, create: bool = False) -> int:
        entry = self.entries.get(path)
        if entry is not None:
            entry.touched = True
            return entry.fd
        if len(self.entries) >= self._max_open:
            self._close_oldest()
        flags = (os.O_RDWR if writable else os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0)
        if create:
            flags |= os.O_CREAT
        fd = os.open(path, flags, 0o644)
        self.entries[path] = Handle(fd, self._monotonic())
        if self._on_open is not None:
            self._on_open()
        return fd

    def close(self, path: str) -> None:
        entry = self.entries.pop(path, None)
        if entry is not None:
            os.close(entry.fd)

    def close_idle(self, idle_s: float, now: float | None = None) -> int:
        """Close descriptors unused for ``idle_s`` seconds; returns how many."""
        now = self._monotonic() if now is None else now
        stale = []
        for path, entry in self.entries.items():
            if entry.touched:
                entry.touched, entry.used = False, now
            elif now - entry.used >= idle_s:
                stale.append(path)
        for path in stale:
            self.close(path)
        return len(stale)

    def close_all(self) -> None:
        for path in list(self.entries):
            self.close(path)

    def _close_oldest(self) -> None:
        oldest = min(self.entries, key=lambda p: (self.entries[p].touched, self.entries[p].used))
        self.close(oldest)
