"""The timer contract (p2pkit.timers), checked against both drivers: the trio task used on
real sockets and the simulator's network loop."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable

import pytest
import trio
from p2pkit.simulator import LinkProfile, Network

from p2pkit.timers import TaskTimer, Timer, TimerSource, open_timer

Factory = Callable[[Callable[[float], None]], Timer]


@pytest.fixture(params=["task", "network"])
async def make_timer(request: pytest.FixtureRequest, autojump_clock: trio.testing.MockClock,
                     ) -> AsyncIterator[Factory]:
    async with trio.open_nursery() as nursery:
        if request.param == "task":
            def factory(callback: Callable[[float], None]) -> Timer:
                return open_timer(object(), callback, nursery)
        else:
            network = Network(resolution=0.0)
            endpoint = network.add_host("h", LinkProfile()).bind(1)
            await nursery.start(network.run)

            def factory(callback: Callable[[float], None]) -> Timer:
                return open_timer(endpoint, callback, nursery)
        yield factory
        nursery.cancel_scope.cancel()


async def test_fires_once_at_its_deadline(make_timer: Factory, autojump_clock: trio.testing.MockClock) -> None:
    fired: list[float] = []
    timer = make_timer(fired.append)
    start = trio.current_time()
    timer.set(start + 1.5)
    await trio.sleep(5)
    assert fired == [pytest.approx(start + 1.5)]
    assert timer.deadline == math.inf


async def test_moving_later_and_earlier(make_timer: Factory, autojump_clock: trio.testing.MockClock) -> None:
    fired: list[float] = []
    timer = make_timer(fired.append)
    start = trio.current_time()
    timer.set(start + 1.0)
    timer.set(start + 3.0)  # later: must not fire at 1.0
    await trio.sleep(2)
    assert fired == []
    timer.set(start + 2.5)  # earlier again
    await trio.sleep(2)
    assert fired == [pytest.approx(start + 2.5)]


async def test_inf_disarms_and_close_is_final(make_timer: Factory, autojump_clock: trio.testing.MockClock) -> None:
    fired: list[float] = []
    timer = make_timer(fired.append)
    start = trio.current_time()
    timer.set(start + 1.0)
    timer.set(math.inf)
    await trio.sleep(2)
    timer.close()
    timer.set(trio.current_time() + 1.0)
    await trio.sleep(2)
    assert fired == []


async def test_callback_can_rearm_itself(make_timer: Factory, autojump_clock: trio.testing.MockClock) -> None:
    fired: list[float] = []
    timers: list[Timer] = []

    def tick(now: float) -> None:
        fired.append(now)
        if len(fired) < 3:
            timers[0].set(now + 1.0)

    timers.append(make_timer(tick))
    start = trio.current_time()
    timers[0].set(start + 1.0)
    await trio.sleep(10)
    assert fired == [pytest.approx(start + k) for k in (1.0, 2.0, 3.0)]


async def test_a_raising_callback_is_contained(make_timer: Factory, autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[float] = []

    def broken(now: float) -> None:
        calls.append(now)
        raise ValueError("bug in a protocol core")

    timer = make_timer(broken)
    timer.set(trio.current_time() + 1.0)
    await trio.sleep(2)
    timer.set(trio.current_time() + 1.0)  # still usable afterwards
    await trio.sleep(2)
    assert len(calls) == 2
    assert "bug in a protocol core" in caplog.text


def test_only_endpoints_with_timer_are_timer_sources() -> None:
    network = Network()
    assert isinstance(network.add_host("h").bind(1), TimerSource)
    assert not isinstance(object(), TimerSource)


async def test_network_timers_land_on_the_grid_never_early(autojump_clock: trio.testing.MockClock) -> None:
    network = Network(resolution=0.01)
    endpoint = network.add_host("h").bind(1)
    fired: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        start = trio.current_time()
        timer = endpoint.timer(fired.append)
        timer.set(start + 0.0131)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert len(fired) == 1
    assert fired[0] >= start + 0.0131
    assert fired[0] - (start + 0.0131) < 0.01
    assert network.stats()["timers_fired"] == 1


async def test_closing_the_endpoint_disarms_its_timers(autojump_clock: trio.testing.MockClock) -> None:
    network = Network()
    endpoint = network.add_host("h").bind(1)
    fired: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        endpoint.timer(fired.append).set(trio.current_time() + 1)
        endpoint.close()
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert fired == []


async def test_task_timer_counts_errors(autojump_clock: trio.testing.MockClock) -> None:
    def broken(now: float) -> None:
        raise RuntimeError("x")

    timer = TaskTimer(broken)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(timer.run)
        timer.set(trio.current_time() + 1)
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert timer.errors == 1
