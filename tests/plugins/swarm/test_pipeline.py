import pytest
from p2pkit.plugins.swarm._pipeline import (
    MAX_DEPTH,
    MIN_DEPTH,
    RateMeter,
    pipeline_depth,
    steal_pays,
)


def test_depth_follows_bandwidth_delay_product() -> None:
    block = 64 * 1024
    assert pipeline_depth(0, 0.1, block) == MIN_DEPTH
    assert pipeline_depth(float("nan"), 0.1, block) == MIN_DEPTH
    small = pipeline_depth(100_000, 0.05, block)
    big = pipeline_depth(10_000_000, 0.1, block)
    assert MIN_DEPTH <= small < big <= MAX_DEPTH
    assert pipeline_depth(10_000_000, 0.1, block) == 2 + 31  # ceil(2*1e6/65536)=31
    assert pipeline_depth(10**12, 1, block) == MAX_DEPTH


def test_depth_grows_when_the_pipeline_is_the_bottleneck() -> None:
    block, rtt, path_rate = 64 * 1024, 0.1, 20e6
    depth = MIN_DEPTH
    for _ in range(10):
        measured = min(path_rate, depth * block / rtt)
        depth = pipeline_depth(measured, rtt, block)
    assert depth * block / rtt >= path_rate


def test_rate_meter_window() -> None:
    m = RateMeter(window=5)
    for t in range(10):
        m.add(1000, float(t))
    assert m.rate(10.0) == pytest.approx(1000, rel=0.25)
    assert m.rate(100.0) == 0
    assert m.total == 10_000


def test_rate_meter_takes_back_bytes_that_were_never_sent() -> None:
    m = RateMeter(window=2)
    m.add(1000, 0.0)
    m.add(1000, 0.5)
    m.withdraw(1000, 0.55)  # the second block was withdrawn before it left
    assert m.total == 1000
    assert m.rate(1.0) == pytest.approx(1000)
    # the first sample leaves the window before the withdrawal does: never negative
    assert m.rate(2.52) >= 0
    assert m.rate(10.0) == 0


def test_a_request_moves_only_if_it_comes_sooner_from_the_new_peer() -> None:
    """The head of a 2 Mbit/s peer's queue (already on its wire) stays there even when a
    20 Mbit/s peer has room: its pipeline and a round trip take longer than the rest of
    that one block. Before, 44 % of moved blocks were such heads and the moved copy
    usually arrived second, a duplicate on the fast uplink."""
    block = 16384
    slow, fast_delay = 2e6 / 8, 0.17 + 8 * block / (20e6 / 8)  # ~0.22 s
    assert not steal_pays(0, slow, fast_delay, block)  # ~0.07 s left at the slow peer
    assert not steal_pays(2, slow, fast_delay, block)
    assert steal_pays(6, slow, fast_delay, block)  # seven blocks ahead: 0.46 s
    assert steal_pays(0, 0.0, fast_delay, block)  # the old peer sends nothing: move it
