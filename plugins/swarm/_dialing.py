"""Which addresses a member told us of (``Peers``) we dial, and when again.

Addresses come from other members, who may be wrong or lying: a peer repeating a list of
addresses where nothing answers had every one dialled again each time the last dial timed
out, for as long as the download ran, and the dials in flight filled the slots that
honest members' suggestions needed. So: an address that failed waits before it is dialled
again (30 s, doubling to 10 min), and a member whose suggestions keep failing gets one
dial in flight at a time. Sans-IO: the caller dials and says how it went.
"""

from __future__ import annotations

from collections import Counter, OrderedDict

Address = tuple[str, int]

RETRY_AFTER_S = 30.0
RETRY_MAX_S = 600.0
REMEMBERED = 4096  # failed addresses remembered (the oldest forgotten first)
DOUBTED_AFTER = 4  # failures more than successes of a member's suggestions


class DialPolicy:
    def __init__(self) -> None:
        self.in_flight: dict[Address, str] = {}  # address -> the member that told us of it
        self._retry: OrderedDict[Address, tuple[float, int]] = OrderedDict()  # (when, failures)
        self._standing: Counter[str] = Counter()  # per member: failed minus good suggestions

    def may_dial(self, address: Address, told_by: str, now: float) -> bool:
        if address in self.in_flight:
            return False
        retry = self._retry.get(address)
        if retry is not None and now < retry[0]:
            return False
        if self._standing.get(told_by, 0) >= DOUBTED_AFTER:
            return told_by not in self.in_flight.values()
        return True

    def started(self, address: Address, told_by: str) -> None:
        self.in_flight[address] = told_by

    def finished(self, address: Address, ok: bool, now: float) -> None:
        told_by = self.in_flight.pop(address, None)
        if ok:
            self._retry.pop(address, None)
            if told_by is not None and self._standing.get(told_by, 0) > 0:
                self._standing[told_by] -= 1
                if not self._standing[told_by]:
                    del self._standing[told_by]
            return
        failures = self._retry.pop(address, (0.0, 0))[1] + 1
        self._retry[address] = (now + min(RETRY_MAX_S, RETRY_AFTER_S * 2 ** (failures - 1)), failures)
        while len(self._retry) > REMEMBERED:
            self._retry.popitem(last=False)
        if told_by is not None:
            self._standing[told_by] += 1
            if len(self._standing) > REMEMBERED:  # identities are cheap: the oldest go
                del self._standing[next(iter(self._standing))]


__all__ = ["DialPolicy"]
