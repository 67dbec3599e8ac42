"""The virtual clock of a simulation: autojump, optionally onto a time grid.

Like ``trio.testing.MockClock(autojump_threshold=0)``, time stands still while any task
can run and jumps to the next deadline when every task is blocked. With ``resolution`` > 0
the jump lands on the next deadline rounded *up* to a multiple of ``resolution``: every
timer that expires inside one grid step fires in the same pass of trio's run loop (like
an OS timer slack), and the network's deliveries, rounded the same way, share those
instants. trio's cost is per distinct instant, so this is what makes overlay-scale runs
fast; no timer ever fires early, at most ``resolution`` late. ``resolution`` 0 is exact.

trio's run loop requires a ``MockClock`` for autojumping and MockClock cannot be
subclassed, so the grid variant is a MockClock whose ``_autojump`` hook (the method
trio's run loop calls when everything is idle) is replaced on the instance.
"""

from __future__ import annotations

import math

import trio
import trio.testing


def virtual_clock(resolution: float = 0.0) -> trio.testing.MockClock:
    """An autojump MockClock; with ``resolution`` > 0 its jumps land on the grid."""
    if resolution < 0:
        raise ValueError("resolution must be >= 0")
    clock = trio.testing.MockClock(autojump_threshold=0)
    if not resolution:
        return clock

    def autojump_to_grid() -> None:
        jump = trio.lowlevel.current_statistics().seconds_to_next_deadline
        if not 0 < jump < math.inf:
            return
        now = clock.current_time()
        target = now + jump
        grid = math.ceil(target / resolution - 1e-9) * resolution
        if grid < target:  # float rounding: never fire a timer early
            grid += resolution
        # rate is 0, so current_time() is exactly _virtual_base: set it to the grid point
        # itself rather than adding a difference that could land a hair below it.
        clock._virtual_base = grid

    clock._autojump = autojump_to_grid  # type: ignore[method-assign]
    return clock
