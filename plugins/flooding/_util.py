"""Small sans-IO helpers: a bounded LRU of seen ids, a per-peer token bucket, and the
signatures already verified in this process."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable

from p2pkit.identity import verify


class SeenCache:
    """Ids seen recently (duplicate suppression), bounded in size and age."""

    def __init__(self, capacity: int = 4096, max_age: float = 60.0) -> None:
        self.capacity = capacity
        self.max_age = max_age
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def add(self, key: Hashable, now: float) -> bool:
        """Record ``key``; False if it was already seen (and not too old)."""
        self._trim(now)
        if key in self._seen:
            return False
        self._seen[key] = now
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def __contains__(self, key: Hashable) -> bool:
        return key in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def _trim(self, now: float) -> None:
        while self._seen:
            key, when = next(iter(self._seen.items()))
            if now - when <= self.max_age:
                return
            del self._seen[key]


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take(now)`` spends one if it can."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float, cost: float = 1.0) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True


class VerifiedSignatures:
    """Signatures that verified, shared by every core in the process: a signed list is
    checked once per process, not once per node (a simulation of 200 nodes verified each
    announce 200 times, 5 % of its CPU time). Only a success is kept, under the key, the
    signature and the SHA-256 of the signed bytes, so a hit means this very triple
    verified; anything else is checked. Bounded: the oldest goes first."""

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self._ok: OrderedDict[tuple[bytes, bytes], bytes] = OrderedDict()

    def verify(self, public_key: bytes, signature: bytes, data: bytes) -> bool:
        key = (public_key, signature)
        digest = hashlib.sha256(data).digest()
        if self._ok.get(key) == digest:
            return True
        if not verify(public_key, signature, data):
            return False
        self._ok[key] = digest
        self._ok.move_to_end(key)
        while len(self._ok) > self.capacity:
            self._ok.popitem(last=False)
        return True


verified = VerifiedSignatures()
