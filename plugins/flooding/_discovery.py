"""FloodingDiscovery: the trio glue around :class:`FloodCore` for one node.

It is the node's ``discovery`` provider and the ``flood`` message protocol. Messages go
out through one bounded queue and one sender task per peer, so a slow peer never stalls
the receive loop that called us, nor the other peers (a full queue drops, and counts).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import trio

from p2pkit import (
    ContentAdded,
    ContentRemoved,
    Field,
    FieldType,
    GenericEvent,
    Notice,
    P2PKitError,
    Peer,
    PeerDown,
    PeerUp,
)
from p2pkit.capabilities import CHANNEL_CONTROL
from p2pkit.endpoint import Address
from p2pkit.events import Event
from p2pkit.filenames import name_problem
from p2pkit.hookspecs import hookimpl

from ._config import FloodingConfig
from ._core import MAX_HELD_BYTES, FloodCore, Output, Send
from ._messages import (
    LAN_BEACON_BYTE,
    MAX_QUERY,
    PROTOCOL,
    Entry,
    LanBeacon,
    decode_beacon,
    encode_beacon,
)
from ._redial import PEERS_FILE, PeerBook, Redialer

log = logging.getLogger("p2pkit.flooding")

# Bytes queued for one peer: a whole table's sync fits (what a newly connected peer gets),
# while a peer that never reads holds this much of ours at most — `queue_size` messages
# of up to 1 MiB each were 256 MiB.
MAX_QUEUED_BYTES = MAX_HELD_BYTES + (2 << 20)
CLOCK_WARN_S = 120.0  # a clock this far from the neighbours' is said (the age bound allows 300 s)
SEQ_FILE = "flooding.seq"  # in the data dir: the last announce seq (see _keep_seq)
MAX_SEQ = (1 << 63) - 1  # what the wire's integer holds (a larger one crashed the node)
# A kept seq is trusted this far ahead of our clock: one from a clock that ran years
# fast would otherwise hold every later seq there (it only grows) — lists never aged,
# replays never refused — for good.
SEQ_AHEAD_MS = 86_400_000

_ENTRY_LIMITS = {"name": 255, "mime": 100, "category": 16, "title": 512, "description": 4096}


_EPOCH: trio.lowlevel.RunVar[float] = trio.lowlevel.RunVar("flooding_epoch")


def _epoch() -> float:
    """Our wall clock minus trio's: wall time that runs with trio's clock (in the
    simulator, virtual time), so that ``seq`` and the ages checked against it agree. Taken
    once per trio run: the nodes of one simulation share it (each its own, taken as they
    start at different virtual and wall times, made every age look seconds off)."""
    try:
        return _EPOCH.get()
    except LookupError:
        _EPOCH.set(time.time() - trio.current_time())
        return _EPOCH.get()


def _read_seq(path: Path | None) -> int:
    """The seq a previous run of this node announced last (0 if none or unreadable)."""
    if path is None:
        return 0
    try:
        text = path.read_text()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        log.warning("cannot read the announce seq in %s: %s", path, exc)
        return 0
    text = text.strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_SEQ:
        log.warning("ignoring a damaged announce seq in %s", path)
        return 0
    return int(text)


def entry_from_item(item: Any) -> Entry | None:
    """A store item (``ItemInfo``, a manifest or a mapping) as a wire entry; None if it
    cannot be one (the network would reject it)."""
    get = item.get if isinstance(item, Mapping) else lambda k, d=None: getattr(item, k, d)
    if not get("complete", True) or get("broken", False):
        return None  # a partial or damaged copy is not something we can serve
    raw: dict[str, Any] = {k: get(k) for k in ("rid", "name", "size", "mime", "category",
                                               "title", "description", "duration")}
    for key, limit in _ENTRY_LIMITS.items():
        value = raw[key]
        if isinstance(value, str):
            raw[key] = value[:limit]
    raw = {k: v for k, v in raw.items() if v is not None or k == "duration"}
    try:
        entry = msgspec.convert(raw, Entry)  # validates exactly as a receiver will
    except msgspec.ValidationError as exc:
        log.warning("not announcing %r: %s", raw.get("rid"), exc)
        return None
    problem = name_problem(entry.name)  # receivers leave such entries out (decode_body)
    if problem is not None:
        log.warning("not announcing %r: name %s", entry.rid, problem)
        return None
    return entry


class FloodingDiscovery:
    """Limited-flooding discovery (seed 004 §4.3.3) for small networks."""

    name = PROTOCOL
    requires = ("transport",)

    def __init__(self, node: Any) -> None:
        self.node = node
        cfg = node.config.section("flooding")
        self.config: FloodingConfig = cfg if isinstance(cfg, FloodingConfig) else FloodingConfig()
        c = self.config
        self.core = FloodCore(
            node.id, node.identity.public_key, node.identity.sign, ttl=c.ttl,
            entry_expiry=c.entry_expiry, rate=c.rate_limit, burst=c.rate_burst, epoch=_epoch(),
        )
        self._queues: dict[str, trio.MemorySendChannel[bytes]] = {}
        self._queued_bytes: dict[str, int] = {}  # what each queue holds (MAX_QUEUED_BYTES)
        self._local_dirty = trio.Event()
        self._timer_changed = trio.Event()
        self._armed_deadline = math.inf  # when the expiry loop wakes next
        self._connected = trio.Event()  # a flood peer came up (wait_settled)
        self._news = trio.Event()  # an announce told us something new (wait_settled)
        self._query_events: dict[bytes, trio.Event] = {}
        self._bootstrap_addresses: list[Address] = []
        self._dialing: set[Address] = set()  # one attempt in progress
        self._redialing: set[Address] = set()  # a retry-with-backoff task exists
        self._random = random.Random(node.id)  # deterministic per node (simulator)
        self.dropped_sends = 0
        self.lan_beacons_in = 0
        self._leaving = False  # our farewell went out: the share list stays empty
        self._clock_warned = False
        # our last seq on disk: restarted with the clock set back, a node announced a
        # smaller seq than before and every peer ignored it until its tombstone lapsed
        self._seq_path = None if node.data_dir is None else node.data_dir / SEQ_FILE
        self.core.seq = self._kept_seq = min(_read_seq(self._seq_path), self._wall_ms() + SEQ_AHEAD_MS)
        # who to dial again: bootstrap addresses, lost neighbours, the peers kept on disk
        self._redial = Redialer(c.pex_interval, c.redial_for)
        self._listening: dict[str, Address] = {}  # flood peers' listen addresses
        self.redials = 0  # dials the redial schedule started
        self._book = PeerBook(c.remember_peers)
        self._book_path = (None if node.data_dir is None or c.remember_peers <= 0
                           else node.data_dir / PEERS_FILE)
        self._read_book()

    # ------------------------------------------------------------------ hooks

    @hookimpl
    def p2pkit_message_protocols(self, node: Any) -> Iterable[Any]:
        return [self]

    @hookimpl
    def p2pkit_services(self, node: Any) -> Iterable[Any]:
        return [self.serve]

    @hookimpl
    def p2pkit_datagram_handlers(self, node: Any) -> Iterable[Any]:
        if not self.config.lan_discovery:
            return []
        return [([LAN_BEACON_BYTE], self._on_lan_datagrams)]

    @hookimpl
    def p2pkit_fields(self, node: Any) -> Iterable[Field]:
        return [
            Field("flood.files", FieldType.INT, lambda: len(self.core.network_files()),
                  description="files the network offers (ours included)"),
            Field("flood.origins", FieldType.INT, lambda: len(self.core.records),
                  description="other nodes whose share lists we hold"),
            Field("flood.known_peers", FieldType.INT, lambda: len(self.core.known_peers),
                  description="peer addresses learned (announces, peer exchange, LAN)"),
            Field("flood.clock_offset_s", FieldType.FLOAT,
                  lambda: self.core.clock_offset(self._neighbors()) or 0.0,
                  description="how far our clock seems ahead of the neighbours' (median; "
                              "0 until three have announced)"),
            Field("flood.counters", FieldType.JSON,
                  lambda: {**self.core.counters, "dropped_sends": self.dropped_sends,
                           "lan_beacons_in": self.lan_beacons_in, "redials": self.redials},
                  description="protocol counters (duplicates, rate limited, expired...)"),
        ]

    @hookimpl
    def p2pkit_node_stopping(self, node: Any) -> None:
        """Tell the neighbours, past our queues, that our files are gone; they flood it
        on. Best effort: a neighbour whose send buffer is full is not told, and a lost
        farewell leaves our files to expire as a crash would."""
        self._leaving = True
        peers = self._flood_peers()
        farewells = dict(self.core.farewell([p.id for p in peers], self._wall_ms()))
        self._keep_seq()
        self._keep_book()
        for peer in peers:
            try:
                peer.send_nowait(PROTOCOL, farewells[peer.id], channel=CHANNEL_CONTROL)
            except (trio.WouldBlock, P2PKitError):
                self.dropped_sends += 1

    @hookimpl
    def p2pkit_event(self, node: Any, event: Event) -> None:
        if isinstance(event, PeerUp):
            self._peer_up(event.peer_id)
        elif isinstance(event, PeerDown):
            self._peer_down(event.peer_id, lost=not event.by_us)
        elif isinstance(event, ContentAdded | ContentRemoved):
            if event.local:
                self._local_dirty.set()
        elif isinstance(event, GenericEvent) and (
            event.kind.startswith("store.") or event.kind == "settings.changed"
        ):
            self._local_dirty.set()  # a download completed, an item was evicted, p2p toggled

    # ------------------------------------------------------------------ message protocol

    async def handle(self, peer: Peer, payload: bytes) -> None:
        fresh = self.core.counters["announces_new"]
        now = trio.current_time()
        out = self.core.receive(peer.id, peer.address[0], payload, now, self._neighbors())
        if self.core.counters["announces_new"] != fresh:
            self._news.set()
        self._apply(out)

    # ------------------------------------------------------------------ Discovery API

    async def bootstrap(self, addresses: Sequence[Address]) -> int:
        """Dial every address, retrying with backoff (peers may start after us) for up to
        ``bootstrap_timeout`` seconds; returns how many answered. Remembered: dialled
        again (with backoff, within the room for peers) whenever not connected."""
        for addr in addresses:
            if addr not in self._bootstrap_addresses:
                self._bootstrap_addresses.append(addr)
            self._redial.add_bootstrap(addr, trio.current_time())
        answered: list[Address] = []
        async with trio.open_nursery() as nursery:
            for addr in addresses:
                nursery.start_soon(self._dial_with_backoff, addr, answered)
        return len(answered)

    def network_files(self) -> list[dict[str, Any]]:
        self._refresh_local()
        return self.core.network_files()

    async def search(self, query: str) -> list[dict[str, Any]]:
        """Flood ``query``; our own and already-known matches plus every answer, until
        every neighbour says the flood is over past it (Done), at most ``search_timeout``;
        once answers have come, also when they stopped for ``search_idle`` (a neighbour
        that never says Done costs no more than it did)."""
        text = query.strip()[:MAX_QUERY]
        self._refresh_local()
        if not text:  # "" is a substring of everything (seed 004 search semantics)
            return self.core.network_files()
        now = trio.current_time()
        qid, sends = self.core.start_query(text, now, self._neighbors())
        if not sends:
            return self.core.finish_query(qid)
        self._query_events[qid] = trio.Event()
        self._send_all(sends)
        results: list[dict[str, Any]] = []
        try:
            with trio.move_on_at(now + self.config.search_timeout):
                while not self.core.query_complete(qid):
                    woke = self._query_events[qid]
                    if not self.core.query_answered(qid):
                        await woke.wait()
                    else:
                        with trio.move_on_after(self.config.search_idle) as idle:
                            await woke.wait()
                        if idle.cancelled_caught:
                            break
                    self._query_events[qid] = trio.Event()
        finally:  # also when the caller gave up (a page's search aborted per keystroke)
            self._query_events.pop(qid, None)
            results = self.core.finish_query(qid)
        return results

    async def find_providers(self, rid: str) -> list[str]:
        """Peers whose current announce lists ``rid``: connected ones first."""
        peers = self.node.peers
        providers = self.core.providers(rid)
        return sorted(providers, key=lambda p: (peers is None or peers.get(p) is None, p))

    async def wait_settled(self, deadline: float, *, quiet: float = 1.0) -> bool:
        """Wait (until ``deadline``) for a flood peer, then until no new announce has
        arrived for ``quiet`` seconds. False if no peer answered in time."""
        with trio.move_on_at(deadline):
            await self._connected.wait()
        if not self._queues:
            return False
        with trio.move_on_at(deadline):
            while True:
                news = self._news = trio.Event()
                with trio.move_on_after(quiet) as calm:
                    await news.wait()
                if calm.cancelled_caught:
                    break
        return True

    def address_of(self, peer_id: str) -> Address | None:
        """A listen address learned for ``peer_id`` (to dial a provider we are not
        connected to), or None."""
        peer = self.node.peers.get(peer_id) if self.node.peers is not None else None
        return peer.listen_address if peer is not None else self.core.address_of(peer_id)

    # ------------------------------------------------------------------ services

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.core.port = self.node.endpoint.local_address[1]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._announce_loop)
            nursery.start_soon(self._expiry_loop)
            nursery.start_soon(self._maintenance_loop)
            if self.config.lan_discovery:
                nursery.start_soon(self._lan_beacon_loop)
            task_status.started()

    async def _announce_loop(self) -> None:
        """Announce at once when our share list changes, and every ``announce_interval``."""
        next_periodic = -math.inf
        while True:
            self._refresh_local()
            now = trio.current_time()
            if self.core.local_changed or now >= next_periodic:
                neighbors = self._neighbors()
                if neighbors:
                    self._send_all(self.core.announce_to(neighbors, self._wall_ms(), trio.current_time()))
                    self._keep_seq()
                next_periodic = now + self.config.announce_interval
            with trio.move_on_at(next_periodic):
                await self._local_dirty.wait()
            self._local_dirty = trio.Event()

    async def _expiry_loop(self) -> None:
        while True:
            self._apply(self.core.expire(trio.current_time()))
            deadline = self.core.next_timer()
            self._armed_deadline = math.inf if deadline is None else deadline
            with trio.move_on_at(self._armed_deadline):
                await self._timer_changed.wait()
            self._timer_changed = trio.Event()

    async def _maintenance_loop(self) -> None:
        """Peer exchange, and dialing again the bootstrap addresses, lost neighbours and
        remembered peers (the latter at once: a restarted node looks for its old peers)."""
        self._redial_round(isolated=False)
        while True:
            await trio.sleep(self.config.pex_interval)
            peers = self._flood_peers()
            self._redial_round(isolated=not peers)
            if not peers and self._bootstrap_addresses:
                continue
            if self.config.peer_exchange:
                data = self._peer_list()
                self._send_all([(p.id, data) for p in peers])
                self._connect_to_known()
            self._check_clock()

    def _check_clock(self) -> None:
        """Say once if our clock disagrees with our neighbours' by more than CLOCK_WARN_S:
        lists that reach us only through others are read on it (see _bounded_age)."""
        offset = self.core.clock_offset(self._neighbors())
        if self._clock_warned or offset is None or abs(offset) < CLOCK_WARN_S:
            return
        self._clock_warned = True
        side = "ahead of" if offset > 0 else "behind"
        message = (f"this computer's clock is {abs(offset) / 60:.0f} minutes {side} its "
                   "peers' (their median): set it right (time sync), or the files of nodes "
                   "it does not talk to directly may not reach it, nor its files them")
        # a Notice only: the web UI's log panel shows p2pkit's log records as well, and
        # the same warning came twice there
        self.node.emit(Notice(level="warning", source="flooding", message=message))

    # ------------------------------------------------------------------ peers

    def _flood_peers(self) -> list[Peer]:
        peers = self.node.peers
        if peers is None:
            return []
        return [p for p in peers.all() if p.id in self._queues]

    def _neighbors(self) -> list[str]:
        return list(self._queues)

    def _peer_up(self, peer_id: str) -> None:
        peer = self.node.peers.get(peer_id) if self.node.peers is not None else None
        if peer is None or PROTOCOL not in peer.protocols or peer_id in self._queues:
            return
        self._listening[peer_id] = peer.listen_address
        self._redial.connected(peer_id, {peer.address, peer.listen_address})
        if self._book.note(peer_id, peer.listen_address, self._wall_ms() / 1000):
            self._keep_book()
        send, receive = trio.open_memory_channel[bytes](self.config.queue_size)
        self._queues[peer_id] = send
        self._queued_bytes[peer_id] = 0
        self.node.nursery.start_soon(self._sender, peer, receive)
        self._connected.set()
        self._refresh_local()
        self._send_all(self.core.sync_for(peer_id, trio.current_time(), self._wall_ms()))
        self._keep_seq()
        if self.config.peer_exchange:
            self._send_all([(peer_id, self._peer_list())])

    def _peer_down(self, peer_id: str, *, lost: bool = True) -> None:
        send = self._queues.pop(peer_id, None)
        self._queued_bytes.pop(peer_id, None)
        addr = self._listening.pop(peer_id, None)
        if send is not None:
            send.close()
            # dial it again for a while (it may restart, or the path may heal), unless this
            # node ended the session (for what the peer sent — a swarm liar, a protocol
            # error — or as it leaves): only a session the peer or the network ended
            if addr is not None and lost and not self._leaving:
                self._redial.lost(peer_id, addr, trio.current_time())
        self.core.peer_down(peer_id, trio.current_time(), self.config.peer_down_grace)
        self._timer_changed.set()

    async def _sender(self, peer: Peer, queue: trio.MemoryReceiveChannel[bytes]) -> None:
        async with queue:
            async for data in queue:
                if peer.id in self._queued_bytes:
                    self._queued_bytes[peer.id] -= len(data)
                try:
                    await peer.send(PROTOCOL, data, channel=CHANNEL_CONTROL)
                except P2PKitError:  # SessionClosed: PeerDown closes the queue
                    return

    def _peer_list(self) -> bytes:
        peers = self.node.peers.all() if self.node.peers is not None else []
        return self.core.peer_list((p.id, p.listen_address[0], p.listen_address[1]) for p in peers)

    def _connect_to_known(self) -> None:
        peers = self.node.peers
        if peers is None:
            return
        # dials under way count too: each round would otherwise start another
        # target_peers of them while made-up addresses (LAN beacons, peer lists) time out
        room = (min(self.config.target_peers, self.node.settings.max_connections)
                - len(peers) - len(self._dialing))
        if room <= 0:
            return
        now = trio.current_time()
        candidates = [
            (pid, (host, port)) for pid, (host, port, _) in sorted(self.core.known_peers.items())
            if pid != self.node.id and peers.get(pid) is None and (host, port) not in self._dialing
            and self._redial.learned_ready(pid, now)
        ]
        self._random.shuffle(candidates)
        for pid, addr in candidates[:room]:
            self._dialing.add(addr)  # reserved now, so that the next round counts it
            self.node.nursery.start_soon(self._dial_known, pid, addr)

    async def _dial_known(self, peer_id: str, addr: Address) -> None:
        if await self._dial_reserved(addr, []) is None:
            # Tried again after a backoff, forgotten (until someone lists it again) after
            # a few failures: a dead address is not retried forever, nor a node that was
            # restarting forgotten at its first failed dial.
            known = self.core.known_peers.get(peer_id)
            if known is None or (known[0], known[1]) != addr:
                self._redial.learned_forgotten(peer_id)
            elif self._redial.learned_failed(peer_id, trio.current_time()):
                self.core.forget_peer(peer_id)

    def _redial_round(self, *, isolated: bool) -> None:
        """Dial what the redial schedule says is due: within the room for peers
        (``min(target_peers, max_connections)``, dials under way counted), except that
        an isolated node dials all its bootstrap addresses."""
        peers = self.node.peers
        if peers is None:
            return
        due = self._redial.due(trio.current_time(), lambda pid: peers.get(pid) is not None,
                               isolated=isolated)
        room = (min(self.config.target_peers, self.node.settings.max_connections)
                - len(peers) - len(self._dialing))
        bootstrap = set(self._bootstrap_addresses)
        for addr in due:
            if addr in self._dialing or addr in self._redialing:
                continue
            if room <= 0 and not (isolated and addr in bootstrap):
                continue
            room -= 1
            self.redials += 1
            self._dialing.add(addr)
            self.node.nursery.start_soon(self._redial_one, addr)

    async def _redial_one(self, addr: Address) -> None:
        peer = await self._dial_reserved(addr, [])
        if peer is None:
            self._redial.dial_failed(addr, trio.current_time())
        else:
            self._redial.dial_succeeded(addr, peer.id, trio.current_time())

    async def _dial_once(self, addr: Address, answered: list[Address]) -> bool:
        if self.node.peers is None or addr in self._dialing:
            return False
        self._dialing.add(addr)
        return await self._dial_reserved(addr, answered) is not None

    async def _dial_reserved(self, addr: Address, answered: list[Address]) -> Peer | None:
        """Dial ``addr``, which the caller has already put in ``_dialing``; the peer, or
        None if it did not answer."""
        assert self.node.peers is not None
        try:
            with trio.fail_after(self.config.connect_timeout):
                peer: Peer = await self.node.peers.connect(addr)
        except (P2PKitError, OSError, trio.TooSlowError) as exc:
            log.debug("could not connect to %s:%s: %s", addr[0], addr[1], exc)
            return None
        finally:
            self._dialing.discard(addr)
        answered.append(addr)
        return peer

    async def _dial_with_backoff(self, addr: Address, answered: list[Address]) -> None:
        if addr in self._redialing:
            return
        self._redialing.add(addr)
        limit = self.config.bootstrap_timeout
        delay = 0.25
        try:
            with trio.move_on_after(limit if limit > 0 else math.inf):
                while not await self._dial_once(addr, answered):
                    log.info("bootstrap %s:%s not reachable yet; retrying in %.1f s",
                             addr[0], addr[1], delay)
                    await trio.sleep(delay)
                    delay = min(delay * 2, 30.0)
        finally:
            self._redialing.discard(addr)

    # ------------------------------------------------------------------ LAN discovery

    async def _lan_beacon_loop(self) -> None:
        """Broadcast our id and port from the node's own socket (so the source address a
        receiver sees is the one it must dial)."""
        beacon = encode_beacon(LanBeacon(id=self.node.id, port=self.node.endpoint.local_address[1]))
        target = (self.config.lan_address, self.config.lan_port)
        while True:
            if not self.node.endpoint.send(beacon, target):
                log.debug("LAN beacon to %s:%s not sent", *target)
            await trio.sleep(self.config.lan_interval)

    def _on_lan_datagrams(self, batch: list[tuple[bytes, Address]], now: float) -> None:
        peers = self.node.peers
        for data, (host, _port) in batch:
            beacon = decode_beacon(data)
            if beacon is None or beacon.id == self.node.id:
                continue
            self.lan_beacons_in += 1
            self.core.learn_peer(beacon.id, host, beacon.port, now)
            addr = (host, beacon.port)
            # Beacons are unauthenticated datagrams: dials in flight count against the
            # room, so a flood of made-up beacons cannot start a task each.
            if (peers is None or peers.get(beacon.id) is not None or addr in self._dialing
                    or addr in self._redialing or len(peers) + len(self._dialing) >= min(
                        self.config.target_peers, self.node.settings.max_connections)):
                continue
            self._dialing.add(addr)
            self.node.nursery.start_soon(self._dial_reserved, addr, [])

    # ------------------------------------------------------------------ plumbing

    def _refresh_local(self) -> bool:
        """Read our share list from the store; True if it changed since last time (the
        announce loop then tells everyone, whoever noticed the change)."""
        store = self.node.store
        entries: list[Entry] = []
        if self._leaving:
            return False
        if store is not None and self.node.settings.p2p_enabled:
            for item in store.items():
                entry = entry_from_item(item)
                if entry is not None:
                    entries.append(entry)
        changed = self.core.set_local(entries)
        if changed:
            self._local_dirty.set()
        return changed

    def _wall_ms(self) -> int:
        """Floor for announce sequence numbers, so they keep growing across restarts."""
        return int((trio.current_time() + (self.core.epoch or 0.0)) * 1000)

    def _keep_seq(self) -> None:
        if self._seq_path is None or self.core.seq <= self._kept_seq:
            return
        try:
            temporary = self._seq_path.with_suffix(".tmp")
            temporary.write_text(str(self.core.seq))
            os.replace(temporary, self._seq_path)  # a crash mid-write leaves the old one
        except OSError as exc:  # a full disk costs the guarantee, not the announce
            log.warning("cannot keep the announce seq in %s: %s", self._seq_path, exc)
            return
        self._kept_seq = self.core.seq

    def _read_book(self) -> None:
        """The peers a previous run was connected to: dialled at start (see Redialer)."""
        if self._book_path is None:
            return
        try:
            self._book.load(self._book_path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, msgspec.DecodeError) as exc:
            log.warning("ignoring the remembered peers in %s: %s", self._book_path, exc)
            return
        self._redial.remembered(self._book.recent(), trio.current_time())

    def _keep_book(self) -> None:
        if self._book_path is None:
            return
        try:
            temporary = self._book_path.with_name(PEERS_FILE + ".tmp")
            temporary.write_bytes(self._book.encode())
            os.replace(temporary, self._book_path)  # a crash mid-write leaves the old one
        except OSError as exc:
            log.warning("cannot keep the remembered peers in %s: %s", self._book_path, exc)

    async def _backfill(self, peer_id: str, origins: list[str]) -> None:
        """The lists a new neighbour lacks, each as the queue to it has room: sent all at
        once, those past ``queue_size`` were dropped (a newcomer to a network of 400
        nodes got 256 lists, the rest only with their origins' next announces)."""
        for origin in origins:
            queue = self._queues.get(peer_id)
            data = self.core.relayed_copy(origin, trio.current_time())
            if queue is None:
                return  # it left
            if data is None:
                continue  # expired meanwhile
            try:
                await queue.send(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if peer_id in self._queued_bytes:
                self._queued_bytes[peer_id] += len(data)

    def _send_all(self, sends: Iterable[Send]) -> None:
        for peer_id, data in sends:
            queue = self._queues.get(peer_id)
            if queue is None or self.core.withheld(peer_id, data):
                continue
            queued = self._queued_bytes.get(peer_id, 0)
            if queued + len(data) > MAX_QUEUED_BYTES:  # a peer that reads slowly or never
                self._dropped(peer_id, data)
                continue
            try:
                queue.send_nowait(data)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self._dropped(peer_id, data)
            else:
                self._queued_bytes[peer_id] = queued + len(data)

    def _dropped(self, peer_id: str, data: bytes) -> None:
        self.dropped_sends += 1
        self.core.send_dropped(peer_id, data)

    def _apply(self, out: Output) -> None:
        self._send_all(out.sends)
        self._keep_seq()  # (a digest can make us announce)
        if out.backfill is not None:
            self.node.nursery.start_soon(self._backfill, *out.backfill)
        deadline = self.core.next_timer()
        if deadline is not None and deadline < self._armed_deadline:
            self._timer_changed.set()
        if out.hits_for is not None:
            woke = self._query_events.get(out.hits_for)
            if woke is not None:
                woke.set()
        if out.added or out.removed:
            for rid in sorted(out.removed):
                self.node.emit(ContentRemoved(rid=rid, local=False))
            for rid in sorted(out.added):
                self.node.emit(ContentAdded(rid=rid, name=self.core.name_of(rid), local=False))
