"""The receiver's seq bookkeeping against a plain set model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from p2pkit.plugins.rudp.ranges import ReceivedRanges


@given(st.lists(st.integers(1000, 1100), max_size=300))
def test_matches_a_set(seqs: list[int]) -> None:
    r = ReceivedRanges(1000)
    seen: set[int] = set()
    for seq in seqs:
        assert r.add(seq) == (seq not in seen)
        seen.add(seq)
    expected_next = 1000
    while expected_next in seen:
        expected_next += 1
    assert r.next == expected_next
    above = sorted(s for s in seen if s > expected_next)
    flattened = [s for lo, hi in r.ranges for s in range(lo, hi)]
    assert flattened == above
    for lo, hi in r.ranges:
        assert lo < hi
    for (_, hi), (lo2, _) in zip(r.ranges, r.ranges[1:]):
        assert hi < lo2  # disjoint and not adjacent (adjacent ones merge)
    bits = r.ack_bits()
    for i in range(32):
        assert bool(bits >> i & 1) == ((r.next + 1 + i) in seen)
    for seq in range(990, 1110):
        assert r.contains(seq) == (seq < 1000 or seq in seen)


def test_ranges_beyond_the_bitmap_are_the_highest() -> None:
    r = ReceivedRanges(0)
    for seq in (2, 3, 40, 41, 42, 100, 200):
        r.add(seq)
    assert r.beyond_bitmap(8) == [(40, 43), (100, 101), (200, 201)]
    assert r.beyond_bitmap(2) == [(100, 101), (200, 201)]  # the newest news first


def test_too_many_ranges_are_refused() -> None:
    r = ReceivedRanges(0, max_ranges=3)
    assert all(r.add(s) for s in (2, 4, 6))
    assert not r.add(8)  # would be a fourth range: refused, so it will be resent
    assert r.add(3)  # joining existing ranges is always fine
