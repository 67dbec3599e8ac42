"""The limited-flooding protocol as a sans-IO state machine.

:class:`FloodCore` never touches a socket or a clock: it takes bytes from a peer and
``now`` and answers with the bytes to send to which peers and the changes to the network
file list. The trio glue (``_discovery.py``), the simulator and the unit tests drive it.

Content: each node floods a signed announce of its *complete* share list. The newest
``seq`` of an origin replaces what we knew of it, so an unshare is an announce without
the rid; a record not refreshed within ``entry_expiry`` (the origin left) is dropped.
Duplicates are suppressed by ``seq`` per origin (announces) and by a bounded LRU of query
ids (queries). A TTL bounds how far anything travels.

Search answers are signed too (see :meth:`FloodCore.make_hits`). Why a signature on the
answer rather than checking it against the provider's signed announce: a query reaches
providers whose announces we may not hold (beyond ``ttl`` of announces, not announced
yet, expired, or dropped when ``MAX_ORIGINS`` is full), and attaching the whole announce
(up to 1 MiB) to every answer would cost far more than 96 bytes of key and signature.
Every hop, relays included, verifies before it merges or forwards, so an honest node never
passes a bad answer on and a bad one is always the fault of the peer that sent it: that
peer is dropped, as for a bad announce.
"""

from __future__ import annotations

import heapq
import secrets
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from p2pkit import RemoteProtocolError
from p2pkit.identity import node_id_of

from ._messages import (
    MAX_BODY,
    MAX_DIGEST,
    MAX_ENTRIES,
    MAX_HITS,
    MAX_HITS_BODY,
    MAX_PEERS_LISTED,
    MAX_TTL,
    Announce,
    AnnounceBody,
    Digest,
    Done,
    Entry,
    Held,
    Hits,
    HitsBody,
    PeerInfo,
    PeerList,
    Query,
    decode,
    decode_body,
    decode_hits_body,
    encode,
)
from ._util import SeenCache, TokenBucket, verified

SIGN_CONTEXT = b"p2pkit-flood-announce-v1"
HITS_CONTEXT = b"p2pkit-flood-hits-v1"  # domain separation: an announce signature is no answer
MAX_KNOWN_PEERS = 1024
# Identities are free, so what we hold of other origins is bounded: a hostile neighbour
# signing announces for made-up origins fills these, not our memory.
MAX_ORIGINS = 4096
# Signed announce bodies held, all origins together; decoded, the entries take about three
# times as much again (~64 MiB in all at this bound).
MAX_HELD_BYTES = 16 << 20
# Queries per neighbour whose Hits to it we could not queue (see send_dropped).
MAX_LOST_HITS = 256
DONE_BYTES_MAX = 64  # a Done is ~30 bytes: longer messages are not decoded to check
# What origins first learned through one neighbour may hold: made-up origins signed by
# one hostile peer filled the whole table in ~20 messages, and no new honest node's files
# appeared anywhere after that.
NEIGHBOUR_SHARE = 4  # at most a quarter of MAX_HELD_BYTES and of MAX_ORIGINS
MAX_TOMBSTONES = 4096
BUCKET_KINDS = ("search", "lists")  # a rate bucket per peer for each (see receive)
MAX_RESULTS_PER_QUERY = 1000
# The age a copy claims is not signed, so a relay could make a list look older (it expired
# at once, everywhere past that relay) or a replay look new (a departed node's files came
# back). ``seq`` is signed and is the origin's wall clock in ms when it announced: with
# our wall clock, the age must lie within [W - AGE_BEHIND_S, W + AGE_AHEAD_S], W = our
# time minus seq's. Generous below (an origin whose clock is behind ours must not see its
# lists taken for old), tight above (an origin whose clock is ahead only gets a longer life).
AGE_BEHIND_S = 300.0
AGE_AHEAD_S = 10.0

Send = tuple[str, bytes]  # (peer id, message)


def matches(entry: Entry, text: str) -> bool:
    """Seed 004 ``/api/search``: case-insensitive substring of title, description or name."""
    needle = text.casefold()
    return any(needle in s.casefold() for s in (entry.title, entry.description, entry.name))


def entry_dict(entry: Entry) -> dict[str, Any]:
    return {
        "rid": entry.rid, "name": entry.name, "size": entry.size, "mime": entry.mime,
        "category": entry.category, "title": entry.title, "description": entry.description,
        "duration": entry.duration,
    }


@dataclass(slots=True)  # tens of thousands in a simulation of a few hundred nodes
class OriginRecord:
    """What we know of one other node's shares."""

    origin: str
    seq: int
    entries: dict[str, Entry]
    announce: Announce  # the signed original, forwarded to peers that connect later
    born: float  # when the origin sent it, on our clock (``now - age`` on receipt)
    expires_at: float
    host: str
    port: int
    received: float = 0.0  # when this seq first reached us: no copy of it was born later
    first_seen: float = 0.0  # when we first heard of the origin at all (any seq)
    via: str = ""  # the neighbour we first heard of the origin through


@dataclass
class Output:
    """What the glue must do after a call into the core."""

    sends: list[Send] = field(default_factory=list)
    added: set[str] = field(default_factory=set)  # rids that appeared on the network
    removed: set[str] = field(default_factory=set)  # rids that disappeared
    hits_for: bytes | None = None  # one of our own queries got answers
    # (peer, origins): the lists a new neighbour lacks, to send as the queue to it has
    # room (relayed_copy, one at a time) — a table larger than the queue was cut short
    backfill: tuple[str, list[str]] | None = None


@dataclass
class _OwnQuery:
    text: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # rid -> merged entry
    waiting: set[str] = field(default_factory=set)  # neighbours asked that have not said Done
    answers: int = 0  # hits messages received


class FloodCore:
    def __init__(
        self, node_id: str, public_key: bytes, sign: Callable[[bytes], bytes], *,
        ttl: int = 4, entry_expiry: float = 95.0, query_memory: float = 60.0,
        rate: float = 50.0, burst: float = 500.0, epoch: float | None = None,
    ) -> None:
        """``epoch``: our wall clock minus ``now`` (seconds); with it, the ages copies
        claim are checked against their signed ``seq`` (see AGE_BEHIND_S)."""
        if not 1 <= ttl <= MAX_TTL:
            raise ValueError(f"ttl must be 1..{MAX_TTL}")
        self.node_id = node_id
        self.public_key = public_key
        self._sign = sign
        self.ttl = ttl
        self.entry_expiry = entry_expiry
        self.rate, self.burst = rate, burst
        self.port = 0
        self.local: dict[str, Entry] = {}
        self.local_changed = False  # set_local saw a change not yet announced to all
        self.seq = 0
        self.records: dict[str, OriginRecord] = {}
        self.epoch = epoch
        # kept as records change, not recomputed from all of them at every announce (a
        # full table made each announce cost seconds of CPU)
        self._rid_origins: dict[str, int] = {}  # rid -> how many other origins list it
        # (expires_at, origin) for every record, and stale pairs (a record replaced or
        # its expiry moved) dropped as they come to the top: next_timer, which the glue
        # asks after every message, was a scan of every record (with a few hundred nodes,
        # a fifth of a simulation's CPU time)
        self._deadlines: list[tuple[float, str]] = []
        self._held = 0  # bytes of the signed bodies in ``records``
        self._via_bytes: Counter[str] = Counter()  # the same, per neighbour first heard through
        self._via_count: Counter[str] = Counter()
        # origin -> (last seq, forget at): an expired list must not come back from a peer
        # that still holds a copy (sync would otherwise resurrect it with a fresh expiry).
        self._tombstones: dict[str, tuple[int, float]] = {}
        # origin -> how far its clock is behind ours (s), learned from its own session:
        # the age bound reads seq as the origin's wall clock, and a clock an hour slow
        # made every list of that node stale everywhere (see _bounded_age)
        self._skews: dict[str, float] = {}
        self.known_peers: dict[str, tuple[str, int, float]] = {}  # id -> (host, port, seen)
        self._heard_directly: set[str] = set()  # known_peers whose address came from themselves
        self._seen_queries = SeenCache(4096, query_memory)
        self._reverse: dict[bytes, tuple[str, float]] = {}  # query id -> (came from, when)
        self._relaying: dict[bytes, set[str]] = {}  # query id -> neighbours yet to say Done
        self._own: dict[bytes, _OwnQuery] = {}
        self._buckets: dict[tuple[str, str], TokenBucket] = {}  # (sender, kind of message)
        self._digested: set[str] = set()  # neighbours whose digest this session we answered
        # neighbour -> queries whose Hits to it were dropped (an ordered set, oldest first)
        self._hits_lost: dict[str, dict[bytes, None]] = {}
        self._last_announce: Announce | None = None  # our newest, and when it was made
        self._last_made: float | None = None
        self.query_memory = query_memory
        self.counters = {
            "announces_in": 0, "announces_new": 0, "duplicates": 0, "queries_in": 0,
            "hits_in": 0, "hits_unroutable": 0, "rate_limited": 0, "expired": 0, "stale": 0,
            "truncated": 0, "records_full": 0, "hits_forged": 0, "malformed": 0,
            "synced_lists": 0, "digests_repeated": 0, "done_withheld": 0,
        }

    # ------------------------------------------------------------------ own content

    def set_local(self, entries: Iterable[Entry]) -> bool:
        """Replace our own share list; True if it changed (announce it then)."""
        new = {e.rid: e for e in list(entries)[:MAX_ENTRIES]}
        if new == self.local:
            return False
        self.local = new
        self.local_changed = True
        return True

    def make_announce(self, seq_floor: int = 0) -> Announce:
        """A freshly signed announce of our share list with a new, larger ``seq``.

        ``seq_floor`` (wall-clock milliseconds from the glue) keeps seq growing across
        restarts, so peers do not ignore a restarted node as stale.
        """
        self.seq = max(self.seq + 1, seq_floor)
        self._last_made = None  # the caller that knows the time sets it (announce_to)
        entries = list(self.local.values())
        body = encode(AnnounceBody(seq=self.seq, port=self.port, entries=entries))
        while len(body) > MAX_BODY:  # receivers reject larger bodies: announce what fits
            entries = entries[: len(entries) * 9 // 10]
            body = encode(AnnounceBody(seq=self.seq, port=self.port, entries=entries))
            self.counters["truncated"] += 1
        self._last_announce = Announce(public_key=self.public_key, body=body,
                                       signature=self._sign(SIGN_CONTEXT + body), ttl=self.ttl)
        return self._last_announce

    def announce_to(self, neighbors: Iterable[str], seq_floor: int = 0, now: float | None = None) -> list[Send]:
        """Our announce for every neighbour (this clears ``local_changed``); with ``now``,
        new neighbours get the same one until the next (see :meth:`sync_for`)."""
        self.local_changed = False
        data = encode(self.make_announce(seq_floor))
        self._last_made = now
        return [(peer, data) for peer in neighbors]

    def farewell(self, neighbors: Iterable[str], seq_floor: int = 0) -> list[Send]:
        """Our last announce, as the node stops: an empty list, so every node drops our
        files now instead of an ``entry_expiry`` later (a restart announces a larger seq)."""
        self.set_local([])
        return self.announce_to(neighbors, seq_floor)

    def sync_for(self, peer: str, now: float, seq_floor: int = 0) -> list[Send]:
        """What a newly connected peer gets: our announce and a digest of the lists we
        hold. It sends us its digest too, and each side answers with the lists the other
        lacks or holds older (:meth:`_on_digest`) — every list we held went to every new
        neighbour, most of them lists it held already."""
        self._digested.discard(peer)  # a new session: its digest is answered again
        back = self.records.get(peer)
        if back is not None:  # it is back: what its going away took off its list's life returns
            self._expire_at(back, max(back.expires_at, back.born + self.entry_expiry))
        held = {origin: Held(bytes.fromhex(origin), rec.seq)
                for origin, rec in self.records.items() if rec.expires_at > now}
        for origin, (seq, _) in self._tombstones.items():  # gone: it must not send them back
            if origin not in held or held[origin].seq <= seq:
                held[origin] = Held(bytes.fromhex(origin), seq, gone=True)
        digest = Digest(held=list(held.values())[:MAX_DIGEST])
        return [(peer, self._own_list(now, seq_floor)), (peer, encode(digest))]

    def _own_list(self, now: float, seq_floor: int) -> bytes:
        """Our announce for a new neighbour: the last one, with its age, while our list
        is unchanged — a new one (a new seq) at every connection was flooded on by the
        neighbour to the whole network, both ends' lists at every new session."""
        last, made = self._last_announce, self._last_made
        # (half its life gone: we were alone a while, and it would soon be stale)
        if last is None or made is None or self.local_changed or now - made > self.entry_expiry / 2:
            last, made = self.make_announce(seq_floor), now
            self._last_made = now
        return encode(msgspec.structs.replace(last, age=max(0.0, now - made)))

    def _on_digest(self, sender: str, digest: Digest, now: float, neighbors: Collection[str]) -> Output:
        """The lists ``sender`` lacks or holds older than ours, each with its age, so a
        copy expires when the original would. Once per session: a digest costs its
        sender a few bytes and us every list we hold."""
        if sender in self._digested:
            self.counters["digests_repeated"] += 1
            return Output()
        self._digested.add(sender)
        theirs = {held.origin.hex(): held for held in digest.held}
        out = Output()
        mine = theirs.get(self.node_id)
        if mine is not None and mine.gone and mine.seq >= self.seq:
            # it let our list expire (we were away): so did others, most likely, and our
            # list under this seq is refused now — a new one, for everyone
            floor = int((self.epoch + now) * 1000) if self.epoch is not None else 0
            out.sends = self.announce_to(neighbors, floor, now)
        lacking = [rec.origin for rec in self.records.values()
                   if rec.origin != sender and rec.expires_at > now
                   and (rec.origin not in theirs or theirs[rec.origin].seq < rec.seq)]
        if lacking:
            out.backfill = (sender, lacking)
        self.counters["synced_lists"] += len(lacking)
        return out

    def relayed_copy(self, origin: str, now: float) -> bytes | None:
        """The list we hold of ``origin`` as a neighbour gets it (its age with it, so a
        copy expires when the original would), or None if we no longer hold it."""
        rec = self.records.get(origin)
        if rec is None or rec.expires_at <= now:
            return None
        relayed = msgspec.structs.replace(
            rec.announce, ttl=max(1, self.ttl - 1), age=max(0.0, now - rec.born))
        return encode(relayed)

    # ------------------------------------------------------------------ receiving

    def receive(self, sender: str, sender_host: str, data: bytes, now: float,
                neighbors: Collection[str]) -> Output:
        """Handle one message from ``sender``. RemoteProtocolError if it is malformed."""
        try:
            message = decode(data)
        except RemoteProtocolError:
            self.counters["malformed"] += 1  # a missing field (signature...) lands here too
            raise
        # searches and lists draw on buckets of their own: queries that others relayed
        # through a neighbour used up its one bucket, and its relayed announces went too
        if isinstance(message, Done):  # no state to make and a lookup: not worth a token
            return self._on_done(sender, message)  # (it doubled the searches' messages)
        kind = BUCKET_KINDS[0] if isinstance(message, Query | Hits) else BUCKET_KINDS[1]
        bucket = self._buckets.get((sender, kind))
        if bucket is None:
            bucket = self._buckets[sender, kind] = TokenBucket(self.rate, self.burst, now)
        if not bucket.take(now):
            self.counters["rate_limited"] += 1
            return Output()
        if isinstance(message, Announce):
            return self._on_announce(sender, sender_host, message, now, neighbors)
        if isinstance(message, Query):
            return self._on_query(sender, message, now, neighbors)
        if isinstance(message, Hits):
            return self._on_hits(sender, message, now)
        if isinstance(message, Digest):
            return self._on_digest(sender, message, now, neighbors)
        self._on_peer_list(message, now)
        return Output()

    def _on_announce(self, sender: str, sender_host: str, ann: Announce, now: float,
                     neighbors: Collection[str]) -> Output:
        self.counters["announces_in"] += 1
        body = decode_body(ann.body)
        origin = node_id_of(ann.public_key)
        known = self.records.get(origin)
        buried = self._tombstones.get(origin)
        direct = sender == origin and self.epoch is not None
        # its own session: the list is fresh whatever its clock says (kept once verified)
        if direct:
            skew = self._since(body.seq, now) - ann.age
        else:  # (the median only when needed: it was taken for every announce relayed)
            learned = self._skews.get(origin)
            skew = self._usual_skew(neighbors) if learned is None else learned
        age = self._bounded_age(ann.age, body.seq, now, skew)
        if known is not None and body.seq == known.seq and origin != self.node_id:
            self._younger_copy(known, ann, now - age)
            self.counters["duplicates"] += 1
            return Output()
        if (origin == self.node_id or (known is not None and body.seq <= known.seq)
                or (buried is not None and body.seq <= buried[0])):
            self.counters["duplicates"] += 1
            return Output()
        born = now - age
        if born + self.entry_expiry <= now:
            self.counters["stale"] += 1  # a copy older than its lifetime
            return Output()
        if not self._has_room(origin, known, len(ann.body), sender):
            self.counters["records_full"] += 1  # neither kept nor relayed
            return Output()
        if not verified.verify(ann.public_key, ann.signature, SIGN_CONTEXT + ann.body):
            raise RemoteProtocolError("announce signature does not verify")
        if direct:
            self._learn_skew(origin, skew)
        self.counters["announces_new"] += 1
        host = sender_host if sender == origin else ann.host
        stored = msgspec.structs.replace(ann, host=host, age=0.0)
        self._tombstones.pop(origin, None)
        out = self._replace(origin, OriginRecord(
            origin=origin, seq=body.seq, entries={e.rid: e for e in body.entries},
            announce=stored, born=born, expires_at=born + self.entry_expiry, host=host,
            port=body.port, received=now,
            first_seen=known.first_seen if known is not None else now,
            via=known.via if known is not None else sender,
        ))
        if host and body.port:
            self.learn_peer(origin, host, body.port, now, directly=sender == origin)
        # never further than our own ttl: a peer's ttl of 16 carried its floods past it
        ttl = min(ann.ttl, self.ttl)
        if ttl > 1:
            data = encode(msgspec.structs.replace(stored, ttl=ttl - 1, age=age))
            out.sends = [(p, data) for p in neighbors if p not in (sender, origin)]
        return out

    def _since(self, seq: int, now: float) -> float:
        """Seconds from ``seq`` (the origin's wall clock in ms) to our wall clock now."""
        return now + (self.epoch or 0.0) - seq / 1000

    def _bounded_age(self, age: float, seq: int, now: float, skew: float) -> float:
        """The age a copy claims, within what its signed ``seq`` allows (AGE_BEHIND_S),
        read on the origin's clock when it is behind ours by ``skew`` seconds. Only a
        clock behind counts: one ahead makes lists look young, which costs nothing, while
        an offset learned when a fast clock was later corrected made every later list of
        that node look an hour old, for as long as the offset was remembered."""
        if self.epoch is None:
            return age
        since = self._since(seq, now) - max(skew, 0.0)
        return min(max(age, since - AGE_BEHIND_S, 0.0), max(since + AGE_AHEAD_S, 0.0))

    def _usual_skew(self, neighbors: Collection[str]) -> float:
        """For an origin we never heard from directly: the median offset of our
        neighbours. Ours is the clock that is wrong when most of theirs disagree with it
        alike (a node an hour fast took every relayed list for an hour old)."""
        known = sorted(self._skews[n] for n in neighbors if n in self._skews)
        return known[len(known) // 2] if known else 0.0

    def clock_offset(self, neighbors: Collection[str]) -> float | None:
        """How far our wall clock seems ahead of our neighbours' (s; negative: behind),
        the median over those whose own announces told us; None below three of them."""
        if sum(1 for n in neighbors if n in self._skews) < 3:
            return None
        return self._usual_skew(neighbors)

    def _learn_skew(self, origin: str, skew: float) -> None:
        self._skews.pop(origin, None)  # kept in order of last hearing: the oldest goes first
        self._skews[origin] = skew
        if len(self._skews) > MAX_ORIGINS:
            del self._skews[next(iter(self._skews))]

    def _younger_copy(self, known: OriginRecord, ann: Announce, born: float) -> None:
        """Another copy of the list we hold, claiming to be younger: the honest path's
        copy gives back the life a relay's older claim took. Only the very same signed
        bytes count, and no copy was born after this seq first reached us."""
        born = min(born, known.received)
        if (born > known.born and ann.body == known.announce.body
                and ann.signature == known.announce.signature):
            known.born = born
            self._expire_at(known, max(known.expires_at, born + self.entry_expiry))

    def _has_room(self, origin: str, known: OriginRecord | None, size: int, sender: str) -> bool:
        """Whether an announce of ``size`` bytes fits beside what we hold (an origin we
        know replaces its old list; a new one also needs a free slot), and within the
        share of the neighbour we first heard of the origin through (a neighbour's own
        list always counts as its share's first)."""
        via = known.via if known is not None else sender
        old = len(known.announce.body) if known is not None else 0
        if self._held - old + size > MAX_HELD_BYTES:
            return False
        if known is None and len(self.records) >= MAX_ORIGINS:
            return False
        if via == origin:
            return True
        return (self._via_bytes[via] - old + size <= MAX_HELD_BYTES // NEIGHBOUR_SHARE
                and (known is not None or self._via_count[via] < MAX_ORIGINS // NEIGHBOUR_SHARE))

    def _replace(self, origin: str, record: OriginRecord | None) -> Output:
        """Put ``record`` in place of what we held of ``origin`` (None: drop it), keeping
        the rid counts and the held bytes; the rids that appeared or left the network."""
        out = Output()
        old = self.records.pop(origin, None)
        old_rids = old.entries.keys() if old is not None else set()
        new_rids = record.entries.keys() if record is not None else set()
        if old is not None:
            self._held -= len(old.announce.body)
            self._via_bytes[old.via] -= len(old.announce.body)
            self._via_count[old.via] -= 1
            if not self._via_count[old.via]:
                del self._via_count[old.via], self._via_bytes[old.via]
        if record is not None:
            self.records[origin] = record
            self._push_deadline(record)
            self._held += len(record.announce.body)
            self._via_bytes[record.via] += len(record.announce.body)
            self._via_count[record.via] += 1
        for rid in old_rids - new_rids:
            left = self._rid_origins[rid] - 1
            if left:
                self._rid_origins[rid] = left
            else:
                del self._rid_origins[rid]
                out.removed.add(rid)
        for rid in new_rids - old_rids:
            count = self._rid_origins.get(rid, 0)
            self._rid_origins[rid] = count + 1
            if not count:
                out.added.add(rid)
        return out

    def _on_query(self, sender: str, query: Query, now: float,
                  neighbors: Collection[str]) -> Output:
        self.counters["queries_in"] += 1
        if not self._seen_queries.add(query.qid, now):
            self.counters["duplicates"] += 1
            return Output(sends=[(sender, encode(Done(qid=query.qid)))])  # no further through us
        self._forget_routes(now)
        self._reverse[query.qid] = (sender, now)
        out = Output()
        found = [e for e in self.local.values() if matches(e, query.text)]
        if found:
            out.sends.append((sender, encode(self.make_hits(query.qid, found))))
        ttl = min(query.ttl, self.ttl)  # never further than our own ttl
        onward = [p for p in neighbors if p != sender] if ttl > 1 else []
        if onward:
            data = encode(msgspec.structs.replace(query, ttl=ttl - 1))
            out.sends.extend((p, data) for p in onward)
            self._relaying[query.qid] = set(onward)
        else:  # after our answer: the asker has it when it hears Done
            out.sends.append((sender, encode(Done(qid=query.qid))))
        return out

    def _on_done(self, sender: str, done: Done) -> Output:
        """A neighbour's part of a flood is over: ours is when every neighbour we sent
        the query on to has said so. Answers from there came before it, on the same
        ordered session, and went on before our Done."""
        qid = done.qid
        own = self._own.get(qid)
        if own is not None:
            own.waiting.discard(sender)
            return Output(hits_for=qid)
        waiting = self._relaying.get(qid)
        if waiting is None or sender not in waiting:
            return Output()  # late, repeated, or for a query that was not ours to wait on
        waiting.discard(sender)
        route = self._reverse.get(qid)
        if waiting or route is None:
            return Output()
        del self._relaying[qid]
        return Output(sends=[(route[0], encode(Done(qid=qid)))])

    def send_dropped(self, peer: str, data: bytes) -> None:
        """The glue could not queue ``data`` to ``peer`` (its queue was full). If that was
        a Hits, the Done for its query must not follow it: the asker would take the flood
        as over without that answer. Withheld, it ends on ``search_idle`` or the timeout,
        as it did before Done."""
        try:
            message = decode(data)
        except RemoteProtocolError:
            return
        if isinstance(message, Hits):
            lost = self._hits_lost.setdefault(peer, {})
            lost[message.qid] = None
            if len(lost) > MAX_LOST_HITS:
                del lost[next(iter(lost))]

    def withheld(self, peer: str, data: bytes) -> bool:
        """Whether ``data`` is a Done to ``peer`` for a query whose Hits to it was
        dropped (see :meth:`send_dropped`): the glue does not send it."""
        lost = self._hits_lost.get(peer)
        if not lost or len(data) > DONE_BYTES_MAX:
            return False
        try:
            message = decode(data)
        except RemoteProtocolError:
            return False
        if not isinstance(message, Done) or message.qid not in lost:
            return False
        self.counters["done_withheld"] += 1
        return True

    def query_complete(self, qid: bytes) -> bool:
        """Whether every neighbour asked has said Done: all answers are in."""
        own = self._own.get(qid)
        return own is not None and not own.waiting

    def query_answered(self, qid: bytes) -> bool:
        own = self._own.get(qid)
        return own is not None and own.answers > 0

    def make_hits(self, qid: bytes, entries: Iterable[Entry]) -> Hits:
        """Our signed answer to query ``qid``: the signature covers ``HITS_CONTEXT`` and
        the body bytes, which encode ``qid``, our node id and the entries."""
        found = list(entries)[:MAX_HITS]
        body = encode(HitsBody(qid=qid, provider=self.node_id, entries=found))
        while len(body) > MAX_HITS_BODY:  # receivers reject larger bodies: answer what fits
            found = found[: len(found) * 9 // 10]
            body = encode(HitsBody(qid=qid, provider=self.node_id, entries=found))
            self.counters["truncated"] += 1
        return Hits(qid=qid, provider=self.node_id, public_key=self.public_key, body=body,
                    signature=self._sign(HITS_CONTEXT + body))

    def _on_hits(self, sender: str, hits: Hits, now: float) -> Output:
        self.counters["hits_in"] += 1
        own = self._own.get(hits.qid)
        route = self._reverse.get(hits.qid)
        if own is None and (route is None or now - route[1] > self.query_memory):
            self.counters["hits_unroutable"] += 1  # dropped before spending a verification
            return Output()
        body = self._verified(hits)
        if own is not None:
            own.answers += 1
            for entry in body.entries:
                if matches(entry, own.text) and len(own.results) < MAX_RESULTS_PER_QUERY:
                    _merge(own.results, entry, [body.provider], local=False)
            return Output(hits_for=hits.qid)
        assert route is not None
        return Output(sends=[(route[0], encode(hits))])  # unchanged: the signature travels

    def _verified(self, hits: Hits) -> HitsBody:
        """The signed body of ``hits``; counts ``hits_forged`` and raises
        RemoteProtocolError (the sender is dropped) unless the provider's key hashes to
        the claimed provider id, the signature verifies, and the signed qid and provider
        are the ones the message claims."""
        if node_id_of(hits.public_key) != hits.provider:
            reason = "provider id is not the node id of the key"
        elif not verified.verify(hits.public_key, hits.signature, HITS_CONTEXT + hits.body):
            reason = "signature does not verify"
        else:
            try:
                body = decode_hits_body(hits.body)
            except RemoteProtocolError as exc:
                reason = str(exc)
            else:
                if body.qid == hits.qid and body.provider == hits.provider:
                    return body
                reason = "signed for another query or provider"
        self.counters["hits_forged"] += 1
        raise RemoteProtocolError(f"hits from {hits.provider[:12]}: {reason}")

    def _on_peer_list(self, message: PeerList, now: float) -> None:
        for info in message.peers:
            if info.id != self.node_id:
                self.learn_peer(info.id, info.host, info.port, now)

    # ------------------------------------------------------------------ searching

    def start_query(self, text: str, now: float, neighbors: Iterable[str]) -> tuple[bytes, list[Send]]:
        """Flood a query; answers collect in :meth:`query_results` until :meth:`finish_query`."""
        qid = secrets.token_bytes(16)
        self._seen_queries.add(qid, now)
        own = self._own[qid] = _OwnQuery(text=text)
        known = self.matching_rids(text)
        for view in self.network_files():  # what we already know answers at once
            if view["rid"] in known:
                entry = Entry(**{k: view[k] for k in ("rid", "name", "size", "mime", "category",
                                                     "title", "description", "duration")})
                _merge(own.results, entry, view["providers"], local=view["local"])
        data = encode(Query(qid=qid, ttl=self.ttl, text=text))
        sends = [(peer, data) for peer in neighbors]
        own.waiting = {peer for peer, _ in sends}
        return qid, sends

    def query_results(self, qid: bytes) -> list[dict[str, Any]]:
        own = self._own.get(qid)
        return [] if own is None else _finished(own.results.values())

    def finish_query(self, qid: bytes) -> list[dict[str, Any]]:
        results = self.query_results(qid)
        self._own.pop(qid, None)
        return results

    # ------------------------------------------------------------------ peers

    def peer_list(self, connected: Iterable[tuple[str, str, int]]) -> bytes:
        peers = [PeerInfo(id=i, host=h, port=p) for i, h, p in connected if p > 0]
        return encode(PeerList(peers=peers[:MAX_PEERS_LISTED]))

    def peer_down(self, peer: str, now: float, grace: float) -> None:
        """A neighbour left: its shares go after ``grace`` unless it re-announces
        (through another path) before then. The floods waiting for its Done go on
        waiting: answers from past it are routed by its id and come over its next
        session if it is back soon (taken as Done, a flap ended searches without them);
        if it is not, the search ends as it did before Done (``search_idle``, timeout)."""
        for kind in BUCKET_KINDS:
            self._buckets.pop((peer, kind), None)
        self._digested.discard(peer)
        self._hits_lost.pop(peer, None)
        rec = self.records.get(peer)
        if rec is not None:
            self._expire_at(rec, min(rec.expires_at, now + grace))

    def address_of(self, peer: str) -> tuple[str, int] | None:
        known = self.known_peers.get(peer)
        return None if known is None else (known[0], known[1])

    def forget_peer(self, peer: str) -> None:
        self.known_peers.pop(peer, None)
        self._heard_directly.discard(peer)

    def learn_peer(self, peer: str, host: str, port: int, now: float, *,
                   directly: bool = False) -> None:
        """Remember ``peer``'s listen address; past MAX_KNOWN_PEERS the one heard of
        longest ago is forgotten (the dict is kept in order of last hearing). An address
        told by others (a peer list, a relay's host hint) never replaces one the peer's
        own session gave: one PeerList re-pointed where others dialled an honest node."""
        if not directly and peer in self._heard_directly and peer in self.known_peers:
            return
        self.known_peers.pop(peer, None)
        self.known_peers[peer] = (host, port, now)
        if directly:
            self._heard_directly.add(peer)
        else:
            self._heard_directly.discard(peer)
        if len(self.known_peers) > MAX_KNOWN_PEERS:
            forgotten = next(iter(self.known_peers))
            del self.known_peers[forgotten]
            self._heard_directly.discard(forgotten)

    # ------------------------------------------------------------------ time

    def expire(self, now: float) -> Output:
        """Drop records of origins not heard of in time, and stale query routes."""
        self._forget_routes(now)
        self._tombstones = {o: t for o, t in self._tombstones.items() if t[1] > now}
        dead = [o for o, rec in self.records.items() if rec.expires_at <= now]
        out = Output()
        for origin in dead:
            seq = self.records[origin].seq
            gone = self._replace(origin, None)
            out.removed |= gone.removed
            # kept until a replay of that seq would be refused as stale by its age alone
            self._tombstones[origin] = (seq, now + 2 * self.entry_expiry + AGE_BEHIND_S)
            self.counters["expired"] += 1
        while len(self._tombstones) > MAX_TOMBSTONES:
            del self._tombstones[next(iter(self._tombstones))]
        return out

    def next_timer(self) -> float | None:
        """When the first record expires (None: we hold none)."""
        deadlines, records = self._deadlines, self.records
        while deadlines:
            at, origin = deadlines[0]
            rec = records.get(origin)
            if rec is not None and rec.expires_at == at:
                return at
            heapq.heappop(deadlines)  # that record was replaced, dropped, or moved
        return None

    def _expire_at(self, rec: OriginRecord, when: float) -> None:
        if when != rec.expires_at:
            rec.expires_at = when
            self._push_deadline(rec)

    def _push_deadline(self, rec: OriginRecord) -> None:
        deadlines = self._deadlines
        if len(deadlines) > len(self.records) + 64:  # stale pairs not on top (memory)
            deadlines[:] = [(r.expires_at, o) for o, r in self.records.items()]
            heapq.heapify(deadlines)
        else:
            heapq.heappush(deadlines, (rec.expires_at, rec.origin))

    def _forget_routes(self, now: float) -> None:
        if len(self._reverse) > 2 * len(self._seen_queries) + 64:
            limit = now - self.query_memory
            self._reverse = {q: r for q, r in self._reverse.items() if r[1] >= limit}
            self._relaying = {q: w for q, w in self._relaying.items() if q in self._reverse}

    # ------------------------------------------------------------------ views

    def name_of(self, rid: str) -> str:
        """The file name the network gives ``rid`` ("" if none)."""
        entry = self.local.get(rid) or next(
            (rec.entries[rid] for rec in self.records.values() if rid in rec.entries), None)
        return entry.name if entry is not None else ""

    def providers(self, rid: str) -> list[str]:
        """Other nodes whose current announce lists ``rid``."""
        return sorted(o for o, rec in self.records.items() if rid in rec.entries)

    def network_files(self) -> list[dict[str, Any]]:
        """Every file the network offers, ours included, merged by rid. Where providers
        describe a rid differently, ours wins, else the description most of them give,
        else the one of the provider we heard of first — never the smallest node id
        (ids can be ground: a made-up node renamed an honest file in every list)."""
        merged: dict[str, dict[str, Any]] = {}
        for entry in self.local.values():
            _merge(merged, entry, [self.node_id], local=True)
        votes: dict[str, dict[Entry, tuple[int, float]]] = {}  # rid -> entry -> (count, first heard)
        providers: dict[str, list[str]] = {}
        for origin, rec in self.records.items():
            for entry in rec.entries.values():
                count, first = votes.setdefault(entry.rid, {}).get(entry, (0, rec.first_seen))
                votes[entry.rid][entry] = (count + 1, min(first, rec.first_seen))
                providers.setdefault(entry.rid, []).append(origin)
        for rid, described in votes.items():
            best = max(described, key=lambda e: (described[e][0], -described[e][1]))
            _merge(merged, best, providers[rid], local=False)
        return _finished(merged.values())

    def matching_rids(self, text: str) -> set[str]:
        """Rids whose description by any provider (or ours) matches ``text``: a search
        finds a file by what its honest provider says, whoever renamed it."""
        found = {e.rid for e in self.local.values() if matches(e, text)}
        for rec in self.records.values():
            found.update(e.rid for e in rec.entries.values() if matches(e, text))
        return found


def _merge(into: dict[str, dict[str, Any]], entry: Entry, providers: Iterable[str], *,
           local: bool) -> None:
    """Add ``entry`` to a rid-keyed view: the first description wins, providers unite."""
    view = into.get(entry.rid)
    if view is None:
        view = into[entry.rid] = {**entry_dict(entry), "providers": set(), "local": False}
    view["providers"].update(providers)
    view["local"] = view["local"] or local


def _finished(views: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [{**v, "providers": sorted(v["providers"])} for v in views]
    out.sort(key=lambda v: (v["title"] or v["name"]).casefold())
    return out
