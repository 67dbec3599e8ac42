"""Which addresses to dial again, and when; and the peers a node remembers (sans-IO).

A node that lost sight of a peer used to find it again only by chance: the bootstrap
addresses were dialled again only when the node had no peer at all, peer exchange forgot
an address after one failed dial, and nothing was kept across a restart. So a node that
restarted (same data dir, same port, no ``--bootstrap``) while its old neighbours still
had each other was never found again, nor did it look for them.

:class:`Redialer` decides, from ``now`` alone, what to dial: bootstrap addresses while
they are not connected (for as long as that lasts), neighbours we lost (for
``lost_for`` seconds) and remembered peers read at start, with a backoff doubling from
``interval`` (capped at ``8 × interval`` for bootstrap addresses, which are never given
up); and how long to wait before a learned (peer exchange, LAN) address that failed is
tried again, forgetting it after ``LEARNED_FAILURES`` failures in a row. The glue
dials, within the room for peers.

:class:`PeerBook` is the bounded list of peers we were connected to, kept in the data dir
(``flooding.peers``, JSON) so that a restarted node dials some of them at start.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Annotated

import msgspec

Address = tuple[str, int]

PEERS_FILE = "flooding.peers"  # in the data dir
MAX_REMEMBERED = 256  # the most `remember_peers` may ask for
LEARNED_FAILURES = 3  # failed dials in a row before a learned address is forgotten
MAX_LOST = 256  # lost neighbours being redialled at once (the oldest goes first)
MAX_LEARNED_FAILING = 1024  # learned addresses in backoff (as many as known_peers holds)
BACKOFF_CAP = 8  # a redial waits at most this many intervals


@dataclass
class _Target:
    addr: Address
    peer_id: str | None  # for a bootstrap address, the peer it led to once it answered
    since: float  # when it was lost (or remembered, or added)
    next_at: float  # due from then on
    failures: int = 0


class Redialer:
    """Bootstrap addresses, lost neighbours and remembered peers to dial again."""

    def __init__(self, interval: float, lost_for: float) -> None:
        self.interval = interval
        self.lost_for = lost_for
        self._bootstrap: dict[Address, _Target] = {}
        self._lost: dict[str, _Target] = {}  # peer id -> where it listened, in order lost
        self._learned: dict[str, tuple[int, float]] = {}  # peer id -> (failures, retry at)

    def _delay(self, failures: int, cap: int = BACKOFF_CAP) -> float:
        return self.interval * min(1 << min(failures, 16), cap)

    # ------------------------------------------------------------------ what to dial

    def add_bootstrap(self, addr: Address, now: float) -> None:
        """Dial ``addr`` again whenever it is not connected (the first attempts are the
        bootstrap's own, so the first redial is an interval from now)."""
        if addr not in self._bootstrap:
            self._bootstrap[addr] = _Target(addr, None, now, now + self.interval)

    def lost(self, peer_id: str, addr: Address, now: float) -> None:
        """A neighbour that listened at ``addr`` went down: try it for ``lost_for`` s."""
        if self.lost_for <= 0 or addr[1] <= 0:
            return
        self._lost.pop(peer_id, None)
        self._lost[peer_id] = _Target(addr, peer_id, now, now + self.interval)
        while len(self._lost) > MAX_LOST:
            del self._lost[next(iter(self._lost))]

    def remembered(self, peers: Iterable[tuple[str, Address]], now: float) -> None:
        """Peers a previous run was connected to (most recent first): due at once, then
        tried as lost ones."""
        if self.lost_for <= 0:
            return
        for peer_id, addr in reversed(list(peers)):  # due most recent first, as lost ones
            if peer_id not in self._lost and addr[1] > 0:
                self._lost[peer_id] = _Target(addr, peer_id, now, now)
        while len(self._lost) > MAX_LOST:
            del self._lost[next(iter(self._lost))]

    def connected(self, peer_id: str, addrs: Collection[Address]) -> None:
        """``peer_id`` is up (reached at or listening on ``addrs``): nothing to redial."""
        self._lost.pop(peer_id, None)
        self._learned.pop(peer_id, None)
        for target in self._bootstrap.values():
            if target.addr in addrs:
                target.peer_id = peer_id
                target.failures = 0

    def due(self, now: float, is_connected: Callable[[str], bool], *,
            isolated: bool = False) -> list[Address]:
        """Addresses to dial now, lost and remembered peers first (most recently lost
        first), then bootstrap addresses. Isolated (no peer at all), every bootstrap
        address not connected is due. Lost peers past ``lost_for`` are forgotten."""
        for peer_id, target in list(self._lost.items()):
            if is_connected(peer_id) or now >= target.since + self.lost_for:
                del self._lost[peer_id]
        found = [t.addr for t in reversed(self._lost.values()) if now >= t.next_at]
        for target in self._bootstrap.values():
            if target.peer_id is not None and is_connected(target.peer_id):
                continue
            if isolated or now >= target.next_at:
                found.append(target.addr)
        return list(dict.fromkeys(found))

    def dial_failed(self, addr: Address, now: float) -> None:
        # a lost peer's waits keep doubling (a handful of dials in all, whatever the
        # interval); a bootstrap address's stop growing at BACKOFF_CAP intervals
        for target in self._lost.values():
            if target.addr == addr:
                target.failures += 1
                target.next_at = now + self._delay(target.failures, cap=1 << 16)
        boot = self._bootstrap.get(addr)
        if boot is not None:
            boot.failures += 1
            boot.next_at = now + self._delay(boot.failures)

    def dial_succeeded(self, addr: Address, peer_id: str, now: float) -> None:
        target = self._bootstrap.get(addr)
        if target is not None:
            target.peer_id = peer_id
            target.failures = 0
            target.next_at = now + self.interval
        self.connected(peer_id, (addr,))

    def lost_peers(self) -> dict[str, Address]:
        """Lost and remembered peers still being redialled (for tests and fields)."""
        return {peer_id: t.addr for peer_id, t in self._lost.items()}

    # ------------------------------------------------------------------ learned addresses

    def learned_ready(self, peer_id: str, now: float) -> bool:
        """May a learned address of ``peer_id`` be dialled (not waiting after a failure)?"""
        failing = self._learned.get(peer_id)
        return failing is None or now >= failing[1]

    def learned_failed(self, peer_id: str, now: float) -> bool:
        """A dial to a learned address failed; True once it should be forgotten."""
        failures = self._learned.pop(peer_id, (0, now))[0] + 1
        if failures >= LEARNED_FAILURES:
            return True
        self._learned[peer_id] = (failures, now + self._delay(failures))
        while len(self._learned) > MAX_LEARNED_FAILING:
            del self._learned[next(iter(self._learned))]
        return False

    def learned_forgotten(self, peer_id: str) -> None:
        self._learned.pop(peer_id, None)


# ---------------------------------------------------------------------- the peer book

PeerId = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
Host = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class PeerRecord(msgspec.Struct, frozen=True):
    id: PeerId
    host: Host
    port: Port
    seen: float  # wall-clock seconds when we were last connected


class PeerFile(msgspec.Struct):
    version: int
    peers: list[PeerRecord]


class PeerBook:
    """The ``capacity`` peers we were connected to most recently, with where they listen."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._peers: dict[str, PeerRecord] = {}  # in order of last connection

    def __len__(self) -> int:
        return len(self._peers)

    def note(self, peer_id: str, addr: Address, wall: float) -> bool:
        """We are connected to ``peer_id`` listening at ``addr``; True if the book
        changed in a way worth writing at once (a new peer, or a new address)."""
        if self.capacity <= 0 or addr[1] <= 0:
            return False
        old = self._peers.pop(peer_id, None)
        self._peers[peer_id] = PeerRecord(id=peer_id, host=addr[0], port=addr[1], seen=wall)
        while len(self._peers) > self.capacity:
            del self._peers[next(iter(self._peers))]
        return old is None or (old.host, old.port) != addr

    def recent(self) -> list[tuple[str, Address]]:
        """Most recently connected first."""
        return [(r.id, (r.host, r.port)) for r in reversed(self._peers.values())]

    def encode(self) -> bytes:
        return msgspec.json.encode(PeerFile(version=1, peers=list(self._peers.values())))

    def load(self, data: bytes) -> None:
        """Read a file written by :meth:`encode` (``msgspec.DecodeError`` if it is not one)."""
        decoded = msgspec.json.decode(data, type=PeerFile)
        if decoded.version != 1:
            raise msgspec.DecodeError(f"unknown peer file version {decoded.version}")
        for record in sorted(decoded.peers, key=lambda r: r.seen)[-self.capacity:] if self.capacity > 0 else []:
            self._peers.pop(record.id, None)
            self._peers[record.id] = record
