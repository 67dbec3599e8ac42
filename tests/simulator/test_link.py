"""Link model exactness: serialisation, queue, latency, jitter order, loss statistics."""

from __future__ import annotations

import math
import random

import pytest
import trio
from p2pkit.simulator import HEADER_BYTES, LinkProfile, LossSpec, Network
from p2pkit.simulator._direction import DROP_LOSS, DROP_QUEUE, LinkDirection
from p2pkit.simulator._loss import GilbertElliottLoss

from .helpers import running


def _direction(**kwargs: object) -> LinkDirection:
    return LinkProfile(**kwargs).direction(True, random.Random(1))  # type: ignore[arg-type]


def test_serialisation_delay_is_size_over_rate() -> None:
    link = _direction(up_bps=1_000_000, latency=0.010)
    first = link.transmit(1028, 0.0)
    second = link.transmit(1028, 0.0)
    assert first == pytest.approx(1028 * 8 / 1e6 + 0.010)
    assert second - first == pytest.approx(1028 * 8 / 1e6)


def test_drop_tail_queue_counts_bytes() -> None:
    link = _direction(up_bps=1_000_000, queue_bytes=3000)
    results = [link.transmit(1000, 0.0) for _ in range(5)]
    assert [r >= 0 for r in results] == [True, True, True, False, False]
    assert results[3] == DROP_QUEUE
    assert link.drops_queue == 2
    # after the queue drained half-way, one more packet fits
    assert link.transmit(1000, 0.012) >= 0
    assert link.backlog(0.012) == pytest.approx(3000 - 0.012 * 125_000 + 1000)


def _admitted(link: LinkProfile, up: bool) -> int:
    """How many 1000-byte packets one direction takes at once."""
    direction = link.direction(up, random.Random(1))
    return sum(direction.transmit(1000, 0.0) >= 0 for _ in range(100))


def test_each_direction_may_have_its_own_queue() -> None:
    both = LinkProfile(up_bps=1e6, down_bps=1e6, queue_bytes=5000)
    assert (_admitted(both, True), _admitted(both, False)) == (5, 5)
    own = LinkProfile(up_bps=1e6, down_bps=1e6, queue_bytes=5000, up_queue_bytes=2000)
    assert (_admitted(own, True), _admitted(own, False)) == (2, 5)
    own = LinkProfile(up_bps=1e6, down_bps=1e6, down_queue_bytes=30_500)
    assert (_admitted(own, True), _admitted(own, False)) == (100, 30)  # up: the default 256 KiB


def test_jitter_keeps_fifo_unless_reordering_is_asked() -> None:
    fifo = _direction(latency=0.05, jitter=0.04)
    times = [fifo.transmit(100, i * 0.001) for i in range(500)]
    assert times == sorted(times)
    reordering = _direction(latency=0.05, reorder=0.2)
    times = [reordering.transmit(100, i * 0.001) for i in range(500)]
    assert times != sorted(times)


@pytest.mark.parametrize(("gap", "mean_ms"), [(0.010, 10.0), (0.002, 11.1), (0.001, 11.9)])
def test_in_order_jitter_raises_the_mean_on_dense_traffic(gap: float, mean_ms: float) -> None:
    """As docs/simulator.md says: packets closer than 2 x jitter wait for the one ahead."""
    link = _direction(latency=0.010, jitter=0.005)
    delays = [link.transmit(100, i * gap) - i * gap for i in range(20_000)]
    assert math.fsum(delays) / len(delays) * 1000 == pytest.approx(mean_ms, abs=0.1)
    assert min(delays) >= 0.005 and max(delays) <= 0.015


@pytest.mark.parametrize("rate", [0.01, 0.05])
def test_bernoulli_loss_within_five_sigma(rate: float) -> None:
    link = _direction(loss=LossSpec.bernoulli(rate))
    n = 40_000
    lost = sum(link.transmit(100, 0.0) == DROP_LOSS for _ in range(n))
    sigma = math.sqrt(n * rate * (1 - rate))
    assert abs(lost - n * rate) < 5 * sigma


def test_gilbert_elliott_stationary_loss_and_burst_length() -> None:
    p, r = 0.01, 0.25
    model = GilbertElliottLoss(p, r)
    rng = random.Random(7)
    outcomes = [model.lost(rng) for _ in range(200_000)]
    expected = p / (p + r)
    assert model.stationary_loss == pytest.approx(expected)
    assert sum(outcomes) / len(outcomes) == pytest.approx(expected, rel=0.1)
    # loss comes in bursts of mean length 1/r (bad_loss = 1)
    bursts, run = [], 0
    for lost in outcomes:
        if lost:
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    assert sum(bursts) / len(bursts) == pytest.approx(1 / r, rel=0.15)


def test_ge_spec_uses_netem_defaults() -> None:
    spec = LossSpec.gemodel(0.02)
    assert spec.expected_loss == pytest.approx(0.02 / (0.02 + 0.98))
    with pytest.raises(ValueError, match="probability"):
        LossSpec.gemodel(1.5)


async def test_end_to_end_delay_over_two_links_and_core(autojump_clock: object) -> None:
    from p2pkit.simulator import CoreLatency

    net = Network(seed=1, core=CoreLatency(mean=0.015))
    a = net.add_host("a", LinkProfile(up_bps=8_000_000, latency=0.002))
    b = net.add_host("b", LinkProfile(down_bps=4_000_000, latency=0.003))
    ea, eb = a.bind(5000), b.bind(6000)
    async with running(net, eb) as (rb,):
        t0 = trio.current_time()
        ea.send(b"x" * 972, eb.local_address)
        await trio.sleep(1)
    size = 972 + HEADER_BYTES
    expected = size * 8 / 8e6 + 0.002 + 0.015 + size * 8 / 4e6 + 0.003
    (t, _data, src), = rb.received
    assert t - t0 == pytest.approx(expected)
    assert src == ("11.0.0.1", 5000)


async def test_mtu_drop_is_counted(autojump_clock: object) -> None:
    net = Network(seed=1)
    a = net.add_host("a", LinkProfile(mtu=1200))
    b = net.add_host("b")
    ea, eb = a.bind(), b.bind()
    async with running(net, eb) as (rb,):
        ea.send(b"x" * (1200 - HEADER_BYTES), eb.local_address)
        ea.send(b"y" * (1201 - HEADER_BYTES), eb.local_address)
        await trio.sleep(1)
    assert rb.payloads == [b"x" * (1200 - HEADER_BYTES)]
    assert net.drops == {"mtu": 1}


async def test_duplication(autojump_clock: object) -> None:
    net = Network(seed=3)
    a = net.add_host("a", LinkProfile(duplicate=0.5))
    b = net.add_host("b")
    ea, eb = a.bind(), b.bind()
    async with running(net, eb) as (rb,):
        for i in range(400):
            ea.send(i.to_bytes(2, "big"), eb.local_address)
        await trio.sleep(1)
    assert 500 < len(rb.received) < 700
    assert sorted(set(rb.payloads)) == [i.to_bytes(2, "big") for i in range(400)]


async def test_resolution_rounds_delivery_up_to_the_grid(autojump_clock: object) -> None:
    net = Network(seed=1, resolution=0.001)
    a = net.add_host("a", LinkProfile(latency=0.0123))
    b = net.add_host("b")
    ea, eb = a.bind(), b.bind()
    async with running(net, eb) as (rb,):
        t0 = trio.current_time()
        ea.send(b"a", eb.local_address)
        ea.send(b"b", eb.local_address)
        await trio.sleep(1)
    assert [round(t - t0, 9) for t, _d, _a in rb.received] == [0.013, 0.013]
    assert net.dispatch_instants == 1  # one batch for both datagrams


async def test_unbound_port_and_buffering_before_run(autojump_clock: object) -> None:
    net = Network(seed=1)
    a = net.add_host("a")
    b = net.add_host("b")
    ea, eb = a.bind(), b.bind(7000)
    received: list[bytes] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)
        ea.send(b"early", ("11.0.0.2", 7000))
        ea.send(b"lost", ("11.0.0.2", 7001))
        await trio.sleep(0.5)
        await nursery.start(eb.run, lambda batch, now: received.extend(d for d, _ in batch))
        assert received == [b"early"]
        nursery.cancel_scope.cancel()
    assert net.drops == {"port_unreachable": 1}


def test_grid_clock_fires_timers_together_never_early() -> None:
    from p2pkit.simulator._clock import virtual_clock

    fired: list[tuple[float, float]] = []

    async def main() -> None:
        async def timer(delay: float) -> None:
            await trio.sleep(delay)
            fired.append((delay, trio.current_time()))

        async with trio.open_nursery() as nursery:
            for delay in (0.0101, 0.0102, 0.0109, 0.0110, 0.0111, 2.5):
                nursery.start_soon(timer, delay)

    trio.run(main, clock=virtual_clock(0.001))
    assert [round(t, 9) for _d, t in fired] == [0.011] * 4 + [0.012, 2.5]
    assert all(t >= d for d, t in fired)


def test_integer_fields_accept_a_float_written_for_them() -> None:
    # 64e3 is a float; the (compiled) link direction holds exact ints
    profile = LinkProfile(up_bps=1e6, queue_bytes=64e3, mtu=1500.0)  # type: ignore[arg-type]
    assert (profile.queue_bytes, profile.mtu) == (64000, 1500)
    assert profile.direction(True, random.Random(1)).transmit(1000, 0.0) > 0
