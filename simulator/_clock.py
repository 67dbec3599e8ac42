"""The virtual clock of a simulation: autojump, optionally onto a time grid, and the
network's deliveries run from the clock itself.

Like ``trio.testing.MockClock(autojump_threshold=0)``, time stands still while any task
can run and jumps to the next deadline when every task is blocked. With ``resolution`` > 0
the jump lands on the next deadline rounded *up* to a multiple of ``resolution``: every
timer that expires inside one grid step fires in the same pass of trio's run loop (like
an OS timer slack), and the network's deliveries, rounded the same way, share those
instants. trio's cost is per distinct instant, so this is what makes overlay-scale runs
fast; no timer ever fires early, at most ``resolution`` late. ``resolution`` 0 is exact.

When every task is blocked and a registered :class:`~p2pkit.simulator.Network` has the
earliest pending instant, the clock moves there and the network delivers it right away —
and the next one, and so on, as long as no task became runnable and no trio deadline
comes first. Most instants of a big simulation wake no task at all (protocol cores are
called synchronously and their timers are the network's), and this way they cost no trip
through trio's run loop and no cancel scope of a network task.

trio's run loop requires a ``MockClock`` for autojumping and MockClock cannot be
subclassed, so the virtual clock is a MockClock whose ``_autojump`` hook (the method
trio's run loop calls when everything is idle) is replaced on the instance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sized
from typing import TYPE_CHECKING

import trio
import trio.testing

if TYPE_CHECKING:
    from ._network import Network


INSTANTS_PER_PASS = 64


class IdleDriver:
    """The ``_autojump`` of a virtual clock (see the module docstring)."""

    def __init__(self, clock: trio.testing.MockClock, resolution: float) -> None:
        self.clock = clock
        self.resolution = resolution
        self.networks: list[Network] = []

    def __call__(self) -> None:
        clock = self.clock
        internals = trio_run_internals()
        # Back to trio's loop now and then even if nothing woke: its I/O check is what
        # lets a Ctrl-C (or any run_sync_soon) in; a pass costs one epoll(0).
        for _ in range(INSTANTS_PER_PASS):
            if internals is not None:
                runq, next_deadline = internals
                if runq:
                    return
                now = clock.current_time()
                target = now + (next_deadline() - now)  # as current_statistics computes it
            else:
                stats = trio.lowlevel.current_statistics()
                if stats.tasks_runnable:
                    return
                now = clock.current_time()
                target = now + stats.seconds_to_next_deadline
            network = None
            instant = math.inf
            for candidate in self.networks:
                t = candidate.next_instant()
                if t < instant:
                    network, instant = candidate, t
            if network is not None and instant <= target:
                if instant > now:
                    clock._virtual_base = instant  # rate 0: current_time() is exactly this
                if not network.deliver_from_clock(max(instant, now)):
                    return  # it failed; its task wakes up and raises
                continue
            self._jump(now, target)
            return

    def _jump(self, now: float, target: float) -> None:
        if not now < target < math.inf:
            return
        resolution = self.resolution
        if resolution:
            grid = math.ceil(target / resolution - 1e-9) * resolution
            if grid < target:  # float rounding: never fire a timer early
                grid += resolution
            target = grid
        # rate is 0, so current_time() is exactly _virtual_base: set it to the target
        # itself rather than adding a difference that could land a hair below it.
        self.clock._virtual_base = target


def trio_run_internals() -> tuple[Sized, Callable[[], float]] | None:
    """trio's run queue and next deadline, read from the runner itself: what
    ``trio.lowlevel.current_statistics()`` reports as ``tasks_runnable`` and
    ``seconds_to_next_deadline``, without building the statistics object (and the I/O
    backend's) at every instant — that cost ~3 % of a 1000-node run. Private, so None if
    a trio release moved them: the clock then takes the public way."""
    try:
        runner = trio._core._run.GLOBAL_RUN_CONTEXT.runner
        return runner.runq, runner.deadlines.next_deadline
    except AttributeError:
        return None


def idle_driver(clock: trio.abc.Clock) -> IdleDriver | None:
    """The driver of ``clock`` if it is a virtual clock made here, else None."""
    driver = getattr(clock, "_autojump", None)
    return driver if isinstance(driver, IdleDriver) else None


def virtual_clock(resolution: float = 0.0) -> trio.testing.MockClock:
    """An autojump MockClock; with ``resolution`` > 0 its jumps land on the grid."""
    if resolution < 0:
        raise ValueError("resolution must be >= 0")
    clock = trio.testing.MockClock(autojump_threshold=0)
    clock._autojump = IdleDriver(clock, resolution)  # type: ignore[method-assign]
    return clock
