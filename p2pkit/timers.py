"""One-shot protocol timers, and who drives them.

A sans-IO protocol core says "call me at T" through a :class:`Timer`. On a real socket
one trio task per timer sleeps until its deadline (:class:`TaskTimer`). An endpoint that
drives time itself — the simulator's virtual endpoint, whose network task already sleeps
until its next event — offers ``timer(callback)`` and fires those timers from its own
loop: a heartbeat then costs a heap entry instead of a trio task wake-up, which is what
lets thousands of simulated nodes run faster than real time. :func:`open_timer` picks.

Contract, whoever drives it: ``set(deadline)`` arms the timer to fire once at or after
``deadline`` (replacing any earlier setting; ``math.inf`` disarms); the callback gets the
current time. A callback that raises is logged and counted (``errors``) and the timer
stays as the callback left it, like a datagram handler in the demultiplexer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import trio

TimerCallback = Callable[[float], None]

log = logging.getLogger("p2pkit.timers")


@runtime_checkable
class Timer(Protocol):
    @property
    def deadline(self) -> float:
        """When the timer fires next (``math.inf`` = disarmed)."""
        ...

    def set(self, deadline: float) -> None:
        """Fire once at ``deadline`` (``math.inf`` disarms)."""
        ...

    def close(self) -> None:
        """Disarm for good; later ``set`` calls are ignored."""
        ...


@runtime_checkable
class TimerSource(Protocol):
    """An endpoint that fires timers from its own event loop."""

    def timer(self, callback: TimerCallback) -> Timer: ...


def run_callback(callback: TimerCallback, now: float, owner: object) -> bool:
    """Call a timer callback; False (after logging) if it raised."""
    try:
        callback(now)
    except Exception:
        log.exception("timer callback %r of %r failed", callback, owner)
        return False
    return True


class TaskTimer:
    """A timer driven by a trio task: run :meth:`run` in a nursery."""

    def __init__(self, callback: TimerCallback) -> None:
        self._callback = callback
        self._deadline = math.inf
        self._scope: trio.CancelScope | None = None
        self._closed = False
        self.errors = 0

    @property
    def deadline(self) -> float:
        return self._deadline

    def set(self, deadline: float) -> None:
        if self._closed:
            return
        self._deadline = deadline
        if self._scope is not None:
            self._scope.deadline = deadline

    def close(self) -> None:
        self.set(math.inf)
        self._closed = True

    async def run(self) -> None:
        """Fire the callback at each deadline until cancelled."""
        while True:
            with trio.CancelScope(deadline=self._deadline) as scope:
                self._scope = scope
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            if now < self._deadline:  # moved later at the very instant it expired
                continue
            self._deadline = math.inf
            if not run_callback(self._callback, now, self):
                self.errors += 1


def open_timer(endpoint: object, callback: TimerCallback, nursery: trio.Nursery) -> Timer:
    """A timer for ``callback``: the endpoint's own when it drives time, else a task in
    ``nursery`` (which must outlive every use of the timer)."""
    if isinstance(endpoint, TimerSource):
        return endpoint.timer(callback)
    timer = TaskTimer(callback)
    nursery.start_soon(timer.run)
    return timer
