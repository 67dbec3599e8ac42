"""The RTT estimator and retransmission timeout (plugins/rudp/rtt.py)."""

from __future__ import annotations

import pytest
from p2pkit.plugins.rudp.rtt import MAX_ACK_DELAY, RttEstimator


def test_first_sample_sets_srtt_and_half_of_it_as_variance() -> None:
    est = RttEstimator(1.0, 0.2, 60.0)
    assert est.rto == 1.0  # nothing measured yet: the initial RTO
    est.update(0.1)
    assert (est.srtt, est.rttvar, est.min_rtt) == (0.1, 0.05, 0.1)
    assert est.rto == pytest.approx(0.1 + 0.2)


@pytest.mark.parametrize("rtt", [0.01, 0.05, 0.15, 0.4])
def test_a_steady_rtt_leaves_min_rto_beyond_it(rtt: float) -> None:
    """Linux's rule: the floor bounds the variance term. With RFC 6298's max(rto, min_rto)
    a steady 150 ms path got a 200 ms timeout, and a queue on either direction (a swarm
    node's uplink full of its uploads holds the acks of its downloads) made the RTT jump
    past it: the whole flight was declared lost and sent twice (swarm N = 100: 93 000
    duplicate datagrams, 23 000 timeouts)."""
    est = RttEstimator(1.0, 0.2, 60.0)
    for _ in range(100):
        est.update(rtt)
    assert est.rttvar < 1e-3
    assert est.rto == pytest.approx(rtt + 0.2, abs=1e-3)
    assert est.rto >= est.srtt + est.min_rto


def test_a_jittery_rtt_gets_four_times_its_variance() -> None:
    est = RttEstimator(1.0, 0.2, 60.0)
    for i in range(200):
        est.update(0.1 if i % 2 else 0.3)  # deviation ~0.1 s each sample
    assert est.rto == pytest.approx(est.srtt + 4 * est.rttvar)
    assert est.rto > est.srtt + est.min_rto


def test_backoff_doubles_to_the_ceiling_and_progress_resets_it() -> None:
    est = RttEstimator(1.0, 0.2, 2.0)
    est.update(0.1)
    base = est.rto
    est.on_timeout()
    assert est.rto == pytest.approx(2 * base)
    for _ in range(10):
        est.on_timeout()
    assert est.rto == 2.0
    est.on_progress()
    assert est.rto == pytest.approx(base)


def test_probe_timeout_comes_before_the_rto_and_allows_the_ack_delay() -> None:
    est = RttEstimator(1.0, 0.2, 60.0)
    for _ in range(100):
        est.update(0.05)
    assert est.pto == pytest.approx(0.05 + 0.001 + MAX_ACK_DELAY, abs=1e-3)
    assert est.pto < est.rto
