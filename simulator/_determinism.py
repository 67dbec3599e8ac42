"""Pinning trio's scheduler so a simulation is reproducible.

trio shuffles each batch of runnable tasks with a private module-level RNG
(``trio._core._run._r``). pytest-trio and trio's Hypothesis plugin make that deterministic
by seeding it and setting ``_ALLOW_DETERMINISTIC_SCHEDULING`` (the batch is then sorted by
task creation order before the seeded shuffle); we do the same for the duration of a run
and restore both afterwards.

String hashing is randomised per process (``PYTHONHASHSEED``), so code that iterates over
a set of strings can behave differently in two processes. ``p2pkit sim run`` therefore
re-executes itself with ``PYTHONHASHSEED=0`` (see ``plugin.py``).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import trio

from ._rng import derive_seed


@contextlib.contextmanager
def pinned_scheduler(seed: int) -> Iterator[None]:
    """Make trio's task scheduling order a function of ``seed`` inside the block."""
    run_module = trio._core._run
    state = run_module._r.getstate()
    allowed = run_module._ALLOW_DETERMINISTIC_SCHEDULING
    run_module._r.seed(derive_seed(seed, "trio-scheduler"))
    run_module._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    # Code under test that uses the global ``random`` module gets a seeded stream too.
    global_state = random.getstate()
    random.seed(derive_seed(seed, "global-random"))
    try:
        yield
    finally:
        random.setstate(global_state)
        run_module._r.setstate(state)
        run_module._ALLOW_DETERMINISTIC_SCHEDULING = allowed  # type: ignore[misc]
