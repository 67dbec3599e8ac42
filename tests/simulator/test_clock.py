"""The virtual clock delivers the network's instants itself while every task is blocked
(simulator/_clock.py): timing, interleaving with tasks, and failures."""

from __future__ import annotations

import pytest
import trio
from p2pkit.simulator import LinkProfile, Network
from p2pkit.simulator import _clock as clock_module
from p2pkit.simulator._clock import idle_driver, virtual_clock
from p2pkit.simulator._endpoint import VirtualEndpoint

from p2pkit.endpoint import Datagram


def _pair(network: Network, latency: float) -> tuple[VirtualEndpoint, VirtualEndpoint]:
    a = network.add_host("a", LinkProfile(latency=latency))
    b = network.add_host("b")
    return a.bind(), b.bind()


@pytest.mark.parametrize("resolution", [0.0, 0.001])
@pytest.mark.parametrize("trio_internals", [True, False], ids=["runner", "statistics"])
def test_deliveries_timers_and_tasks_keep_virtual_time(
    resolution: float, trio_internals: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not trio_internals:  # what the clock does if a trio release moves what it reads
        monkeypatch.setattr(clock_module, "trio_run_internals", lambda: None)
    log: list[tuple[str, float]] = []

    async def main() -> None:
        network = Network(seed=1, resolution=resolution)
        ea, eb = _pair(network, 0.010)
        async with trio.open_nursery() as nursery:
            await nursery.start(network.run)
            driver = idle_driver(trio.lowlevel.current_clock())
            assert driver is not None and driver.networks == [network]  # the clock delivers
            t0 = trio.current_time()

            def dispatch(batch: list[Datagram], now: float) -> None:
                for data, _addr in batch:
                    log.append((data.decode(), round(now - t0, 6)))
                    if data == b"ping":  # answered from the callback, at this instant
                        eb.send(b"pong", ea.local_address)

            await nursery.start(eb.run, dispatch)
            await nursery.start(ea.run, dispatch)
            timer = eb.timer(lambda now: log.append(("timer", round(now - t0, 6))))
            timer.set(t0 + 0.015)
            ea.send(b"ping", eb.local_address)

            async def sleeper() -> None:
                await trio.sleep(0.012)
                log.append(("task", round(trio.current_time() - t0, 6)))

            nursery.start_soon(sleeper)
            await trio.sleep(1)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=virtual_clock(resolution))
    assert log == [("ping", 0.01), ("task", 0.012), ("timer", 0.015), ("pong", 0.02)]


def test_a_callback_may_wake_a_task_and_start_one() -> None:
    seen: list[str] = []

    async def main() -> None:
        network = Network(seed=2, resolution=0.001)
        ea, eb = _pair(network, 0.005)
        arrived = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(network.run)

            async def spawned(now: float) -> None:
                seen.append(f"spawned at {now:.3f}")

            def dispatch(batch: list[Datagram], now: float) -> None:
                arrived.set()
                nursery.start_soon(spawned, now - t0)

            await nursery.start(eb.run, dispatch)
            t0 = trio.current_time()
            ea.send(b"x", eb.local_address)
            await arrived.wait()
            seen.append(f"woken at {trio.current_time() - t0:.3f}")
            await trio.sleep(0.1)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=virtual_clock(0.001))
    assert sorted(seen) == ["spawned at 0.005", "woken at 0.005"]


def test_a_failing_callback_ends_the_run_with_its_own_error() -> None:
    class Boom(Exception):
        pass

    async def main() -> None:
        network = Network(seed=3)
        ea, eb = _pair(network, 0.005)

        def dispatch(batch: list[Datagram], now: float) -> None:
            raise Boom("a bug in a datagram handler")

        async with trio.open_nursery() as nursery:
            await nursery.start(network.run)
            await nursery.start(eb.run, dispatch)
            ea.send(b"x", eb.local_address)
            await trio.sleep(1)

    with pytest.RaisesGroup(pytest.RaisesExc(Boom, match="a bug")):
        trio.run(main, clock=virtual_clock())


def test_trio_gets_in_during_a_long_stretch_of_task_free_instants() -> None:
    # a Ctrl-C reaches trio the same way as run_sync_soon (through its I/O check), which
    # only runs when the clock hands control back: it does so every few dozen instants
    ran_at: list[float] = []

    async def main() -> None:
        network = Network(seed=1, resolution=0.001)
        endpoint = network.add_host("a").bind()
        async with trio.open_nursery() as nursery:
            await nursery.start(network.run)
            token = trio.lowlevel.current_trio_token()
            t0 = trio.current_time()
            fired = [0]

            def tick(now: float) -> None:  # re-arms itself every millisecond, wakes no task
                fired[0] += 1
                if fired[0] == 10:
                    token.run_sync_soon(lambda: ran_at.append(trio.current_time() - t0))
                timer.set(now + 0.001)

            timer = endpoint.timer(tick)
            timer.set(t0 + 0.001)
            await trio.sleep(5)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=virtual_clock(0.001))
    assert len(ran_at) == 1 and ran_at[0] < 0.2  # not at 5 s, when the sleep ends
