"""Per-peer and per-content state of the swarm provider (no I/O here).

A :class:`Link` is one peer's outgoing traffic: control messages first, then uploads,
sent by one task per peer, so a message handler only ever queues and never waits on the
network. A :class:`Torrent` is everything about one rid: the manifest, the picker, the
choker, and a :class:`PeerState` for every peer in its swarm.
"""

from __future__ import annotations

import random
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import Any

import attrs
import trio

from p2pkit.capabilities import QueuedMessage
from p2pkit.peers import Peer

from . import _messages as msg
from ._aliases import RidAliases
from ._assembly import Assembly
from ._choker import Choker
from ._picker import Block, PiecePicker
from ._pipeline import RateMeter
from ._seeding import InitialSeeding

# Uploads handed to the transport that a Cancel may still withdraw: the writer hands a
# session only a block or two ahead, so older ones have left already.
IN_TRANSPORT = 8

UploadKey = tuple[str, int, int, int]  # rid, piece, offset, length

# What a peer may leave unread in our control queue before we drop it. Replies are queued
# for what a peer asks (a 38-byte ManifestRequest is answered by a whole manifest); one
# that asks and never reads would otherwise grow the queue without end. A reader at any
# real rate keeps it near empty (the writer sends control messages first).
MAX_CONTROL_BYTES = 2 * msg.MAX_MANIFEST_BYTES + (1 << 20)
MAX_CONTROL_MESSAGES = 16384
REMEMBERED_ASKS = 4096  # blocks remembered per peer as asked of it
_CONTROL_OVERHEAD = 48  # an estimate of a small message's bytes, framing included


def control_size(message: msg.Message) -> int:
    """About what ``message`` weighs in the control queue."""
    if isinstance(message, msg.ManifestResponse):
        return _CONTROL_OVERHEAD + len(message.manifest or b"")
    if isinstance(message, msg.Leaves):
        return _CONTROL_OVERHEAD + 32 * len(message.hashes)
    if isinstance(message, msg.Bitfield):
        return _CONTROL_OVERHEAD + len(message.bits)
    return _CONTROL_OVERHEAD


def upload_key(rid: str, request: msg.Request) -> UploadKey:
    return rid, request.piece, request.offset, request.length


class Link:
    """Outgoing queues of one peer, drained by one writer task."""

    def __init__(self, peer: Peer, aliases: RidAliases | None = None) -> None:
        self.peer = peer
        self.control: deque[msg.Message] = deque()  # encoded by the writer, in order
        self.control_bytes = 0  # about what ``control`` holds (control_size)
        self.manifests_queued: set[bytes] = set()  # rids of ManifestResponses in ``control``
        self.overrun = False  # closed because the peer left too much unread
        # the session's short names for rids (``is None``, not ``or``: the caller's table,
        # shared with the session, must be used even while it is empty)
        self.aliases = aliases if aliases is not None else RidAliases()
        self.uploads: deque[tuple[str, msg.Request]] = deque()
        self.upload_bytes = 0  # what the requests in ``uploads`` ask for
        self.in_transport: OrderedDict[UploadKey, QueuedMessage] = OrderedDict()
        # the blocks in ``uploads``: a request for one of them again is not queued twice
        # (a greedy peer keeping eight requests out for one block took two thirds of a
        # seeder's uplink; an honest one never asks for a block it has queued with us)
        self.queued: set[UploadKey] = set()
        self.closed = False
        self._wake = trio.Event()

    def send(self, message: msg.Message) -> None:
        """Queue a control message; a peer that has left too much unread is dropped."""
        if self.closed:
            return
        if isinstance(message, msg.ManifestResponse):
            if message.rid in self.manifests_queued:
                return  # one copy on its way is the answer to every repeat of the request
            self.manifests_queued.add(message.rid)
        self.control.append(message)
        self.control_bytes += control_size(message)
        self._wake.set()
        if len(self.control) > MAX_CONTROL_MESSAGES or self.control_bytes > MAX_CONTROL_BYTES:
            self.overrun = True
            self.close()
            self.peer.close("swarm: the peer leaves what it asked for unread")

    def next_control(self) -> msg.Message:
        """The oldest queued control message, taken off the queue (the writer sends it)."""
        message = self.control.popleft()
        self.control_bytes -= control_size(message)
        if isinstance(message, msg.ManifestResponse):
            self.manifests_queued.discard(message.rid)
        return message

    def is_coming(self, rid: str, request: msg.Request) -> bool:
        """Is this block queued for the peer, or handed to the transport lately (on its
        way, or not long ago)? An honest peer does not ask for such a block again."""
        key = upload_key(rid, request)
        return key in self.queued or key in self.in_transport

    def queue_upload(self, rid: str, request: msg.Request) -> None:
        self.uploads.append((rid, request))
        self.upload_bytes += request.length
        self.queued.add(upload_key(rid, request))
        self._wake.set()

    def next_upload(self) -> tuple[str, msg.Request]:
        """The oldest queued upload, taken off the queue (the writer sends it)."""
        rid, request = self.uploads.popleft()
        self.upload_bytes -= request.length
        self.queued.discard(upload_key(rid, request))
        return rid, request

    def cancel_upload(self, rid: str, request: msg.Request | None = None) -> None:
        """Drop queued uploads of ``rid`` (all of them, or one request)."""
        self.uploads = deque(
            (r, q) for r, q in self.uploads
            if r != rid or (request is not None and (q.piece, q.offset, q.length)
                            != (request.piece, request.offset, request.length))
        )
        self.upload_bytes = sum(q.length for _r, q in self.uploads)
        self.queued = {upload_key(r, q) for r, q in self.uploads}

    def handed_over(self, rid: str, request: msg.Request, queued: QueuedMessage | None) -> None:
        """The upload for ``request`` now waits in the transport as ``queued``."""
        if queued is None:
            return  # this transport cannot take messages back
        self.in_transport[upload_key(rid, request)] = queued
        while len(self.in_transport) > IN_TRANSPORT:
            self.in_transport.popitem(last=False)

    def withdraw_upload(self, rid: str, request: msg.Request) -> bool:
        """Take a cancelled upload back from the transport if none of it has left yet."""
        queued = self.in_transport.pop(upload_key(rid, request), None)
        return queued is not None and queued.withdraw()

    def close(self) -> None:
        self.closed = True
        self.control.clear()
        self.control_bytes = 0
        self.manifests_queued.clear()
        self.uploads.clear()
        self.upload_bytes = 0
        self.in_transport.clear()
        self.queued.clear()
        self._wake.set()

    async def wait_control(self, seconds: float) -> None:
        """Up to ``seconds``, ending early when a control message is queued."""
        with trio.move_on_after(seconds):
            while not (self.control or self.closed):
                self._wake = trio.Event()
                await self._wake.wait()

    async def wait(self) -> None:
        """Until there is something to send (or the link closed)."""
        if self.control or self.uploads or self.closed:
            return
        self._wake = trio.Event()
        await self._wake.wait()


@attrs.define(eq=False)
class PeerState:
    """One peer in one content's swarm. ``am_*`` is us, ``peer_*`` is them."""

    link: Link
    joined_at: float = 0.0
    asked_at: float = float("-inf")  # when we last sent it our bitfield
    pieces: list[bool] | None = None  # their bitfield, once received
    # how many of ``pieces`` are set, kept as they change: a rechoke at every Interested
    # summed every member's bitfield (a storm of them kept a seeder's core busy)
    held: int = 0
    bitfield_sent: bool = False
    am_choking: bool = True
    am_interested: bool = False
    peer_choking: bool = True
    peer_interested: bool = False
    requested: dict[Block, float] = attrs.field(factory=dict)  # block → when asked
    # every block asked of it lately (requested, or since cancelled or moved): what it
    # sends counts as its rate only if we asked for it (REMEMBERED_ASKS)
    asked: OrderedDict[Block, None] = attrs.field(factory=OrderedDict)
    # After a Reject (the peer's upload queue is full): ask it for no more than this, one
    # more per block it delivers; at least 1, so a peer that had nothing of ours queued is
    # still asked (one request per round trip); None = the pipeline alone decides.
    ask_limit: int | None = None
    leaves_sent: set[int] = attrs.field(factory=set)  # pieces whose leaf hashes it has from us
    down: RateMeter = attrs.field(factory=RateMeter)
    up: RateMeter = attrs.field(factory=RateMeter)

    @property
    def peer(self) -> Peer:
        return self.link.peer

    @property
    def is_seed(self) -> bool:
        return self.pieces is not None and all(self.pieces)


def stale_members(peers: dict[str, PeerState], now: float, *, after: float) -> list[str]:
    """Members of a downloader's swarm whose view may be out of date: neither side wants
    anything, the member is not known to be a seed, and we last showed it our bitfield
    ``after`` seconds ago or more.

    A member that drops *us* to make room in its own full swarm tells us only Choke, and
    then stops sending us its news (Have): to us it stays a member with the few pieces it
    had, taking one of our slots for nothing while it may long be a seed. Showing it our
    bitfield again asks it to take us back; if it does, its answer is its real bitfield.
    """
    return [pid for pid, ps in peers.items()
            if ps.pieces is not None and not ps.is_seed and not ps.am_interested
            and not ps.peer_interested and now - ps.asked_at >= after]


def room_victim(peers: dict[str, PeerState], now: float, *,
                interesting: Callable[[str], bool], seeding: bool,
                refused_after: float) -> str | None:
    """The member to drop so that a newcomer can join a full swarm, or None if every
    member is useful. In order: a member that has not answered our bitfield for
    ``refused_after`` seconds (it refused us: its own swarm is full); while we seed, a
    seed; a member of no use either way (neither side interested, nothing it has that we
    lack). A member we unchoke is never of no use: it has not had a round trip yet to say
    it is interested — an origin's injection target, dropped for the next newcomer the
    moment it was shown its piece, wasted what the origin had sent it (at N = 100 the
    first four pieces went to 16 targets in 50 ms)."""
    refused = [pid for pid, ps in peers.items()
               if ps.pieces is None and now - ps.joined_at > refused_after]
    idle = [pid for pid, ps in peers.items()
            if ps.pieces is not None and not ps.am_interested and not ps.peer_interested
            and ps.am_choking and (ps.is_seed or not interesting(pid))]
    seeds = [pid for pid in idle if peers[pid].is_seed and seeding]
    candidates = refused or seeds or idle
    return candidates[0] if candidates else None


def block_updates(peers: dict[str, PeerState], pieces: list[int]) -> dict[str, list[int]]:
    """Who hears the Blocks updates of ``pieces`` that fell due together: the members we
    unchoke that are interested (the ones that can ask now), each of the pieces it lacks
    in one message (at N = 100: 261 000 one-piece messages were 153 000 member-ticks)."""
    out: dict[str, list[int]] = {}
    for pid, ps in peers.items():
        if ps.am_choking or not ps.peer_interested or ps.pieces is None:
            continue
        have = ps.pieces
        wanted = [p for p in pieces if not have[p]]
        if wanted:
            out[pid] = wanted
    return out


def piece_news(ps: PeerState, key: bytes, piece: int,
               whole: msg.Bitfield | None) -> msg.Message | None:
    """What a member hears when we have verified ``piece``; ``whole``: our bitfield if
    that was the last piece (built once by the caller, for every member).

    A Have only to a member that lacks the piece: one holding it has no use for the news
    (41 % of all Haves at N = 100). Such a member then under-counts our pieces until we
    are complete, when every member that is not a seed gets our whole bitfield, so that
    it knows we are a seed. A seed hears nothing."""
    if ps.is_seed:
        return None
    if whole is not None:
        return whole
    if ps.pieces is not None and ps.pieces[piece]:
        return None
    return msg.Have(key, piece)


class Torrent:
    """One rid: manifest, what we have, who has what, who we serve."""

    def __init__(self, rid: str, manifest: object, have: list[bool], *, block_size: int,
                 choker: Choker, rng: random.Random) -> None:
        from p2pkit.plugins.store import Manifest

        assert isinstance(manifest, Manifest)
        self.rid = rid
        self.key = bytes.fromhex(rid)  # the rid as messages carry it
        self.manifest = manifest
        lengths = [manifest.piece_length(i) for i in range(manifest.num_pieces)]
        self.picker = PiecePicker(lengths, block_size=block_size,
                                  have=[i for i, h in enumerate(have) if h], rng=rng)
        self.choker = choker
        self.peers: dict[str, PeerState] = {}
        self.assemblies: dict[int, Assembly] = {}  # pieces being put together
        # pieces we announced and can no longer read (a changed share, a damaged piece):
        # requests for them are answered with Lost
        self.lost: set[int] = set()
        self.lost_by: set[str] = set()  # members that told us they lost pieces they had offered
        self.downloading = False
        self.interest_withdrawn = False  # a download ended unfinished: members told NotInterested
        self.wake = trio.Event()  # set when a waiting download should look again
        self.error: Exception | None = None  # why the download cannot go on
        self.bytes_from: Counter[str] = Counter()
        self.bytes_to: Counter[str] = Counter()
        self.strikes: Counter[str] = Counter()
        # the download's progress callbacks: its own and those of calls that joined it
        self.progress_cbs: list[Callable[[int, int], None]] = []
        self.download_ended = trio.Event()  # replaced at each start, set when it ends
        self.last_progress = float("-inf")
        self.started_at = 0.0
        self.down = RateMeter()
        self.seeding: InitialSeeding | None = None  # an origin's initial seeding

    @property
    def injection(self) -> InitialSeeding | None:
        """The initial seeding while the origin is still injecting pieces, else None."""
        seeding = self.seeding
        return seeding if seeding is not None and not seeding.done else None

    @property
    def complete(self) -> bool:
        return self.picker.complete

    @property
    def active(self) -> bool:
        """A download is running and still misses pieces."""
        return self.downloading and not self.picker.complete

    def poke(self) -> None:
        self.wake.set()

    @property
    def num_pieces(self) -> int:
        return self.manifest.num_pieces

    def done_bytes(self) -> int:
        """Whole pieces held, and the checked blocks of pieces on their way (a slow
        download showed 0 % for as long as a whole piece took: 16 s at 16 KiB/s)."""
        m, have = self.manifest, self.picker.have
        whole = sum(m.piece_length(i) for i, h in enumerate(have) if h)
        return whole + sum(asm.checked_bytes for i, asm in self.assemblies.items() if not have[i])

    def bitfield(self) -> msg.Bitfield:
        have = self.picker.have
        if self.lost:
            have = [h and i not in self.lost for i, h in enumerate(have)]
        return msg.Bitfield(self.key, msg.pack_bits(have))

    def assembly(self, piece: int) -> Assembly:
        """The piece being put together (started on first use)."""
        asm = self.assemblies.get(piece)
        if asm is None:
            roots = self.manifest.block_roots
            asm = self.assemblies[piece] = Assembly.for_piece(
                self.manifest.piece_length(piece), roots[piece] if roots else None)
        return asm

    def holds_leaves(self, piece: int) -> bool:
        """We have ``piece``'s checked leaf hashes: a source need not send them again (in
        the benchmark's ``--quick`` run two thirds of a piece's sources were first asked
        after they had come from another)."""
        asm = self.assemblies.get(piece)
        return asm is not None and asm.leaves is not None

    def block_in_range(self, piece: int, offset: int, length: int) -> bool:
        return (piece < self.num_pieces
                and offset + length <= self.manifest.piece_length(piece))


__all__ = ["Link", "ManifestWanted", "PeerState", "Torrent", "block_updates", "piece_news", "room_victim", "stale_members"]


class ManifestWanted:
    """A manifest the fetches of one rid wait for, and what they share: the manifest
    once a peer sent it, and an event set (then replaced) whenever they should look
    again — it arrived, or a peer came that may have it."""

    __slots__ = ("fetches", "manifest", "woken")

    def __init__(self) -> None:
        self.fetches = 0
        self.manifest: Any = None
        self.woken = trio.Event()

    def wake(self) -> None:
        woken, self.woken = self.woken, trio.Event()
        woken.set()
