"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import trio.testing


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    """Virtual time that jumps whenever every task is blocked (pytest-trio uses it as the
    run's clock when a test asks for it)."""
    return trio.testing.MockClock(autojump_threshold=0)


def _descriptors_under(directory: Path) -> list[str]:
    """What this process has open inside ``directory``. Leak tests count these, not all of
    the process's descriptors: an earlier test's socket closed by the garbage collector
    in the middle of a count made those flaky."""
    root = str(directory.resolve())
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed since the listing
            continue
        if target.startswith(root):
            found.append(target)
    return found


@pytest.fixture
def descriptors_under() -> Callable[[Path], list[str]]:
    return _descriptors_under
