"""Open file descriptors shared by reads and writes, closed when idle (seed 004 §4.4.3)."""

from __future__ import annotations

import os
from collections.abc import Callable


class HandleCache:
    """path → file descriptor, with the time of last use. Not thread-safe by itself:
    the store calls it under its lock."""

    def __init__(self, monotonic: Callable[[], float], max_open: int = 128,
                 on_open: Callable[[], None] | None = None) -> None:
        self._monotonic = monotonic
        self._on_open = on_open
        self._max_open = max_open
        self._open: dict[str, list[float | int]] = {}  # path -> [fd, last_used]

    def __len__(self) -> int:
        return len(self._open)

    def get(self, path: str, *, writable: bool = True, create: bool = False) -> int:
        entry = self._open.get(path)
        now = self._monotonic()
        if entry is not None:
            entry[1] = now
            return int(entry[0])
        if len(self._open) >= self._max_open:
            self._close_oldest()
        flags = (os.O_RDWR if writable else os.O_RDONLY) | getattr(os, "O_CLOEXEC", 0)
        if create:
            flags |= os.O_CREAT
        fd = os.open(path, flags, 0o644)
        self._open[path] = [fd, now]
        if self._on_open is not None:
            self._on_open()
        return fd

    def close(self, path: str) -> None:
        entry = self._open.pop(path, None)
        if entry is not None:
            os.close(int(entry[0]))

    def close_idle(self, idle_s: float, now: float | None = None) -> int:
        """Close descriptors unused for ``idle_s`` seconds; returns how many."""
        now = self._monotonic() if now is None else now
        stale = [p for p, (_, used) in self._open.items() if now - used >= idle_s]
        for path in stale:
            self.close(path)
        return len(stale)

    def close_all(self) -> None:
        for path in list(self._open):
            self.close(path)

    def _close_oldest(self) -> None:
        oldest = min(self._open, key=lambda p: self._open[p][1])
        self.close(oldest)
