"""The receiver's record of which sequence numbers arrived: cumulative point + ranges.

``next`` is the lowest sequence number not yet received (the cumulative ack); ``ranges``
are the disjoint, sorted ``[start, end)`` runs received above it (the reorder window).
Adding a number is O(1) in order and O(log n) out of order.
"""

from __future__ import annotations

from bisect import bisect_right


class ReceivedRanges:
    def __init__(self, first: int, max_ranges: int = 1024) -> None:
        self.next = first
        self.ranges: list[list[int]] = []
        self._starts: list[int] = []  # ranges[i][0], kept for bisect
        self.max_ranges = max_ranges

    def add(self, seq: int) -> bool:
        """Record ``seq``; False if it was already there (a duplicate) or must be refused."""
        if seq == self.next:
            self.next = seq + 1
            ranges = self.ranges
            if ranges and ranges[0][0] == seq + 1:
                self.next = ranges[0][1]
                del ranges[0]
                del self._starts[0]
            return True
        if seq < self.next:
            return False
        return self._add_above(seq)

    def _add_above(self, seq: int) -> bool:
        ranges = self.ranges
        starts = self._starts
        i = bisect_right(starts, seq)
        if i > 0 and ranges[i - 1][1] > seq:
            return False
        joins_prev = i > 0 and ranges[i - 1][1] == seq
        joins_next = i < len(ranges) and starts[i] == seq + 1
        if joins_prev and joins_next:
            ranges[i - 1][1] = ranges[i][1]
            del ranges[i]
            del starts[i]
        elif joins_prev:
            ranges[i - 1][1] = seq + 1
        elif joins_next:
            ranges[i][0] = seq
            starts[i] = seq
        else:
            if len(ranges) >= self.max_ranges:
                return False  # too fragmented (hostile or pathological): let it be resent
            ranges.insert(i, [seq, seq + 1])
            starts.insert(i, seq)
        return True

    def contains(self, seq: int) -> bool:
        if seq < self.next:
            return True
        i = bisect_right(self._starts, seq)
        return i > 0 and self.ranges[i - 1][1] > seq

    def ack_bits(self) -> int:
        """Bit i set = ``next + 1 + i`` received (the header's 32-bit selective ack)."""
        bits = 0
        base = self.next + 1
        limit = base + 32
        for start, end in self.ranges:
            if start >= limit:
                break
            for seq in range(max(start, base), min(end, limit)):
                bits |= 1 << (seq - base)
        return bits

    def beyond_bitmap(self, count: int) -> list[tuple[int, int]]:
        """Up to ``count`` ranges (lowest first) not fully described by ``ack_bits``."""
        limit = self.next + 33
        out: list[tuple[int, int]] = []
        for start, end in self.ranges:
            if end > limit:
                out.append((start, end))
                if len(out) >= count:
                    break
        return out

    @property
    def highest(self) -> int:
        """One past the highest sequence number received."""
        return self.ranges[-1][1] if self.ranges else self.next
