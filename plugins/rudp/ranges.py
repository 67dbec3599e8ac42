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
        self._fresh: set[int] = set()  # out-of-order arrivals not yet reported in an ACK

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
        if len(self._fresh) < 4096:
            self._fresh.add(seq)
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

    def ack_ranges(self, count: int) -> list[tuple[int, int]]:
        """Ranges for the next ACK (ascending): first every range that gained a number
        since the last call, then the highest ones, up to ``count``; only ranges the
        32-bit bitmap does not fully describe.

        Reporting what is new matters most: the sender remembers older acks, and a packet
        received but never reported would be declared lost and sent again.
        """
        limit = self.next + 33
        chosen: dict[int, tuple[int, int]] = {}
        if self._fresh:
            starts = self._starts
            ranges = self.ranges
            for seq in self._fresh:
                i = bisect_right(starts, seq) - 1
                if i >= 0 and ranges[i][1] > seq and ranges[i][1] > limit:
                    chosen[ranges[i][0]] = (ranges[i][0], ranges[i][1])
                    if len(chosen) >= count:
                        break
            self._fresh.clear()
        if len(chosen) < count:
            for start, end in reversed(self.ranges):
                if end <= limit:
                    break
                chosen.setdefault(start, (start, end))
                if len(chosen) >= count:
                    break
        return sorted(chosen.values())

    def beyond_bitmap(self, count: int) -> list[tuple[int, int]]:
        """Up to ``count`` of the highest ranges not fully described by ``ack_bits``.

        The highest, because the sender remembers what earlier acks told it: what it has
        not heard of yet are the newest arrivals (the same choice as QUIC's ACK frame).
        """
        limit = self.next + 33
        out: list[tuple[int, int]] = []
        for start, end in reversed(self.ranges):
            if end <= limit:
                break
            out.append((start, end))
            if len(out) >= count:
                break
        out.reverse()
        return out

    @property
    def highest(self) -> int:
        """One past the highest sequence number received."""
        return self.ranges[-1][1] if self.ranges else self.next
