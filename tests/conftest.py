"""Fixtures shared by every test directory."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio.testing

from p2pkit.compiled import pure_python_requested

ROOT = Path(__file__).resolve().parent.parent


def stale_extensions(root: Path = ROOT) -> list[str]:
    """Compiled modules (setup.py builds them in place) older than their Python source: they
    would be imported instead of the code under test."""
    stale = []
    for built in sorted(root.glob("[ps]*/**/*.so")):
        source = built.with_name(built.name.split(".", 1)[0] + ".py")
        if source.exists() and source.stat().st_mtime > built.stat().st_mtime:
            stale.append(str(source.relative_to(root)))
    return stale


def pytest_sessionstart(session: pytest.Session) -> None:
    if pure_python_requested():  # the extensions are not imported at all
        return
    stale = stale_extensions()
    if stale:
        pytest.exit(f"compiled modules are older than their sources ({', '.join(stale)}): "
                    "`make install` rebuilds them", returncode=4)


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


@pytest.fixture
def probe_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The store's real media probe, wrapped to note which thread ran it (a real node's
    runs in a worker thread; a simulated or ephemeral node's must not)."""
    from p2pkit.plugins.store import _content, _media

    seen: list[int] = []
    real = _media.probe  # the function _content calls, defined in _media

    def noting(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(_content, "probe", noting)
    return seen
