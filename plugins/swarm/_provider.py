"""The swarm as a node capability: the "swarm" peer protocol and multi-source downloads.

Flow of one download (``download(rid)``):

1. The manifest comes from the store (resume) or from peers: providers found through
   ``node.discovery.find_providers(rid)`` and every connected peer are asked; the first
   answer that hashes to ``rid`` wins.
2. Our bitfield goes to every connected peer; those that hold any of the content answer
   with theirs and a list of other swarm members (which we dial), so leechers trade with
   each other, not only with seeders.
3. We say Interested to peers with pieces we lack; their choker unchokes us; we keep a
   pipeline of requests sized to each path; blocks are assembled into pieces, and the
   store checks each piece's SHA-256 before it is kept. A failed piece gives its only
   sender a strike (three and the peer is dropped); mixed pieces are fetched again from
   one peer (see the picker).
4. Complete: the file is exported (atomically) and we keep seeding it.

Handlers never wait on the network: replies are queued on the peer's :class:`Link` and a
writer task per peer sends them, control before uploads (the node's upload limit is the
transport's: see rudp's shaper).
"""

from __future__ import annotations

import logging
import random
import tempfile
import weakref
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import msgspec
import trio
from p2pkit.plugins.store import LEAF_SIZE, leaf_count, leaf_hashes

from p2pkit._exceptions import NodeStateError, RemoteProtocolError, SessionClosed
from p2pkit.capabilities import CHANNEL_BULK, CHANNEL_CONTROL
from p2pkit.events import (
    ContentRemoved,
    Event,
    GenericEvent,
    Notice,
    PeerDown,
    PeerUp,
    changed_setting,
)
from p2pkit.fields import Field, FieldType
from p2pkit.hookspecs import hookimpl
from p2pkit.peers import Peer
from p2pkit.rids import parse_rid

from . import _messages as msg
from ._aliases import RidAliases
from ._assembly import Assembly, bytes_to_mask
from ._choker import Choker, PeerView
from ._dialing import DialPolicy
from ._errors import NoProvidersError, P2PDisabledError, SwarmError
from ._output import output_problem
from ._picker import Block
from ._pipeline import MIN_DEPTH, RateMeter, pipeline_depth, steal_pays
from ._seeding import InitialSeeding
from ._state import (
    REMEMBERED_ASKS,
    Link,
    ManifestWanted,
    PeerState,
    Torrent,
    block_updates,
    piece_news,
    room_victim,
    stale_members,
)

log = logging.getLogger("p2pkit.swarm")

TICK = 1.0  # housekeeping: choking rounds, timeouts, refills, progress
PIECE_CACHE = 16  # verified pieces kept in memory for serving their blocks
LEAF_CACHE = 256  # leaf hashes of whole pieces, sent before a peer's first block of each
UPDATE_DELAY_S = 0.02  # later Blocks updates of a piece leave together, this long after the first
MIN_IN_FLIGHT = 64 * 1024  # bytes requested from a peer before its rate is known
SESSION_BACKLOG_S = 0.05  # seconds of a session's rate handed to the transport ahead
MIN_SESSION_RATE = 16 * 1024.0  # bytes/s assumed for a session that has no rate yet
# Requests queued for upload beyond this many seconds of our upload rate (and beyond
# UPLOAD_BACKLOG_MIN bytes) are rejected: the requester asks a peer that can send sooner.
# Without it every requester's pipeline (64 KiB at least) stacks up at a slow uplink: at
# N = 100 the 2 Mbit/s leechers sat on requests for 0.7 s on average at the end while
# faster peers holding the same blocks idled. 0.1 s: N = 100 mean 1.550 -> 1.498; 0.2 s
# gave 1.52 (docs/plugins/swarm-benchmark-log.md, *Requests a slow uplink cannot serve
# soon*); 0.07 s since 1 Dec: 1.390 -> 1.375 on seeds 1-8 (within their spread: paired
# sd 0.026), N = 20 1.505 -> 1.490 (*The last blocks wait a round trip*; a round trip
# there is 0.05-0.09 s).
UPLOAD_BACKLOG_S = 0.07
UPLOAD_BACKLOG_MIN = 64 * 1024
MIN_UPLOAD_RATE = 64 * 1024.0  # bytes/s assumed before we have uploaded anything
STEAL_MIN_S = 0.2  # never move a request younger than this to another peer
REFUSED_AFTER_S = 2.0  # a member that has not answered our bitfield this long refused us
STALE_AFTER_S = 2.0  # a member of no use either way is shown our bitfield again this often
# Addresses of other members told to a newcomer (Peers; the message may carry MAX_PEX).
# A handful is enough to find the rest: each member tells it a different random few. With
# fifty (N = 100, seed 1) the lists were 3.5 MB in the first 0.75 s instead of 1.0, nodes
# sent 2.5 times as many messages to swarms that had dropped them, half again as many
# members were dropped for room, and the 20 Mbit/s uplinks sent half as much data from
# 0.6 to 1.4 s (docs/plugins/swarm-benchmark-log.md, *A handful of addresses*).
PEX_TOLD = 10
# In endgame a peer is given duplicates of others' blocks only while it has fewer than
# this many requests of its own in flight: enough to keep it busy, not so many that every
# peer re-sends the whole tail (each duplicate costs someone's uplink). 1 on 30 Nov
# (with the uplink control's short queues): same times as 2, ~18 % fewer duplicate blocks;
# 3 since 1 Dec, when copies go only where they arrive sooner (N = 100 1.486 -> 1.476).
ENDGAME_IN_FLIGHT = 3
TARGET_SILENT_S = 0.5  # an injection target that has not said Interested by then is skipped


def _block_size_ok(_inst: Any, _attr: Any, value: int) -> None:
    # whole leaves (16 KiB), so that every block can be checked on arrival and relayed
    if not LEAF_SIZE <= value <= msg.MAX_BLOCK or value % LEAF_SIZE:
        raise ValueError(f"swarm.block_size must be a multiple of 16384 up to {msg.MAX_BLOCK}")


def _positive(_inst: Any, attr: Any, value: float) -> None:
    if value <= 0:
        raise ValueError(f"swarm.{attr.name} must be > 0")


@attrs.define
class SwarmConfig:
    """``[swarm]``: how pieces are exchanged."""

    block_size: int = attrs.field(default=16 * 1024, validator=_block_size_ok)
    regular_slots: int = attrs.field(default=4, validator=_positive)  # tit-for-tat slots
    max_extra_slots: int = attrs.field(default=8, validator=attrs.validators.ge(0))  # spare uplink
    choke_interval_s: float = attrs.field(default=10.0, validator=_positive)
    optimistic_interval_s: float = attrs.field(default=30.0, validator=_positive)
    max_strikes: int = attrs.field(default=3, validator=_positive)  # bad pieces before a drop
    request_timeout_s: float = attrs.field(default=20.0, validator=_positive)
    duplicate_after_s: float = attrs.field(default=2.0, validator=_positive)  # ask another peer too
    provider_wait_s: float = attrs.field(default=60.0, validator=_positive)
    max_peers: int = attrs.field(default=40, validator=_positive)  # per content
    upload_queue: int = attrs.field(default=256, validator=_positive)  # per peer
    max_depth: int = attrs.field(default=64, validator=_positive)  # requests per peer
    initial_seeding: bool = True  # an origin injects each piece once before any twice


def _content_id(rid: str) -> str:
    """``rid`` as a person copies it (capitals, spaces around) in the network's spelling;
    SwarmError if it is not a content id."""
    try:
        return parse_rid(rid)
    except ValueError as exc:
        raise SwarmError(str(exc)) from None


class SwarmProvider:
    """The node's ``swarm`` capability (needs a transport and a store)."""

    requires = ("transport", "store")

    def __init__(self, node: Any) -> None:
        self.node = node
        try:
            self.cfg: SwarmConfig = node.config.section("swarm")
        except Exception:  # used without the plugin's section bound (tests, embedding)
            self.cfg = SwarmConfig()
        self.rng = random.Random(int(node.id[:16], 16))
        self.links: dict[str, Link] = {}
        # each session's rid numbering (both ways) lives as long as the session, not its
        # Link: a message from an old session of the same node replaces the Link
        self._aliases: weakref.WeakKeyDictionary[Peer, RidAliases] = weakref.WeakKeyDictionary()
        self.torrents: dict[str, Torrent] = {}
        self.banned: set[str] = set()
        self._manifests_wanted: dict[str, ManifestWanted] = {}  # rid -> what fetches share
        self._piece_cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._leaf_cache: OrderedDict[tuple[str, int], list[bytes]] = OrderedDict()
        self._dials = DialPolicy()
        self._updates_due: dict[tuple[str, int], None] = {}  # (rid, piece), in order
        self.up = RateMeter()
        self.down = RateMeter()
        self.bytes_from_peers: Counter[str] = Counter()  # every content, every peer
        self.bytes_to_peers: Counter[str] = Counter()
        self.counters: Counter[str] = Counter()
        # the scopes of fetches in progress: a caller's task outside the node's nursery
        # waits on events only the node's tasks set, so close() ends them (see fetch)
        self._fetches: set[trio.CancelScope] = set()

    # ------------------------------------------------------------------ plumbing

    @property
    def name(self) -> str:  # the MessageProtocol's name
        return msg.PROTOCOL

    def _now(self) -> float:
        return trio.current_time()

    @property
    def store(self) -> Any:
        return self.node.store

    def _allowed(self, peer: Peer) -> bool:
        return (bool(peer.enabled) and self.node.settings.p2p_enabled
                and peer.id not in self.banned and not peer.closed.is_set())

    def _link(self, peer: Peer) -> Link:
        link = self.links.get(peer.id)
        if link is None or link.peer is not peer:
            if link is not None:
                link.close()
            link = self.links[peer.id] = Link(peer, self._aliases_of(peer))
            self.node.nursery.start_soon(self._writer, link)
        return link

    def _aliases_of(self, peer: Peer) -> RidAliases:
        aliases = self._aliases.get(peer)
        if aliases is None:
            aliases = self._aliases[peer] = RidAliases()
        return aliases

    async def _writer(self, link: Link) -> None:
        """Send one peer's queued messages: control first, then uploads."""
        peer = link.peer
        try:
            while not link.closed:
                await link.wait()
                if link.control:
                    data = link.aliases.encode(link.next_control())
                    await peer.send(msg.PROTOCOL, data, channel=CHANNEL_CONTROL)
                elif link.uploads:
                    backlog = self._session_backlog(peer)
                    if backlog > 0:
                        await link.wait_control(backlog)
                        continue
                    rid, request = link.next_upload()
                    await self._upload(link, rid, request)
                    if not link.uploads and self._uplink_spare():
                        self._offer_spare_uplink()
        except SessionClosed:
            pass
        except Exception:  # a bug here must cost one peer, never the node
            self.counters["writer_errors"] += 1
            log.exception("swarm: sending to %r failed", peer)
            # the two sides' rid numbering may differ now (_aliases.py): a new session
            peer.close("swarm writer failed")
        finally:
            if link.overrun:
                self.counters["control_overruns"] += 1
            link.close()

    def _offer_spare_uplink(self) -> None:
        """The uplink just ran out of work: let the chokers unchoke a waiting peer (an
        injecting origin: one more target)."""
        for t in self.torrents.values():
            if (injection := t.injection) is not None:
                # only if the transport too has (almost) nothing left for the targets
                if self._queued_in_transport(injection.offers) < self.cfg.block_size:
                    injection.spare(self._now())
                    self._inject(t)
                continue
            if any(ps.peer_interested and ps.am_choking for ps in t.peers.values()):
                self._rechoke(t)

    def _queued_in_transport(self, peer_ids: Iterable[str]) -> float:
        """Bytes the sessions to ``peer_ids`` hold unsent."""
        total = 0.0
        for pid in peer_ids:
            link = self.links.get(pid)
            try:
                queued = link.peer.stats().get("send_queue_bytes", 0) if link else 0
            except Exception:
                continue
            if isinstance(queued, int | float):
                total += queued
        return total

    def _session_backlog(self, peer: Peer) -> float:
        """Seconds until the session's own send queue is short enough for the next block.

        Blocks are handed to the transport only a little ahead of what it can send (about
        ``SESSION_BACKLOG_S`` of its rate, at least one block): the rest waits in the
        link's upload queue, where a Cancel or a Choke still removes it and where the
        choker can see whether the uplink has spare capacity. Handed over all at once, a
        choke or a moved request would arrive after megabytes already queued.

        Never more than ``SESSION_BACKLOG_S``: the writer then looks again. The rate is a
        moment's estimate (a congestion controller that has been sending little paces at
        a few kB/s until its next samples) and the queue may drain far sooner: at N = 100
        seeds slept 0.5–0.9 s on two blocks priced at 12 kB/s while their sessions sent
        700 kB/s, and the last leechers' last blocks waited in the seeds' upload queues
        all that time.
        """
        try:
            stats = peer.stats()
        except Exception:
            return 0.0
        queued = stats.get("send_queue_bytes")
        if not isinstance(queued, int | float):
            return 0.0  # a transport that does not say: no throttle
        rate = max(float(stats.get("pacing_rate_Bps", 0) or 0),
                   float(stats.get("send_rate_Bps", 0) or 0), MIN_SESSION_RATE)
        high = max(self.cfg.block_size, rate * SESSION_BACKLOG_S)
        if queued <= high:
            return 0.0
        return min(max((queued - high) / rate, 0.001), SESSION_BACKLOG_S)

    def _torrent(self, rid: str) -> Torrent | None:
        """The state of ``rid``, built from the store on first use (None if unknown)."""
        t = self.torrents.get(rid)
        if t is not None:
            return t
        manifest = self.store.manifest(rid)
        if manifest is None:
            return None
        have = msg.unpack_bits(self.store.have_bitmap(rid), manifest.num_pieces)
        choker = Choker(slots=self.cfg.regular_slots, interval=self.cfg.choke_interval_s,
                        optimistic_interval=self.cfg.optimistic_interval_s,
                        max_extra=self.cfg.max_extra_slots, rng=self.rng)
        t = Torrent(rid, manifest, have, block_size=self.cfg.block_size, choker=choker,
                    rng=self.rng)
        if t.complete and self.cfg.initial_seeding:
            t.seeding = InitialSeeding(t.num_pieces, targets=self.cfg.regular_slots,
                                       max_extra=self.cfg.max_extra_slots,
                                       tiebreak=t.picker.tiebreak)
        self.torrents[rid] = t
        return t

    # ------------------------------------------------------------------ hooks

    @hookimpl
    def p2pkit_message_protocols(self, node: Any) -> Iterable[Any]:
        return [self]

    @hookimpl
    def p2pkit_services(self, node: Any) -> Iterable[Any]:
        return [self.serve]

    @hookimpl
    def p2pkit_event(self, node: Any, event: Event) -> None:
        if isinstance(event, PeerDown):
            self._peer_gone(event.peer_id)
        elif isinstance(event, PeerUp):
            peer = node.peers.get(event.peer_id) if node.peers is not None else None
            if peer is not None:
                for t in self.torrents.values():
                    if t.active:
                        self._join(t, peer)
                for wanted in self._manifests_wanted.values():
                    wanted.wake()  # a manifest wanted: ask the newcomer now (_fetch_manifest)
        elif (change := changed_setting(event)) is not None:
            if change[0] == "p2p_enabled":
                for t in self.torrents.values():
                    self._rechoke(t)
        elif isinstance(event, ContentRemoved) and event.local:
            self._forget_torrent(event.rid, "the content was removed from the store")
        elif isinstance(event, GenericEvent) and event.kind == "store.evicted":
            rid = event.data.get("key")
            if isinstance(rid, str) and rid in self.torrents:
                self._forget_torrent(rid, "the content was evicted to make room under the "
                                          "storage limit (cfg.cache_limit_mb)")

    @hookimpl
    def p2pkit_fields(self, node: Any) -> Iterable[Field]:
        now = trio.current_time
        return [
            Field("swarm.downloads", FieldType.INT,
                  lambda: sum(t.active for t in self.torrents.values()),
                  description="downloads in progress"),
            Field("swarm.down_rate", FieldType.FLOAT, lambda: self.down.rate(now()),
                  description="piece bytes/s received from peers, 5 s window"),
            Field("swarm.up_rate", FieldType.FLOAT, lambda: self.up.rate(now()),
                  description="piece bytes/s sent to peers, 5 s window"),
            Field("swarm.bytes_from", FieldType.JSON, lambda: dict(self.bytes_from_peers),
                  description="piece bytes received from each peer id"),
            Field("swarm.bytes_to", FieldType.JSON, lambda: dict(self.bytes_to_peers),
                  description="piece bytes sent to each peer id"),
            Field("swarm.stats", FieldType.JSON, lambda: dict(self.counters),
                  description="counters: bad pieces, strikes, rejects, timeouts..."),
        ]

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Housekeeping every second: choking rounds, request timeouts, refills, progress."""
        task_status.started()
        while True:
            await trio.sleep(TICK)
            now = self._now()
            for t in list(self.torrents.values()):
                try:
                    self._reconsider_uploads(t)
                    if t.active:
                        self._expire_requests(t, now)
                        self._refresh_stale(t, now)
                        for pid in list(t.peers):
                            self._fill(t, pid)
                        self._report(t, now)
                except Exception:  # keep the other downloads going
                    self.counters["tick_errors"] += 1
                    log.exception("swarm: housekeeping of %s failed", t.rid[:12])

    # ------------------------------------------------------------------ receiving

    async def handle(self, peer: Peer, payload: bytes) -> None:
        """One message from ``peer`` (called in its receive loop: never waits)."""
        m = msg.decode(self._aliases_of(peer).expand(payload))
        if isinstance(m, msg.ManifestRequest):
            self._on_manifest_request(peer, m)
        elif isinstance(m, msg.ManifestResponse):
            self._on_manifest_response(peer, m)
        elif peer.id in self.banned:
            self.counters["from_banned"] += 1
        elif isinstance(m, msg.Bitfield):
            self._on_bitfield(peer, m)
        else:
            t = self.torrents.get(m.rid.hex())
            ps = t.peers.get(peer.id) if t is not None else None
            if t is not None and ps is not None and ps.peer is not peer:  # a new session: joins anew
                ps = self._join(t, peer)
            if (ps is None and t is not None and isinstance(m, msg.Have) and t.active
                    and 0 <= m.piece < t.num_pieces and not t.picker.have[m.piece]):
                # a peer we dropped (our swarm was full, it had nothing for us) has news
                # we want: let it back in (an origin that shows its pieces one by one)
                ps = self._join(t, peer)
                if ps is not None:
                    self.counters["rejoined_on_have"] += 1
            if t is None or ps is None:
                self.counters["out_of_swarm"] += 1  # a late message after we left; harmless
                if isinstance(m, msg.Request):  # but it must not wait for a timeout: a
                    # Choke makes it forget every request to us and ask others instead
                    self._link(peer).send(msg.Choke(m.rid))
                return
            self._dispatch(t, ps, m)

    def _dispatch(self, t: Torrent, ps: PeerState, m: msg.Message) -> None:
        pid = ps.peer.id
        if isinstance(m, msg.Piece):
            self._on_piece(t, ps, m)
        elif isinstance(m, msg.Request):
            self._on_request(t, ps, m)
        elif isinstance(m, msg.Have):
            if m.piece >= t.num_pieces:
                raise RemoteProtocolError(f"have for piece {m.piece} of {t.num_pieces}")
            if ps.pieces is None:
                ps.pieces = [False] * t.num_pieces
                t.picker.add_peer(pid, ps.pieces)
            ps.held += not ps.pieces[m.piece]
            ps.pieces[m.piece] = True
            t.picker.peer_has(pid, m.piece)
            self._seeding_news(t, ps, [m.piece])
            self._update_interest(t, ps)
            self._fill(t, pid)
        elif isinstance(m, msg.Interested | msg.NotInterested):
            ps.peer_interested = isinstance(m, msg.Interested)
            self._rechoke(t)
        elif isinstance(m, msg.Choke):
            ps.peer_choking = True
            # (also with nothing asked: a suspect piece it was to send goes to another)
            released = t.picker.forget_requests(pid, list(ps.requested))
            if ps.requested or released:
                ps.requested.clear()
                self._fill_all(t)  # its blocks are free again: others may take them now
        elif isinstance(m, msg.Unchoke):
            ps.peer_choking = False
            self._fill(t, pid)
        elif isinstance(m, msg.Cancel):
            request = msg.Request(t.key, m.piece, m.offset, m.length)
            ps.link.cancel_upload(t.rid, request)
            if ps.link.withdraw_upload(t.rid, request):
                # it never leaves: the uplink is spared a copy the peer has from elsewhere
                self.counters["uploads_withdrawn"] += 1
                t.bytes_to[pid] -= m.length
                self.bytes_to_peers[pid] -= m.length
                now = self._now()
                ps.up.withdraw(m.length, now)
                self.up.withdraw(m.length, now)
        elif isinstance(m, msg.Reject):
            block = Block(m.piece, m.offset, m.length)
            if ps.requested.pop(block, None) is not None:
                t.picker.forget_requests(pid, [block])
                self.counters["rejected"] += 1
                # its queue is full: no more asks until it delivers (else the block
                # would be asked of it again at once and rejected again)
                ps.ask_limit = max(1, len(ps.requested))
                self._fill_all(t)
        elif isinstance(m, msg.Leave):
            self.counters["members_left"] += 1
            ps.link.cancel_upload(t.rid)
            self._member_gone(t, pid)
        elif isinstance(m, msg.Lost):
            # it does not hold the piece: asked again, it would refuse again, at the
            # speed of the round trip, for as long as we both run
            if m.piece >= t.num_pieces:
                raise RemoteProtocolError(f"lost piece {m.piece} of {t.num_pieces}")
            self.counters["lost_by_peers"] += 1
            t.lost_by.add(pid)
            if ps.pieces is not None:
                ps.held -= ps.pieces[m.piece]
                ps.pieces[m.piece] = False
            t.picker.peer_lacks(pid, m.piece)
            refused = [b for b in ps.requested if b.piece == m.piece]
            for b in refused:
                del ps.requested[b]
            released = t.picker.forget_requests(pid, refused)
            self._update_interest(t, ps)
            if refused or released:
                # blocks back in the pool; only then (a Lost storm refilled every
                # member's pipeline per message: work ∝ pieces × members, for nothing)
                self._fill_all(t)
        elif isinstance(m, msg.Peers):
            self._on_peers(t, m, pid)
        elif isinstance(m, msg.Leaves):
            self._on_leaves(t, ps, m)
        elif isinstance(m, msg.Blocks):
            self._on_blocks(t, ps, m)

    # manifest ---------------------------------------------------------------

    def _on_manifest_request(self, peer: Peer, m: msg.ManifestRequest) -> None:
        data = self.store.manifest_bytes(m.rid.hex()) if self._allowed(peer) else None
        self._link(peer).send(msg.ManifestResponse(m.rid, data))

    def _on_manifest_response(self, peer: Peer, m: msg.ManifestResponse) -> None:
        rid = m.rid.hex()
        wanted = self._manifests_wanted.get(rid)
        if wanted is None or m.manifest is None or wanted.manifest is not None:
            return
        from p2pkit.plugins.store import Manifest

        try:
            manifest = Manifest.decode(m.manifest, rid=rid)
        except (msgspec.DecodeError, ValueError) as exc:
            raise RemoteProtocolError(f"manifest for {rid[:12]} is invalid: {exc}") from None
        wanted.manifest = manifest
        wanted.wake()

    # swarm membership -------------------------------------------------------

    def _join(self, t: Torrent, peer: Peer) -> PeerState | None:
        """Add ``peer`` to the swarm of ``t`` and send it our bitfield (once)."""
        if not self._allowed(peer):
            return None
        ps = t.peers.get(peer.id)
        if ps is not None and ps.peer is not peer:
            # the member of a session that is gone (it reconnected): this one starts afresh
            self._member_gone(t, peer.id)
            ps = None
        if ps is None:
            if len(t.peers) >= self.cfg.max_peers and not self._make_room(t):
                return None
            ps = t.peers[peer.id] = PeerState(self._link(peer), joined_at=self._now())
        if not ps.bitfield_sent:
            ps.bitfield_sent = True
            ps.asked_at = self._now()
            seeding = t.seeding
            if seeding is not None and seeding.active(t.picker.availability):
                seeding.join(peer.id)
                shown = seeding.shown(peer.id) or set()
                ps.link.send(msg.Bitfield(t.key, msg.pack_bits(
                    [i in shown for i in range(t.num_pieces)])))
            else:
                ps.link.send(t.bitfield())
        return ps

    def _inject(self, t: Torrent) -> None:
        """Initial seeding: show the next targets their pieces and unchoke them (see
        :mod:`._seeding`). Called whenever a place may have come free."""
        seeding = t.injection
        if seeding is None:
            return
        if not seeding.active(t.picker.availability):  # everything is out: reveal all
            self.counters["initial_seeding_done"] += 1
            full = t.bitfield()
            for member in t.peers.values():
                if member.bitfield_sent:
                    member.link.send(full)
            self._rechoke(t)
            return
        now = self._now()
        for pid, (_piece, since) in list(seeding.offers.items()):
            ps = t.peers.get(pid)
            if ps is not None and not ps.peer_interested and now - since > TARGET_SILENT_S:
                seeding.release(pid)  # it dropped us (its swarm is full): try another
                self.counters["injection_targets_silent"] += 1
        lacks = {pid: ps.pieces for pid, ps in sorted(t.peers.items())
                 if ps.bitfield_sent and ps.pieces is not None and not ps.is_seed
                 and self._allowed(ps.peer)}
        for pid, piece in seeding.next_offers(now, t.picker.availability, lacks):
            t.peers[pid].link.send(msg.Have(t.key, piece))
        self._rechoke(t)

    def _refresh_stale(self, t: Torrent, now: float) -> None:
        """Show our bitfield again to members that may have dropped us (see
        :func:`stale_members`), so one that finished meanwhile can serve us."""
        for pid in stale_members(t.peers, now, after=STALE_AFTER_S):
            ps = t.peers[pid]
            ps.bitfield_sent = False
            self.counters["stale_members_asked"] += 1
            self._join(t, ps.peer)

    def _seeding_news(self, t: Torrent, ps: PeerState, pieces: Iterable[int]) -> None:
        """Initial seeding: ``ps`` announced ``pieces``, which may free a target's place
        or complete the injection (see :mod:`._seeding`)."""
        seeding = t.injection
        if seeding is None:
            return
        for piece in pieces:
            seeding.on_have(ps.peer.id, piece)
        self._inject(t)

    def _make_room(self, t: Torrent) -> bool:
        """Drop one member so a newcomer can join a full swarm (which one:
        :func:`room_victim`); False if everyone is useful."""
        victim = room_victim(t.peers, self._now(), interesting=t.picker.interesting,
                             seeding=t.complete, refused_after=REFUSED_AFTER_S)
        if victim is None:
            return False
        ps = t.peers.pop(victim)
        t.picker.remove_peer(victim)
        if t.seeding is not None:
            t.seeding.peer_gone(victim)
            self._inject(t)
        ps.link.cancel_upload(t.rid)
        ps.link.send(msg.Choke(t.key))  # it must not keep asking a swarm it is no longer in
        self.counters["members_dropped_for_room"] += 1
        return True

    def _on_bitfield(self, peer: Peer, m: msg.Bitfield) -> None:
        t = self._torrent(m.rid.hex())
        if t is None:
            return  # not ours to talk about
        pieces = msg.unpack_bits(m.bits, t.num_pieces)
        ps = self._join(t, peer)
        if ps is None:
            if self._allowed(peer) and t.peers:  # full: point the newcomer to the others
                self._link(peer).send(msg.Peers(t.key, self._pex(t, exclude=peer.id)))
            return
        first = ps.pieces is None
        if first:
            ps.pieces = pieces
            ps.held = sum(pieces)
            t.picker.add_peer(peer.id, pieces)
        else:  # a repeated bitfield (re-sent while ours was unanswered): only news count
            for i, has in enumerate(pieces):
                if has and not ps.pieces[i]:  # type: ignore[index]
                    ps.pieces[i] = True  # type: ignore[index]
                    ps.held += 1
                    t.picker.peer_has(peer.id, i)
        if first:
            others = self._pex(t, exclude=peer.id)
            if others:
                ps.link.send(msg.Peers(t.key, others))
        self._seeding_news(t, ps, [i for i, has in enumerate(pieces) if has])
        self._update_interest(t, ps)
        self._rechoke(t)
        if first and t.assemblies and ps.am_choking:  # (unchoked: the rechoke told it)
            self._advertise_to(t, ps)

    def _pex(self, t: Torrent, *, exclude: str) -> list[tuple[str, int]]:
        """Up to ``PEX_TOLD`` listen addresses of other members of ``t``'s swarm, a random
        few."""
        others = [p.peer.listen_address for pid, p in t.peers.items() if pid != exclude]
        self.rng.shuffle(others)
        return others[:PEX_TOLD]

    def _on_peers(self, t: Torrent, m: msg.Peers, told_by: str) -> None:
        if not t.active or self.node.peers is None:
            return
        now = self._now()
        for host, port in m.addresses:
            if len(t.peers) + len(self._dials.in_flight) >= self.cfg.max_peers:
                break
            addr = (host, port)
            if self.node.peers.by_address(addr) is not None or not self._dials.may_dial(addr, told_by, now):
                continue
            self._dials.started(addr, told_by)
            self.node.nursery.start_soon(self._dial, addr)

    async def _dial(self, addr: tuple[str, int]) -> Peer | None:
        peer: Peer | None = None
        try:
            with trio.move_on_after(10):
                peer = await self.node.peers.connect(addr)
        except (SessionClosed, RemoteProtocolError, trio.TooSlowError, OSError) as exc:
            log.debug("swarm: dialing %s failed: %s", addr, exc)
        finally:
            self._dials.finished(addr, peer is not None, self._now())
        return peer

    def _peer_gone(self, peer_id: str) -> None:
        link = self.links.pop(peer_id, None)
        if link is not None:
            link.close()
        for t in self.torrents.values():
            self._member_gone(t, peer_id)

    def _member_gone(self, t: Torrent, peer_id: str) -> None:
        """``peer_id`` is no longer in ``t``'s swarm (it went, or it told us it left)."""
        ps = t.peers.pop(peer_id, None)
        if ps is not None:
            t.picker.remove_peer(peer_id)
            if (injection := t.injection) is not None:
                injection.peer_gone(peer_id)
            self._reconsider_uploads(t)
            self._fill_all(t)

    def _forget_torrent(self, rid: str, why: str) -> None:
        t = self.torrents.pop(rid, None)
        if t is None:
            return
        for ps in t.peers.values():
            ps.link.cancel_upload(rid)
            # they forget our pieces and their requests to us: if we fetch it again, we
            # join afresh (a member that still counted us a seed never served us)
            ps.link.send(msg.Leave(t.key))
        t.error = SwarmError(why)
        t.poke()

    # interest and choking ---------------------------------------------------

    def _update_interest(self, t: Torrent, ps: PeerState) -> None:
        want = (t.active and ps.peer.enabled
                and t.picker.interesting(ps.peer.id))
        if want != ps.am_interested:
            ps.am_interested = want
            ps.link.send(msg.Interested(t.key) if want else msg.NotInterested(t.key))

    def _uplink_spare(self) -> bool:
        """Nothing waits for our uplink: every link's upload queue is empty (the
        transport holds only a few milliseconds of data per session, see
        :meth:`_session_backlog`), so an upload slot more would cost nobody anything."""
        return not any(link.uploads for link in self.links.values())

    def _reconsider_uploads(self, t: Torrent) -> None:
        """Who may download from us now: an injecting origin's targets (a place may have
        come free), else the choker's pick. Either way one rechoke."""
        if t.injection is not None:
            self._inject(t)  # ends with a rechoke
        else:
            self._rechoke(t)

    def _rechoke(self, t: Torrent) -> None:
        if (injection := t.injection) is not None:
            # injecting (see ._seeding): the targets and nobody else, unchoked before they
            # say Interested so that they ask as soon as they see their piece
            unchoked = {pid for pid in injection.offers
                        if pid in t.peers and self._allowed(t.peers[pid].peer)}
        else:
            unchoked = self._tit_for_tat(t)
        for pid, ps in t.peers.items():
            choke = pid not in unchoked
            if choke != ps.am_choking:
                ps.am_choking = choke
                ps.link.send(msg.Choke(t.key) if choke else msg.Unchoke(t.key))
                if choke:
                    ps.link.cancel_upload(t.rid)
                elif t.assemblies:
                    self._advertise_to(t, ps)

    def _tit_for_tat(self, t: Torrent) -> set[str]:
        """Who the choker unchokes now (see :mod:`._choker`)."""
        now = self._now()
        seeding = t.complete
        n = max(1, t.num_pieces)
        views = {
            pid: PeerView(ps.peer_interested and self._allowed(ps.peer),
                          ps.up.rate(now) if seeding else ps.down.rate(now),
                          missing=(1.0 if ps.pieces is None else 1.0 - ps.held / n))
            for pid, ps in t.peers.items()
        }
        young = not seeding and t.picker.have_count < t.picker.random_first
        return t.choker.update(now, views, spare=self._uplink_spare(), seeding=seeding,
                               young=young)

    # requesting -------------------------------------------------------------

    def _rtt(self, peer: Peer) -> float:
        try:
            stats = peer.stats()
        except Exception:
            return 0.1
        for key in ("srtt", "srtt_s", "rtt"):
            value = stats.get(key)
            if isinstance(value, int | float) and value > 0:
                return float(value)
        value = stats.get("srtt_ms")
        return float(value) / 1000 if isinstance(value, int | float) and value > 0 else 0.1

    def _fill(self, t: Torrent, pid: str) -> None:
        """Top up the request pipeline to ``pid``."""
        ps = t.peers.get(pid)
        if (ps is None or not t.active or ps.peer_choking
                or not self._allowed(ps.peer)):
            return
        now = self._now()
        depth, rate, rtt = self._pipeline(ps, now)
        if ps.ask_limit is not None:
            if ps.ask_limit >= depth:
                ps.ask_limit = None  # grown back: the pipeline decides again
            else:
                depth = ps.ask_limit
        need = depth - len(ps.requested)
        if need <= 0:
            return
        picked = t.picker.pick(pid, need, now=now,
                               stale_after=self._steal_after(rate, rtt, depth),
                               endgame_count=ENDGAME_IN_FLIGHT - len(ps.requested),
                               may_steal=self._may_steal(t, ps, rate, rtt, now))
        if not picked and not ps.requested:
            # nothing left to ask it (the blocks it offered arrived from others): say so,
            # or it keeps a slot for us
            self._update_interest(t, ps)
        for block in picked:
            ps.requested[block] = now
            ps.asked[block] = None
            if len(ps.asked) > REMEMBERED_ASKS:
                ps.asked.popitem(last=False)
            ps.link.send(msg.Request(t.key, block.piece, block.offset, block.length,
                                     leaves=not t.holds_leaves(block.piece)))
        if t.picker.stolen:
            self.counters["requests_moved"] += len(t.picker.stolen)
            self._send_cancels(t, t.picker.stolen)
            t.picker.stolen.clear()

    def _pipeline(self, ps: PeerState, now: float) -> tuple[int, float, float]:
        """The depth of the request pipeline to ``ps`` (before any ask limit), with the
        rate and round trip it was sized from."""
        block_size = self.cfg.block_size
        lo = max(MIN_DEPTH, MIN_IN_FLIGHT // block_size)  # a fresh peer gets at least 64 KiB asked
        rtt = self._rtt(ps.peer)
        rate = ps.down.rate(now)
        return pipeline_depth(rate, rtt, block_size, lo=lo, hi=max(lo, self.cfg.max_depth)), rate, rtt

    def _fill_all(self, t: Torrent) -> None:
        """Top up every pipeline (blocks went back to the pool)."""
        if t.active:
            for pid in list(t.peers):
                self._fill(t, pid)

    def _steal_after(self, rate: float, rtt: float, depth: int) -> float:
        """How old another peer's request must be before a peer delivering ``rate``
        bytes/s takes it over: longer than that peer needs to deliver its whole pipeline
        plus a round trip, i.e. it would certainly come sooner from it (before its rate is
        known: four round trips). Never more than ``swarm.duplicate_after_s``: a request
        that old is given to any idle peer."""
        wait = 4 * rtt if rate <= 0 else 2 * rtt + 2 * depth * self.cfg.block_size / rate
        return max(STEAL_MIN_S, min(wait, self.cfg.duplicate_after_s))

    def _may_steal(self, t: Torrent, ps: PeerState, rate: float, rtt: float,
                   now: float) -> Callable[[Iterable[str], Block], bool]:
        """Whether a stale request may move to ``ps`` (or, in endgame, be asked of it
        too): only if ``ps`` would deliver it sooner than the peer it was asked of
        (:func:`steal_pays`); ``ps`` sends it after its own pipeline, a round trip from
        now. Measured before this rule (N = 20, seed 1): 44 % of the moved blocks were
        the head of the old peer's queue, and 61 % of all duplicate blocks were the moved
        copy arriving second, most of them sent by the fastest uplinks."""
        block_size = self.cfg.block_size
        mine = rtt + (len(ps.requested) + 1) * block_size / rate if rate > 0 else 4 * rtt

        def may_steal(olds: Iterable[str], block: Block) -> bool:
            for old in olds:
                ops = t.peers.get(old)
                if ops is None or block not in ops.requested:
                    continue
                ahead = 0
                for b in ops.requested:  # in the order asked, which is the order served
                    if b == block:
                        break
                    ahead += 1
                if not steal_pays(ahead, ops.down.rate(now), mine, block_size):
                    return False
            return True

        return may_steal

    def _expire_requests(self, t: Torrent, now: float) -> None:
        limit = now - self.cfg.request_timeout_s
        for pid, ps in t.peers.items():
            late = [b for b, at in ps.requested.items() if at < limit]
            if late:
                self.counters["request_timeouts"] += len(late)
                for b in late:
                    del ps.requested[b]
                t.picker.forget_requests(pid, late)

    def _on_piece(self, t: Torrent, ps: PeerState, m: msg.Piece) -> None:
        pid = ps.peer.id
        if m.piece >= t.num_pieces:
            raise RemoteProtocolError(f"block of piece {m.piece} of {t.num_pieces}")
        block = Block(m.piece, m.offset, len(m.data))
        if ps.requested.pop(block, None) is None:
            # Already on its way when we were choked or moved/cancelled the request: the
            # picker keeps it if we still miss it (the uploader's uplink paid for it).
            self.counters["unrequested_blocks"] += 1
        n = len(m.data)
        if ps.ask_limit is not None:
            ps.ask_limit += 1
        if block in ps.asked:
            # Only blocks we asked it for count as its rate and its bytes: a peer
            # streaming junk nobody asked for looked like the fastest source (its requests
            # were never moved away, its pipeline deepened) and got upload slots
            now = self._now()
            ps.down.add(n, now)
            t.down.add(n, now)
            self.down.add(n, now)
            t.bytes_from[pid] += n
            self.bytes_from_peers[pid] += n
        expected, others, piece_done = t.picker.on_block(pid, block)
        for other, b in others:
            ops = t.peers.get(other)
            if ops is not None and ops.requested.pop(b, None) is not None:
                ops.link.send(msg.Cancel(t.key, b.piece, b.offset, b.length))
        if not expected:
            self.counters["duplicate_blocks"] += 1
            self._fill(t, pid)
            return
        asm = t.assembly(m.piece)
        checked_before = asm.verified
        if not asm.add_block(m.offset, m.data, pid):
            self._bad_blocks(t, m.piece, [(m.offset, n, pid)])
        elif piece_done:
            self._finish_piece(t, m.piece, t.assemblies.pop(m.piece))
        elif asm.verified != checked_before:
            self._advertise(t, m.piece, asm)
        self._fill(t, pid)

    def _finish_piece(self, t: Torrent, index: int, asm: Assembly) -> None:
        from p2pkit.plugins.store import StoreError

        try:
            ok = self.store.write_piece(t.rid, index, bytes(asm.data))
        except StoreError as exc:
            # the store cannot keep it (its disk is full — DiskFullError —, its limit,
            # the content evicted meanwhile): the download ends now, saying so, with the
            # pieces stored before kept; the piece is fetched again when it is resumed
            self.counters["store_errors"] += 1
            self._send_cancels(t, t.picker.piece_unstored(index))
            t.error = exc
            t.poke()
            return
        if not ok:
            self.counters["bad_pieces"] += 1
            blame, cancels = t.picker.piece_failed(index)
            self._send_cancels(t, cancels)
            if blame is not None:
                self._strike(t, blame, f"piece {index}")
            return
        self._send_cancels(t, t.picker.piece_verified(index))
        complete = t.picker.complete
        whole = t.bitfield() if complete else None
        for ps in list(t.peers.values()):
            news = piece_news(ps, t.key, index, whole)
            if news is not None:
                ps.link.send(news)
            self._update_interest(t, ps)
        if complete:
            t.poke()
            self._report(t, self._now(), force=True)

    # block checks and relaying ---------------------------------------------

    def _on_leaves(self, t: Torrent, ps: PeerState, m: msg.Leaves) -> None:
        """The leaf hashes of a piece we are fetching: check the blocks already here, and
        every later one on arrival."""
        if m.piece >= t.num_pieces:
            raise RemoteProtocolError(f"leaves for piece {m.piece} of {t.num_pieces}")
        if (not t.manifest.has_block_roots or t.picker.have[m.piece]
                or not t.picker.started(m.piece)):
            return  # nothing to check with them (a piece we never asked for allocates nothing)
        asm = t.assembly(m.piece)
        if asm.leaves is not None:
            return
        checked_before = asm.verified
        bad = asm.set_leaves(m.hashes)
        if bad is None:
            self.counters["bad_leaves"] += 1
            self._strike(t, ps.peer.id, f"leaf hashes of piece {m.piece}")
            return
        if bad:
            self._bad_blocks(t, m.piece, bad)
        if asm.verified != checked_before:
            self._advertise(t, m.piece, asm)

    def _bad_blocks(self, t: Torrent, piece: int, bad: list[tuple[int, int, str]]) -> None:
        """Blocks that failed their leaf hash: fetched again; each convicts its sender."""
        for offset, length, sender in bad:
            self.counters["bad_blocks"] += 1
            t.picker.block_failed(sender, Block(piece, offset, length))
            self._strike(t, sender, f"block {offset} of piece {piece}")
        self._fill_all(t)

    def _on_blocks(self, t: Torrent, ps: PeerState, m: msg.Blocks) -> None:
        """A member holds checked blocks of pieces it is still fetching."""
        masks = []
        for piece, bits in m.pieces:  # all checked before any is taken
            if piece >= t.num_pieces:
                raise RemoteProtocolError(f"blocks of piece {piece} of {t.num_pieces}")
            count = leaf_count(t.manifest.piece_length(piece))
            mask = bytes_to_mask(bits, count)
            if mask is None:
                raise RemoteProtocolError(f"blocks mask of {len(bits)} bytes for {count} leaves")
            masks.append((piece, mask))
        if ps.pieces is None:
            return  # its bitfield first
        for piece, mask in masks:
            t.picker.set_peer_blocks(ps.peer.id, piece, mask)
        self._update_interest(t, ps)
        self._fill(t, ps.peer.id)

    def _advertise(self, t: Torrent, piece: int, asm: Assembly) -> None:
        """Tell members lacking ``piece`` which of its blocks we can serve: on its first
        checked blocks every such member (so that it takes an interest in us), later
        those we unchoke that are interested (the ones that can ask now), the updates of
        one piece that fall due within UPDATE_DELAY_S as one message (a quarter fewer
        messages, the same times over eight seeds). Updates held back for longer lose:
        one every fourth block took N = 100 from 1.70 to 1.75 (docs/plugins/swarm-benchmark-log.md,
        *Blocks checked and relayed*)."""
        first = not asm.advertised
        asm.advertised = True
        if not first:
            if not self._updates_due:
                self.node.nursery.start_soon(self._send_updates)
            elif (t.rid, piece) in self._updates_due:
                self.counters["updates_merged"] += 1  # one message says both
            self._updates_due[t.rid, piece] = None
            return
        self._send_first_blocks(t, piece, asm)

    def _send_first_blocks(self, t: Torrent, piece: int, asm: Assembly) -> None:
        """A piece's first checked blocks: to every member that lacks the piece."""
        blocks = msg.Blocks(t.key, [(piece, asm.mask())])
        for ps in t.peers.values():
            if ps.pieces is None or ps.pieces[piece] or not self._allowed(ps.peer):
                continue
            self.counters["blocks_advertised"] += 1
            ps.link.send(blocks)

    async def _send_updates(self) -> None:
        """The Blocks updates that came due within UPDATE_DELAY_S: one message per member
        for all its pieces, to the members we unchoke that are interested and lack them."""
        await trio.sleep(UPDATE_DELAY_S)
        due, self._updates_due = self._updates_due, {}
        by_torrent: dict[str, list[int]] = {}
        for rid, piece in due:
            by_torrent.setdefault(rid, []).append(piece)
        for rid, pieces in by_torrent.items():
            t = self.torrents.get(rid)
            if t is None:
                continue
            try:
                # a piece gone from the assemblies is whole meanwhile (its Have said so)
                masks = {p: t.assemblies[p].mask() for p in pieces if p in t.assemblies}
                for pid, wanted in block_updates(t.peers, list(masks)).items():
                    ps = t.peers[pid]
                    if self._allowed(ps.peer):
                        self._send_masks(t, ps, [(p, masks[p]) for p in wanted])
            except Exception:  # a bug here must not take the node's nursery down
                self.counters["tick_errors"] += 1
                log.exception("swarm: advertising blocks of %s failed", rid[:12])

    def _send_masks(self, t: Torrent, ps: PeerState, masks: list[tuple[int, bytes]]) -> None:
        """``masks`` ((piece, mask) pairs) in one Blocks message per MAX_BLOCKS_PIECES."""
        step = msg.MAX_BLOCKS_PIECES
        for i in range(0, len(masks), step):
            self.counters["blocks_advertised"] += 1
            ps.link.send(msg.Blocks(t.key, masks[i:i + step]))

    def _advertise_to(self, t: Torrent, ps: PeerState) -> None:
        """A member we just unchoked, or whose bitfield just came: the checked blocks of
        unfinished pieces it lacks. (A member that joined after a piece's first
        advertisement heard of its blocks only once unchoked: at N = 100 the origin's
        first targets held blocks from 0.15 s that nobody was told of until ~0.6 s.)"""
        if ps.pieces is None:
            return
        self._send_masks(t, ps, [(piece, asm.mask()) for piece, asm in t.assemblies.items()
                                 if asm.verified and asm.advertised and not ps.pieces[piece]])

    def _leaves_of(self, t: Torrent, piece: int, data: bytes | None) -> list[bytes] | None:
        """The leaf hashes of a piece we hold whole (None: the manifest has no block roots)."""
        if data is None or not t.manifest.has_block_roots:
            return None
        key = (t.rid, piece)
        leaves = self._leaf_cache.get(key)
        if leaves is None:
            leaves = self._leaf_cache[key] = leaf_hashes(data)
            if len(self._leaf_cache) > LEAF_CACHE:
                self._leaf_cache.popitem(last=False)
        return leaves

    def _send_cancels(self, t: Torrent, cancels: list[tuple[str, Block]]) -> None:
        for pid, b in cancels:
            ps = t.peers.get(pid)
            if ps is not None and ps.requested.pop(b, None) is not None:
                ps.link.send(msg.Cancel(t.key, b.piece, b.offset, b.length))

    def _strike(self, t: Torrent, pid: str, what: str) -> None:
        t.strikes[pid] += 1
        self.counters["strikes"] += 1
        ps = t.peers.get(pid)
        log.warning("swarm: %s of %s from %s failed its hash (strike %d)",
                    what, t.rid[:12], pid[:12], t.strikes[pid])
        if t.strikes[pid] < self.cfg.max_strikes or ps is None:
            return
        self.banned.add(pid)
        self.counters["peers_dropped"] += 1
        log.warning("swarm: dropped peer %s after %d corrupt pieces or blocks",
                    pid[:12], t.strikes[pid])
        self.node.emit(Notice(level="warning", source="swarm", message=(
            f"dropped peer {pid[:12]}: {t.strikes[pid]} corrupt pieces or blocks")))
        ps.peer.close("sent corrupt pieces")  # PeerDown removes it everywhere

    # uploading --------------------------------------------------------------

    def _on_request(self, t: Torrent, ps: PeerState, m: msg.Request) -> None:
        if not t.block_in_range(m.piece, m.offset, m.length):
            raise RemoteProtocolError(f"request outside piece {m.piece} of {t.rid[:12]}")
        if not ((t.picker.have[m.piece] and m.piece not in t.lost) or self._relayable(t, m)):
            self.counters["lost_sent"] += 1
            ps.link.send(msg.Lost(t.key, m.piece))
            return
        if ps.link.is_coming(t.rid, m):  # a greedy repeat: not sent twice
            self.counters["repeat_requests"] += 1
            return
        if (ps.am_choking or not self._allowed(ps.peer)
                or len(ps.link.uploads) >= self.cfg.upload_queue
                or self._upload_backlog_full()):
            self.counters["rejects_sent"] += 1
            ps.link.send(msg.Reject(t.key, m.piece, m.offset, m.length))
            return
        ps.link.queue_upload(t.rid, m)

    @property
    def upload_backlog(self) -> int:
        """Bytes the requests queued for upload on every link ask for."""
        return sum(link.upload_bytes for link in self.links.values())

    def _upload_backlog_full(self) -> bool:
        """Our queued uploads would keep a new request waiting longer than
        UPLOAD_BACKLOG_S: better rejected now, so that the requester asks another peer,
        than served late while faster peers that hold the block idle."""
        queued = self.upload_backlog
        if queued < UPLOAD_BACKLOG_MIN:
            return False
        if queued < max(self.up.rate(self._now()), MIN_UPLOAD_RATE) * UPLOAD_BACKLOG_S:
            return False
        self.counters["rejects_backlog"] += 1
        return True

    def _block_to_send(self, t: Torrent, m: msg.Request) -> tuple[bytes | None, list[bytes] | None]:
        """The block ``m`` asks for and its piece's leaf hashes (None, None: we cannot)."""
        if t.picker.have[m.piece] and m.piece not in t.lost:
            data = self._read_piece(t.rid, m.piece)
            if data is None:
                return None, None
            return data[m.offset:m.offset + m.length], self._leaves_of(t, m.piece, data)
        if self._relayable(t, m):  # relaying: checked blocks of a piece still on its way
            asm = t.assemblies[m.piece]
            self.counters["blocks_relayed"] += 1
            return bytes(asm.data[m.offset:m.offset + m.length]), asm.leaves
        return None, None

    def _piece_lost(self, t: Torrent, piece: int) -> None:
        """A piece we announced can no longer be read (the shared file changed, the stored
        copy is damaged): requests for it are answered ``Lost`` from now on."""
        t.lost.add(piece)
        self.counters["pieces_lost"] += 1
        if t.seeding is not None:  # initial seeding would offer it to targets again
            t.seeding = None
            self.counters["initial_seeding_done"] += 1
            whole = t.bitfield()
            for member in t.peers.values():
                if member.bitfield_sent:
                    member.link.send(whole)

    @staticmethod
    def _relayable(t: Torrent, m: msg.Request) -> bool:
        """A block of a piece we are still fetching that we hold and have checked."""
        asm = t.assemblies.get(m.piece)
        return asm is not None and asm.servable(m.offset, m.length)

    def _read_piece(self, rid: str, index: int) -> bytes | None:
        key = (rid, index)
        data = self._piece_cache.get(key)
        if data is not None:
            self._piece_cache.move_to_end(key)
            return data
        data = self.store.read_piece(rid, index)
        if data is not None:
            self._piece_cache[key] = data
            if len(self._piece_cache) > PIECE_CACHE:
                self._piece_cache.popitem(last=False)
        return data  # type: ignore[no-any-return]

    async def _upload(self, link: Link, rid: str, m: msg.Request) -> None:
        t = self.torrents.get(rid)
        ps = t.peers.get(link.peer.id) if t is not None else None
        if t is None or ps is None or ps.am_choking or not self._allowed(link.peer):
            return  # choked since it was queued: the peer has forgotten the request
        block, leaves = self._block_to_send(t, m)
        if block is None:  # evicted or damaged on disk since we said we had it, or the
            # piece failed its hash since we relayed its first blocks
            if t.picker.have[m.piece]:
                self._piece_lost(t, m.piece)
            self.counters["lost_sent"] += 1
            link.send(msg.Lost(m.rid, m.piece))
            return
        if leaves is not None and m.leaves and m.piece not in ps.leaves_sent:
            ps.leaves_sent.add(m.piece)
            self.counters["leaves_sent"] += 1
            leaves_message = link.aliases.encode(msg.Leaves(m.rid, m.piece, leaves))
            await link.peer.send(msg.PROTOCOL, leaves_message, channel=CHANNEL_CONTROL)
        queued = await link.peer.send(
            msg.PROTOCOL, msg.encode(msg.Piece(m.rid, m.piece, m.offset, block)), channel=CHANNEL_BULK)
        link.handed_over(rid, m, queued)
        seeding = t.injection
        if (seeding is not None
                and seeding.uploaded(link.peer.id, m.piece, len(block), t.manifest.piece_length(m.piece))):
            self._inject(t)
        now = self._now()
        ps.up.add(len(block), now)
        self.up.add(len(block), now)
        t.bytes_to[link.peer.id] += len(block)
        self.bytes_to_peers[link.peer.id] += len(block)

    # ------------------------------------------------------------------ downloading

    def close(self) -> None:
        """The node stopped (called by the kernel once its tasks are over)."""
        for scope in self._fetches:
            scope.cancel()

    async def fetch(self, rid: str, *, progress: Any = None,
                    before: Callable[[Any], None] | None = None) -> Any:
        """Download ``rid`` into the store (verified) without exporting; returns the manifest.

        NodeStateError if the node stops meanwhile: a download running in a task of the
        caller's, outside the node's block, waited for ever once the node's tasks were
        gone."""
        with trio.CancelScope() as scope:
            self._fetches.add(scope)
            try:
                return await self._fetch(rid, progress=progress, before=before)
            finally:
                self._fetches.discard(scope)
        raise NodeStateError(f"download of {rid[:12]}: the node stopped")

    async def _fetch(self, rid: str, *, progress: Any,
                     before: Callable[[Any], None] | None) -> Any:
        rid = _content_id(rid)
        if not self.node.settings.p2p_enabled:
            raise P2PDisabledError("peer-to-peer transfer is switched off (cfg.p2p_enabled = false)")
        store = self.store
        manifest = known = store.manifest(rid)
        if manifest is None:
            manifest = await self._fetch_manifest(rid)
        if before is not None:  # e.g. its name cannot be written where it goes
            before(manifest)
        if known is None:
            from p2pkit.plugins.store import StoreError

            try:
                store.begin_download(manifest)
            except StoreError as exc:  # e.g. larger than the storage limit allows
                raise SwarmError(f"cannot download {rid[:12]}: {exc}") from None
        t = self._torrent(rid)
        if t is None:
            raise SwarmError(f"{rid[:12]} vanished from the store")
        while t.downloading:  # another call downloads it: share its progress and outcome
            ended = t.download_ended
            if progress is not None:
                t.progress_cbs.append(progress)
            try:
                await ended.wait()
            finally:  # (the list is emptied when the download ends)
                if progress is not None and progress in t.progress_cbs:
                    t.progress_cbs.remove(progress)
            if not t.downloading and not t.complete and t.error is not None:
                raise self._download_error(rid, t.error)
            # complete; or cancelled by its caller (then we download it ourselves)
        if t.complete:
            if progress is not None:  # "and at the end", as for a download that ran
                self._call_progress(progress, manifest.size, manifest.size)
            return manifest
        from p2pkit.plugins.store import StoreError

        t.downloading = True
        t.download_ended = trio.Event()
        t.error = None
        t.lost_by.clear()
        t.progress_cbs = [progress] if progress is not None else []
        t.started_at = self._now()
        if t.interest_withdrawn:
            # members still here from a download that was cancelled were told
            # NotInterested then: told nothing now, a seed that no longer injects never
            # unchoked us again
            t.interest_withdrawn = False
            for ps in list(t.peers.values()):
                self._update_interest(t, ps)
            self._fill_all(t)
        try:
            with store.downloading(rid):  # not evicted for another download meanwhile
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._recruit, t)
                    nursery.start_soon(self._give_up_when_stalled, t)
                    while not t.complete and t.error is None:
                        await t.wake.wait()
                        t.wake = trio.Event()
                    nursery.cancel_scope.cancel()
        except StoreError as exc:  # resumed, and the limit now leaves no room for it
            raise SwarmError(f"cannot download {rid[:12]}: {exc}") from None
        finally:
            t.downloading = False
            t.progress_cbs = []
            t.download_ended.set()
            t.interest_withdrawn = not t.complete
            for ps in t.peers.values():
                self._update_interest(t, ps)
        if t.error is not None:
            raise self._download_error(rid, t.error)
        if not store.is_complete(rid):
            raise SwarmError(f"{rid[:12]} was removed from the store during the download")
        self.node.emit(GenericEvent(kind="download.complete", data={
            "rid": rid, "bytes": manifest.size, "seconds": self._now() - t.started_at,
            "from": dict(t.bytes_from)}))
        return manifest

    @staticmethod
    def _download_error(rid: str, error: Exception) -> Exception:
        if isinstance(error, NoProvidersError):
            return error
        failed = SwarmError(f"download of {rid[:12]} failed: {error}")
        failed.__cause__ = error  # chained: the web UI tells a full disk by its cause
        return failed

    async def download(self, rid: str, dest: Path | str | None = None, *,
                       progress: Any = None) -> Path:
        """Fetch ``rid`` from peers (verified) and export it; returns the file's path.

        ``dest``: a file path or a directory (the manifest's name is used; as text, a
        trailing slash says it must be one); default ``<data_dir>/downloads/`` (a
        temporary directory for an ephemeral node). A ``dest`` that cannot be written is
        a SwarmError before anything is fetched (:func:`output_problem`).
        """
        from p2pkit.plugins.store import StoreError

        rid = _content_id(rid)  # as a person copies it: the export needs the network's spelling
        if dest is not None and (problem := output_problem(dest)) is not None:
            raise SwarmError(f"cannot write {problem}")
        if dest is None:
            dest = (Path(self.node.data_dir) / "downloads" if self.node.data_dir is not None
                    else Path(tempfile.gettempdir()) / f"p2pkit-downloads-{self.node.id[:12]}")
            dest.mkdir(parents=True, exist_ok=True)
        where = Path(dest)

        def writable(manifest: Any) -> None:
            """Once the name is known, before a piece is fetched: a directory ``dest``
            holding a directory of that name was found only after the whole download."""
            if where.is_dir() and (problem := output_problem(where / manifest.name, file=True)):
                raise SwarmError(f"cannot write {problem}")

        await self.fetch(rid, progress=progress, before=writable)
        try:
            return await self.store.export_async(rid, Path(dest))  # type: ignore[no-any-return]
        except StoreError as exc:  # the place changed meanwhile, the disk filled up...
            raise SwarmError(f"download of {rid[:12]} complete, but {exc}") from None

    def _candidates(self, rid: str) -> list[Peer]:
        if self.node.peers is None:
            return []
        return [p for p in self.node.peers.all() if self._allowed(p)]

    async def _providers(self, rid: str) -> list[Peer]:
        """Connected providers of ``rid`` announced by discovery (dialled if needed)."""
        discovery = self.node.discovery
        peers = self.node.peers
        if discovery is None or peers is None:
            return []
        try:
            with trio.move_on_after(10):
                ids = list(await discovery.find_providers(rid))
        except Exception as exc:  # a failing discovery must not kill the download
            log.info("swarm: find_providers(%s) failed: %s", rid[:12], exc)
            return []
        found: dict[str, Peer | None] = {pid: peers.get(pid) for pid in ids}
        to_dial = [(pid, tuple(addr)) for pid, peer in found.items() if peer is None
                   and (addr := discovery.address_of(pid)) is not None]  # (Discovery protocol)
        if to_dial:  # at once: one after another, each dead record held the others 10 s
            async def dial(pid: str, addr: tuple[str, int]) -> None:
                found[pid] = await self._dial(addr)

            async with trio.open_nursery() as nursery:
                for pid, addr in to_dial:
                    nursery.start_soon(dial, pid, addr)
        # whoever answers at an address a peer told discovery is not the provider unless
        # its (authenticated) id says so; and a session may have closed meanwhile
        return [peer for pid, peer in found.items()
                if peer is not None and peer.id == pid and self._allowed(peer)]

    def _ask_manifest(self, rid: str, peers: list[Peer], asked: set[Peer]) -> None:
        for peer in peers:
            if peer not in asked and not peer.closed.is_set():
                asked.add(peer)
                self._link(peer).send(msg.ManifestRequest(bytes.fromhex(rid)))

    async def _fetch_manifest(self, rid: str) -> Any:
        """Ask providers and connected peers until one sends a manifest hashing to ``rid``.
        Fetches of one rid at once share what arrives (each took it from the others
        before: one waited a whole round for a manifest that had come)."""
        wanted = self._manifests_wanted.setdefault(rid, ManifestWanted())
        wanted.fetches += 1
        # by session, not id: a peer asked on a session that then closed is asked again
        # on its next one
        asked: set[Peer] = set()
        store = self.store
        try:
            with trio.move_on_after(self.cfg.provider_wait_s):
                while wanted.manifest is None and store.manifest(rid) is None:
                    woken = wanted.woken  # before asking: a peer that comes meanwhile wakes us
                    # the connected peers at once; then the providers (dialled if need be:
                    # a dead record takes 10 s, which held every request back)
                    self._ask_manifest(rid, self._candidates(rid), asked)
                    self._ask_manifest(rid, await self._providers(rid), asked)
                    with trio.move_on_after(2.0):
                        await woken.wait()
                    if len(asked) > 64:
                        asked.clear()  # ask again: they may have it by now
            manifest = wanted.manifest or store.manifest(rid)
        finally:
            wanted.fetches -= 1
            if not wanted.fetches and self._manifests_wanted.get(rid) is wanted:
                del self._manifests_wanted[rid]
        if manifest is None:
            raise NoProvidersError(
                f"no peer offered {rid[:12]} within {self.cfg.provider_wait_s:g} s")
        return manifest

    async def _recruit(self, t: Torrent) -> None:
        """Keep the swarm of a download populated: providers and every connected peer."""
        delay = 1.0
        while True:
            for ps in list(t.peers.values()):
                if ps.pieces is None and ps.bitfield_sent:  # unanswered (it was full): ask again
                    ps.bitfield_sent = False
                    self._join(t, ps.peer)
            if len(t.peers) < self.cfg.max_peers:
                for peer in self._candidates(t.rid):
                    self._join(t, peer)
                for peer in await self._providers(t.rid):
                    self._join(t, peer)
            await trio.sleep(delay)
            delay = min(delay * 2, 15.0)

    async def _give_up_when_stalled(self, t: Torrent) -> None:
        """End a download nobody can finish: nothing arrived and no member offered a
        piece we miss for ``provider_wait_s`` (a provider whose copy broke answers every
        request with Lost; one that left for good leaves nobody). It waited for ever."""
        wait = self.cfg.provider_wait_s
        done, since = t.done_bytes(), self._now()
        while True:
            # a quarter of the wait, not every second: a wake-up a second per download
            # reordered the simulator's events (the swarm benchmark moved by its chaos)
            await trio.sleep(wait / 4)
            now = self._now()
            if t.done_bytes() != done or t.picker.missing_offered():
                done, since = t.done_bytes(), now
            elif now - since >= wait:
                missing = len(t.picker.missing())
                said = (f"; {len(t.lost_by)} peer(s) said they no longer have them"
                        if t.lost_by else "")
                t.error = NoProvidersError(
                    f"no peer offered the {missing} missing pieces of {t.rid[:12]} for "
                    f"{wait:g} s{said}")
                t.wake.set()
                return

    def _report(self, t: Torrent, now: float, *, force: bool = False) -> None:
        if not force and now - t.last_progress < 0.5:
            return
        t.last_progress = now
        done, total = t.done_bytes(), t.manifest.size
        for callback in list(t.progress_cbs):
            self._call_progress(callback, done, total)
        active = sum(1 for ps in t.peers.values() if not ps.peer_choking)
        self.node.emit(GenericEvent(kind="download.progress", data={
            "rid": t.rid, "done": done, "total": total, "rate": t.down.rate(now),
            "peers": len(t.peers), "unchoked_by": active,
            "rates": {pid[:16]: ps.down.rate(now) for pid, ps in t.peers.items()},
        }))

    def _call_progress(self, progress: Callable[[int, int], Any], done: int, total: int) -> None:
        """A caller's progress callback: its bug must not end the download, nor go unseen."""
        try:
            progress(done, total)
        except Exception:
            self.counters["progress_errors"] += 1
            if self.counters["progress_errors"] == 1:
                log.exception("swarm: the progress callback failed (later failures: counted only)")

    def diagnose(self, rid: str) -> dict[str, Any] | None:
        """What a download is waiting for, block by block (None: not in the swarm).

        ``missing_blocks`` splits into blocks asked of a peer (``requested_from``), blocks
        a peer that unchokes us holds but that were not asked for yet (``askable``: by
        the best state among those peers — ``ready``, the pipeline has room and they go
        out at its next top-up; ``backing_off``, the peer rejected a request and takes
        one more per block it delivers; ``pipelines_full``, its pipeline is as deep as
        its rate and round trip call for), blocks only members that choke us hold
        (``only_choking_peers``) and blocks no member is known to hold (``nobody``).
        ``peers`` has each member's side of it, with its pipeline's ``state`` and how
        many of the askable blocks it holds (``holds_unasked``). Nothing changes; the
        swarm benchmark's ``--diagnose`` sums it over a swarm (docs/plugins/swarm.md)."""
        t = self.torrents.get(rid)
        if t is None:
            return None
        now = self._now()
        peers: dict[str, dict[str, Any]] = {}
        for pid, ps in sorted(t.peers.items()):
            depth, rate, rtt = self._pipeline(ps, now)
            asked = len(ps.requested)
            if ps.ask_limit is not None and ps.ask_limit < depth and asked >= ps.ask_limit:
                state = "backing_off"
            else:
                state = "pipelines_full" if asked >= depth else "ready"
            peers[pid] = {
                "unchokes_us": not ps.peer_choking, "we_unchoke": not ps.am_choking,
                "interested_in_us": ps.peer_interested, "we_are_interested": ps.am_interested,
                "asked": asked, "depth": depth, "ask_limit": ps.ask_limit, "state": state,
                "holds_unasked": 0, "rate_from": rate, "rate_to": ps.up.rate(now), "rtt": rtt,
            }
        missing = t.picker.missing_blocks(
            lambda pid: pid in t.peers and not t.peers[pid].peer_choking)
        askable = dict.fromkeys(("ready", "backing_off", "pipelines_full"), 0)
        for _block, holders in missing.askable:
            best = min((peers[pid]["state"] for pid in holders), key=list(askable).index)
            askable[best] += 1
            for pid in holders:
                peers[pid]["holds_unasked"] += 1
        return {
            "missing_blocks": missing.total, "requested": missing.asked,
            "requested_from": dict(sorted(missing.requested.items())),
            "askable": askable, "only_choking_peers": missing.choked,
            "nobody": missing.unseen, "peers": peers,
        }

    def status(self) -> Mapping[str, Any]:
        """A JSON-friendly view of every content in the swarm (web UI, tests)."""
        now = self._now()
        return {rid: {
            "downloading": t.downloading, "complete": t.complete,
            "have": t.picker.have_count, "pieces": t.num_pieces, "peers": len(t.peers),
            "rate": t.down.rate(now), "bytes_from": dict(t.bytes_from),
            "bytes_to": dict(t.bytes_to), "strikes": dict(t.strikes),
        } for rid, t in self.torrents.items()}


__all__ = ["SwarmConfig", "SwarmProvider"]
