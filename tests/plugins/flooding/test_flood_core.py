"""The flooding core without I/O: cores wired by a synchronous in-memory delivery loop."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable

import msgspec
import pytest
from p2pkit.plugins.flooding import Entry, FloodCore, Output, entry_from_item
from p2pkit.plugins.flooding._core import AGE_AHEAD_S, HITS_CONTEXT
from p2pkit.plugins.flooding._messages import (
    MAX_HITS_BODY,
    Announce,
    Digest,
    Done,
    Hits,
    HitsBody,
    PeerInfo,
    PeerList,
    Query,
    decode,
    decode_hits_body,
    encode,
)
from p2pkit.plugins.flooding._util import SeenCache, TokenBucket

from p2pkit import Identity, RemoteProtocolError


def rid_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def entry(name: str, **kw: object) -> Entry:
    return Entry(rid=rid_of(name), name=name, size=1000, mime="video/mp4", category="video",
                 title=kw.pop("title", name.rsplit(".", 1)[0]), **kw)  # type: ignore[arg-type]


class Net:
    """Cores connected by links; ``run`` delivers every queued message until quiet."""

    def __init__(self, n: int, *, ttl: int = 4, expiry: float = 90.0) -> None:
        self.ids: list[str] = []
        self.cores: dict[str, FloodCore] = {}
        for i in range(n):
            ident = Identity.from_seed(bytes([i + 1]) * 32)
            core = FloodCore(ident.node_id, ident.public_key, ident.sign, ttl=ttl, entry_expiry=expiry)
            core.port = 7000 + i
            self.ids.append(ident.node_id)
            self.cores[ident.node_id] = core
        self.links: dict[str, set[str]] = {i: set() for i in self.ids}
        self.queue: deque[tuple[str, str, bytes]] = deque()
        self.delivered = 0
        self.trace: list[tuple[str, str, bytes]] = []  # every delivery, in order
        self.events: dict[str, Output] = {i: Output() for i in self.ids}
        self.now = 0.0

    def core(self, index: int) -> FloodCore:
        return self.cores[self.ids[index]]

    def link(self, a: int, b: int) -> None:
        self.links[self.ids[a]].add(self.ids[b])
        self.links[self.ids[b]].add(self.ids[a])

    def connect(self, a: int, b: int) -> None:
        """A new session: linked, and each side syncs the other (as the glue does)."""
        self.link(a, b)
        self.post(self.ids[a], self.core(a).sync_for(self.ids[b], self.now))
        self.post(self.ids[b], self.core(b).sync_for(self.ids[a], self.now))
        self.run()

    def line(self) -> None:
        for i in range(len(self.ids) - 1):
            self.link(i, i + 1)

    def post(self, sender: str, sends: list[tuple[str, bytes]]) -> None:
        for to, data in sends:
            assert to in self.links[sender], "a core sent to a peer it is not connected to"
            self.queue.append((sender, to, data))

    def share(self, index: int, *entries: Entry) -> None:
        node = self.ids[index]
        core = self.cores[node]
        core.set_local(entries)
        self.post(node, core.announce_to(self.links[node], now=self.now))
        self.run()

    def run(self) -> None:
        while self.queue:
            sender, to, data = self.queue.popleft()
            self.delivered += 1
            self.trace.append((sender, to, data))
            out = self.cores[to].receive(sender, "10.0.0.1", data, self.now, self.links[to])
            seen = self.events[to]
            seen.added |= out.added
            seen.removed |= out.removed
            self.post(to, out.sends)
            if out.backfill is not None:  # as the glue does, when the queue has room
                peer, origins = out.backfill
                copies = [self.cores[to].relayed_copy(o, self.now) for o in origins]
                self.post(to, [(peer, copy) for copy in copies if copy is not None])

    def rids(self, index: int) -> set[str]:
        return {f["rid"] for f in self.core(index).network_files()}


def test_share_is_visible_across_a_line_and_unshare_propagates() -> None:
    net = Net(3)
    net.line()
    video = entry("holiday.mp4", description="Beach at sunset")
    net.share(0, video)
    (seen,) = net.core(2).network_files()
    assert seen["rid"] == video.rid and seen["providers"] == [net.ids[0]] and not seen["local"]
    assert seen["description"] == "Beach at sunset"
    assert net.events[net.ids[2]].added == {video.rid}
    net.share(0)  # unshared: the new list is empty
    assert net.core(2).network_files() == []
    assert net.events[net.ids[2]].removed == {video.rid}


def test_own_shares_are_listed_as_local() -> None:
    net = Net(1)
    net.core(0).set_local([entry("a.mp3")])
    (mine,) = net.core(0).network_files()
    assert mine["local"] and mine["providers"] == [net.ids[0]]


def test_ttl_limits_how_far_an_announce_travels() -> None:
    net = Net(5, ttl=2)
    net.line()
    net.share(0, entry("x.mp4"))
    assert [bool(net.rids(i)) for i in range(1, 5)] == [True, True, False, False]


def test_duplicates_are_suppressed_in_a_full_mesh() -> None:
    n = 6
    net = Net(n, ttl=8)
    for a in range(n):
        for b in range(a + 1, n):
            net.link(a, b)
    net.share(0, entry("x.mp4"))
    assert all(net.rids(i) for i in range(1, n))
    # Each of the n-1 receivers forwards a new announce once, to everyone but the sender
    # and the origin; everything beyond the first copy is dropped as a duplicate.
    assert net.delivered == (n - 1) + (n - 1) * (n - 2)
    assert sum(net.core(i).counters["announces_new"] for i in range(n)) == n - 1
    assert sum(net.core(i).counters["duplicates"] for i in range(n)) == (n - 1) * (n - 2)


def test_a_replayed_or_older_announce_changes_nothing() -> None:
    net = Net(2)
    net.link(0, 1)
    a, b = net.core(0), net.core(1)
    a.set_local([entry("new.mp4")])
    old = encode(a.make_announce())
    a.set_local([entry("newer.mp4")])
    new = encode(a.make_announce())
    b.receive(net.ids[0], "10.0.0.9", new, 0.0, [])
    out = b.receive(net.ids[0], "10.0.0.9", old, 0.0, [])
    assert not out.sends and not out.added
    assert net.rids(1) == {rid_of("newer.mp4")}
    assert b.counters["duplicates"] == 1


def test_a_forged_or_altered_announce_is_a_remote_error() -> None:
    net = Net(2)
    a, b = net.core(0), net.core(1)
    a.set_local([entry("x.mp4")])
    ann = a.make_announce()
    body = msgspec.msgpack.decode(ann.body)
    body["entries"][0]["name"] = "evil.exe"
    altered = msgspec.structs.replace(ann, body=msgspec.msgpack.encode(body))
    with pytest.raises(RemoteProtocolError, match="signature"):
        b.receive(net.ids[0], "10.0.0.9", encode(altered), 0.0, [])
    other = Identity.from_seed(b"\x09" * 32)
    impostor = msgspec.structs.replace(ann, public_key=other.public_key)
    with pytest.raises(RemoteProtocolError, match="signature"):
        b.receive(net.ids[0], "10.0.0.9", encode(impostor), 0.0, [])
    assert b.network_files() == []


def test_the_first_hop_fills_in_the_origin_host_for_later_hops() -> None:
    net = Net(3)
    net.line()
    net.share(0, entry("x.mp4"))
    assert net.core(1).address_of(net.ids[0]) == ("10.0.0.1", 7000)
    assert net.core(2).records[net.ids[0]].host == "10.0.0.1"


def test_entries_of_a_silent_origin_expire() -> None:
    net = Net(3, expiry=90.0)
    net.line()
    video = entry("x.mp4")
    net.share(0, video)
    c = net.core(2)
    assert c.next_timer() == 90.0
    assert not c.expire(89.0).removed
    out = c.expire(90.0)
    assert out.removed == {video.rid} and c.network_files() == []
    assert c.next_timer() is None and c.counters["expired"] == 1


def test_a_periodic_reannounce_keeps_entries_alive() -> None:
    net = Net(2, expiry=90.0)
    net.link(0, 1)
    net.share(0, entry("x.mp4"))
    net.now = 80.0
    net.share(0, entry("x.mp4"))  # same list, new seq: refreshes the record
    assert not net.core(1).expire(100.0).removed
    assert net.core(1).next_timer() == 170.0


def test_a_neighbour_that_goes_down_expires_after_the_grace_period() -> None:
    net = Net(2, expiry=90.0)
    net.link(0, 1)
    net.share(0, entry("x.mp4"))
    b = net.core(1)
    b.peer_down(net.ids[0], now=5.0, grace=10.0)
    assert b.next_timer() == 15.0
    assert b.expire(15.0).removed == {rid_of("x.mp4")}


def test_a_late_joiner_gets_the_list_by_sync() -> None:
    net = Net(3)
    net.link(0, 1)
    net.share(0, entry("x.mp4"))
    net.connect(1, 2)  # node 2 connects to node 1 afterwards
    assert net.rids(2) == {rid_of("x.mp4")}
    assert net.core(2).providers(rid_of("x.mp4")) == [net.ids[0]]


def test_the_same_file_from_two_providers_is_one_row_with_both() -> None:
    net = Net(3)
    net.line()
    video = entry("x.mp4")
    net.share(0, video)
    net.share(2, video)
    (row,) = net.core(1).network_files()
    assert row["providers"] == sorted([net.ids[0], net.ids[2]])


def test_search_is_flooded_and_answers_come_back_along_the_reverse_path() -> None:
    net = Net(4)
    net.line()  # 0 - 1 - 2 - 3
    cat = entry("cat.mp4", title="Funny Cat", description="a kitten plays")
    dog = entry("dog.mp4", title="Dog", description="Cats are not here")
    bird = entry("bird.png", title="Bird")
    for index, shared in ((0, cat), (1, dog), (3, bird)):
        net.cores[net.ids[index]].set_local([shared])  # not announced: only the query finds them
    d = net.core(3)
    qid, sends = d.start_query("CAT", 0.0, net.links[net.ids[3]])
    net.post(net.ids[3], sends)
    net.run()
    results = d.finish_query(qid)
    assert {r["rid"] for r in results} == {cat.rid, dog.rid}  # title, description, any case
    by_rid = {r["rid"]: r for r in results}
    assert by_rid[cat.rid]["providers"] == [net.ids[0]]
    assert not by_rid[cat.rid]["local"]
    assert net.core(1).counters["hits_in"] == 1  # node 1 relayed node 0's hits


def test_search_includes_local_and_already_known_matches_and_merges_providers() -> None:
    net = Net(3)
    net.line()
    song = entry("song.mp3", title="Song")
    net.share(0, song)  # announced: node 2 already knows it
    net.core(2).set_local([song])
    qid, sends = net.core(2).start_query("song", 0.0, net.links[net.ids[2]])
    net.post(net.ids[2], sends)
    net.run()
    (row,) = net.core(2).finish_query(qid)
    assert row["providers"] == sorted([net.ids[0], net.ids[2]]) and row["local"]


def test_a_duplicate_query_is_answered_once() -> None:
    net = Net(3)
    for a, b in ((0, 1), (1, 2), (0, 2)):  # triangle: node 2 gets the query twice
        net.link(a, b)
    net.core(2).set_local([entry("x.mp4")])
    qid, sends = net.core(0).start_query("x", 0.0, net.links[net.ids[0]])
    net.post(net.ids[0], sends)
    net.run()
    assert len(net.core(0).finish_query(qid)) == 1
    assert net.core(2).counters["queries_in"] == 2 and net.core(2).counters["duplicates"] == 1


def test_hits_nobody_asked_for_are_dropped() -> None:
    net = Net(2)
    stray = net.core(0).make_hits(b"q" * 16, [entry("x.mp4")])
    out = net.core(1).receive(net.ids[0], "10.0.0.9", encode(stray), 0.0, [net.ids[0]])
    assert not out.sends and out.hits_for is None
    assert net.core(1).counters["hits_unroutable"] == 1
    # a forged one nobody asked for is dropped the same way, before any verification
    forged = msgspec.structs.replace(stray, signature=b"\0" * 64)
    net.core(1).receive(net.ids[0], "10.0.0.9", encode(forged), 0.0, [net.ids[0]])
    assert net.core(1).counters["hits_unroutable"] == 2
    assert net.core(1).counters["hits_forged"] == 0


def test_a_flooding_peer_is_rate_limited() -> None:
    ident = Identity.from_seed(b"\x01" * 32)
    core = FloodCore(ident.node_id, ident.public_key, ident.sign, rate=10.0, burst=5.0)
    message = encode(PeerList(peers=[]))
    for _ in range(8):
        core.receive("p" * 64, "10.0.0.9", message, 0.0, [])
    assert core.counters["rate_limited"] == 3
    core.receive("p" * 64, "10.0.0.9", message, 0.5, [])  # tokens refill with time
    assert core.counters["rate_limited"] == 3


def test_peer_lists_teach_addresses_but_not_our_own() -> None:
    net = Net(2)
    b = net.core(1)
    listed = PeerList(peers=[PeerInfo(id=net.ids[0], host="10.0.0.5", port=7001),
                             PeerInfo(id=net.ids[1], host="10.0.0.6", port=7002)])
    b.receive(net.ids[0], "10.0.0.9", encode(listed), 0.0, [])
    assert b.known_peers == {net.ids[0]: ("10.0.0.5", 7001, 0.0)}
    assert decode(b.peer_list([(net.ids[0], "10.0.0.5", 7001), ("f" * 64, "h", 0)])) == PeerList(
        peers=[PeerInfo(id=net.ids[0], host="10.0.0.5", port=7001)])


def test_an_address_told_by_others_never_replaces_the_one_a_peer_gave_itself() -> None:
    """One PeerList re-pointed the address others dial for an honest node."""
    net = Net(2)
    net.link(0, 1)
    net.share(0, entry("x.mp4"))  # node 1 learns node 0's address from its own announce
    b = net.core(1)
    own = b.address_of(net.ids[0])
    assert own == ("10.0.0.1", 7000)
    lie = PeerList(peers=[PeerInfo(id=net.ids[0], host="192.0.2.7", port=9)])
    b.receive("f" * 64, "10.0.0.9", encode(lie), 1.0, [])
    assert b.address_of(net.ids[0]) == own
    b.forget_peer(net.ids[0])  # once forgotten (it did not answer there), others may tell it
    b.receive("f" * 64, "10.0.0.9", encode(lie), 2.0, [])
    assert b.address_of(net.ids[0]) == ("192.0.2.7", 9)


def test_another_node_cannot_rename_an_honest_file_in_the_list_or_hide_it_from_search() -> None:
    """A made-up node whose id sorts first announced an honest rid as FREE-CRACK.exe: the
    list showed that name, and a search for the honest title found nothing."""
    honest = entry("harbour.wav", title="Harbour at dawn")
    fake = Entry(rid=honest.rid, name="FREE-CRACK.exe", size=12, title="crack")
    net = Net(4)
    net.link(0, 3)
    net.link(1, 3)
    net.link(2, 3)
    liar, sharer = sorted((0, 2), key=lambda i: net.ids[i])  # the liar's id sorts first
    net.share(sharer, honest)  # heard of first
    net.now = 1.0
    net.share(liar, fake)
    victim = net.core(3)
    (row,) = victim.network_files()
    assert row["name"] == "harbour.wav" and row["title"] == "Harbour at dawn"
    assert set(row["providers"]) == {net.ids[0], net.ids[2]}
    qid, _ = victim.start_query("harbour", net.now, [])
    assert [r["rid"] for r in victim.query_results(qid)] == [honest.rid]
    net.share(1, fake)  # most providers now say otherwise: the majority is shown
    assert victim.network_files()[0]["name"] == "FREE-CRACK.exe"
    qid, _ = victim.start_query("harbour", net.now, [])  # still found by the honest words
    assert [r["rid"] for r in victim.query_results(qid)] == [honest.rid]


def test_set_local_reports_changes_only() -> None:
    net = Net(1)
    core = net.core(0)
    assert core.set_local([entry("a.mp4")]) and core.local_changed
    core.sync_for("p" * 64, 0.0)  # one new peer heard it; the others have not
    assert core.local_changed
    core.announce_to(["p" * 64])
    assert not core.local_changed
    assert not core.set_local([entry("a.mp4")]) and not core.local_changed
    assert core.set_local([])


def test_sequence_numbers_grow_and_follow_the_wall_clock_floor() -> None:
    core = Net(1).core(0)
    first = core.make_announce(seq_floor=1000)
    second = core.make_announce(seq_floor=10)
    assert isinstance(first, Announce)
    assert core.seq == 1001 and second.signature != first.signature


def test_entry_from_item_validates_truncates_and_skips_partial_items() -> None:
    item = {"rid": rid_of("a"), "name": "a.mp4", "size": 5, "mime": "video/mp4",
            "category": "video", "title": "t" * 600, "description": "", "duration": 1.5,
            "complete": True, "broken": False}
    made = entry_from_item(item)
    assert made is not None and len(made.title) == 512 and made.duration == 1.5
    assert entry_from_item({**item, "complete": False}) is None
    assert entry_from_item({**item, "broken": True}) is None
    assert entry_from_item({**item, "rid": "not-a-rid"}) is None
    assert entry_from_item({**item, "name": "a\nb.mp4"}) is None  # receivers leave it out


def test_seen_cache_is_bounded_in_size_and_age() -> None:
    seen = SeenCache(capacity=3, max_age=10.0)
    assert seen.add("a", 0.0) and not seen.add("a", 1.0)
    for key in "bcd":
        seen.add(key, 2.0)
    assert "a" not in seen and len(seen) == 3
    assert seen.add("b", 20.0)  # too old to count as seen


def test_queries_relayed_by_a_neighbour_do_not_starve_its_announces() -> None:
    """One bucket per sender for every kind of message: queries that attackers sent
    through an honest neighbour used it up, and that neighbour's relayed announces were
    dropped with them (63 of 200 taken with two attacker sessions)."""
    me, origin = _clocked(2), _clocked(1)
    me.rate, me.burst = 10.0, 5.0
    neighbour = "n" * 64
    for i in range(50):  # a query storm, all relayed by the neighbour
        me.receive(neighbour, "10.0.0.9", encode(Query(qid=bytes([i]) * 16, ttl=2, text="x")), 0.0, [])
    assert me.counters["rate_limited"] == 45
    origin.set_local([entry("honest.mp4")])
    announce = encode(origin.make_announce(seq_floor=0))
    assert me.receive(neighbour, "10.0.0.9", announce, 0.0, []).added == {rid_of("honest.mp4")}


def test_token_bucket_refills_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0) and not bucket.take(0.0)
    assert bucket.take(0.5) and not bucket.take(0.5)
    assert bucket.take(100.0) and bucket.take(100.0) and not bucket.take(100.0)


def test_ttl_out_of_range_is_a_local_error() -> None:
    ident = Identity.from_seed(b"\x01" * 32)
    with pytest.raises(ValueError):
        FloodCore(ident.node_id, ident.public_key, ident.sign, ttl=0)


def test_a_synced_copy_expires_when_the_original_would() -> None:
    net = Net(3, expiry=90.0)
    net.link(0, 1)
    net.share(0, entry("x.mp4"))  # node 1 hears it at t=0
    net.now = 50.0
    net.connect(1, 2)
    assert net.rids(2) == {rid_of("x.mp4")}
    assert net.core(2).next_timer() == pytest.approx(90.0)


def test_an_expired_list_is_not_resurrected_by_a_peer_that_still_holds_it() -> None:
    net = Net(3, expiry=90.0)
    net.line()
    net.share(0, entry("x.mp4"))
    b = net.core(1)
    b.peer_down(net.ids[0], now=1.0, grace=2.0)  # A left; B knows first
    assert b.expire(3.0).removed == {rid_of("x.mp4")}
    net.now = 4.0  # C, which still holds A's list, (re)connects to B and syncs
    b.peer_down(net.ids[2], now=net.now, grace=100.0)
    net.connect(1, 2)
    assert net.rids(1) == set()
    # and were it sent anyway (B's digest names A's seq, so C does not), B drops it
    stale = net.core(2).records[net.ids[0]].announce
    net.post(net.ids[2], [(net.ids[1], encode(msgspec.structs.replace(stale, ttl=2, age=3.0)))])
    net.run()
    assert net.rids(1) == set()
    net.now = 10.0  # a genuinely new announce from A (it came back) is accepted
    net.share(0, entry("x.mp4"))
    assert net.rids(1) == {rid_of("x.mp4")}


def test_a_copy_older_than_its_lifetime_is_ignored() -> None:
    net = Net(2, expiry=90.0)
    a, b = net.core(0), net.core(1)
    a.set_local([entry("x.mp4")])
    old = msgspec.structs.replace(a.make_announce(), age=95.0)
    out = b.receive(net.ids[0], "10.0.0.9", encode(old), 100.0, [])
    assert not out.added and b.counters["stale"] == 1


def _clocked(seed: int, epoch: float = 0.0) -> FloodCore:
    ident = Identity.from_seed(bytes([seed]) * 32)
    return FloodCore(ident.node_id, ident.public_key, ident.sign, entry_expiry=95.0, epoch=epoch)


def test_a_relay_cannot_age_a_list_into_expiry() -> None:
    """The age is not signed: a relay claimed 94 s for a list announced a moment ago and it
    expired everywhere past the relay within a second. The signed seq (the origin's wall
    clock) bounds the claim."""
    origin, victim = _clocked(1), _clocked(2)
    origin.set_local([entry("x.mp4")])
    now = 1000.0
    announce = origin.make_announce(seq_floor=int(now * 1000))
    aged = msgspec.structs.replace(announce, age=94.0)
    assert victim.receive("relay", "10.0.0.9", encode(aged), now, []).added == {rid_of("x.mp4")}
    record = victim.records[origin.node_id]
    assert record.expires_at >= now + 95.0 - AGE_AHEAD_S
    # without the clock check the claim is believed (what a node without one does)
    trusting = FloodCore(victim.node_id, victim.public_key, victim._sign, entry_expiry=95.0)
    trusting.receive("relay", "10.0.0.9", encode(aged), now, [])
    assert trusting.records[origin.node_id].expires_at == pytest.approx(now + 1.0)


def test_an_honest_copy_gives_back_the_life_a_relay_s_older_claim_took() -> None:
    origin, victim = _clocked(1), _clocked(2)
    origin.set_local([entry("x.mp4")])
    now = 1000.0
    announce = origin.make_announce(seq_floor=int(now * 1000))
    victim.receive("relay", "10.0.0.9", encode(msgspec.structs.replace(announce, age=9.0)), now, [])
    assert victim.records[origin.node_id].expires_at == pytest.approx(now + 86.0)
    victim.receive(origin.node_id, "10.0.0.1", encode(announce), now + 0.05, [])  # the direct copy
    assert victim.records[origin.node_id].expires_at == pytest.approx(now + 95.0)
    # a copy claiming to be younger than when the list first reached us changes nothing
    victim.receive("relay", "10.0.0.9", encode(announce), now + 50.0, [])
    assert victim.records[origin.node_id].expires_at == pytest.approx(now + 95.0)
    # nor does one whose bytes differ from what was signed (it is not the same list)
    forged = msgspec.structs.replace(announce, signature=bytes(64))
    victim.receive("relay", "10.0.0.9", encode(forged), now + 60.0, [])
    assert victim.records[origin.node_id].expires_at == pytest.approx(now + 95.0)


def test_a_departed_node_s_list_replayed_as_new_stays_gone() -> None:
    """A replay with age 0 re-listed a node that had left for another 95 s, again and
    again, once its tombstone lapsed."""
    origin, victim = _clocked(1), _clocked(2)
    origin.set_local([entry("x.mp4")])
    announce = encode(origin.make_announce(seq_floor=1_000_000))  # made at 1000 s, wall clock
    assert victim.receive("relay", "10.0.0.9", announce, 1000.0, []).added
    assert victim.expire(1100.0).removed == {rid_of("x.mp4")}  # it left
    for later in (1200.0, 1700.0, 5000.0):  # while the tombstone holds, and long after
        victim.expire(later)
        out = victim.receive("relay", "10.0.0.9", announce, later, [])
        assert not out.added and origin.node_id not in victim.records


def test_an_origin_whose_clock_is_an_hour_behind_is_heard_once_it_spoke_to_us() -> None:
    """The age bound reads the origin's seq as its wall clock: a node whose clock ran an
    hour slow (no RTC, no time sync) was taken as announcing an hour ago — stale, at
    every node, forever. What its own session tells us (its announce, age 0) gives us its
    clock's offset; copies of its lists relayed later are bounded against that."""
    origin, victim = _clocked(1), _clocked(2)
    origin.set_local([entry("x.mp4")])
    now, behind = 5000.0, 3600.0
    first = origin.make_announce(seq_floor=int((now - behind) * 1000))
    # relayed before it ever spoke to us: we cannot tell its clock from a replay
    assert not victim.receive("relay", "10.0.0.9", encode(first), now, []).added
    assert victim.counters["stale"] == 1
    # directly: taken, and its offset learned
    assert victim.receive(origin.node_id, "10.0.0.1", encode(first), now, []).added
    assert victim.records[origin.node_id].expires_at == pytest.approx(now + 95.0)
    # its next list through a relay, 30 s later, 2 s old: believed as it would be with a right clock
    origin.set_local([entry("y.mp4")])
    relayed = msgspec.structs.replace(
        origin.make_announce(seq_floor=int((now + 28 - behind) * 1000)), age=2.0)
    assert victim.receive("relay", "10.0.0.9", encode(relayed), now + 30, []).added == {rid_of("y.mp4")}
    assert victim.records[origin.node_id].expires_at == pytest.approx(now + 28 + 95.0)
    # and the relay still cannot age it into expiry, nor a replay make an old list new
    origin.set_local([entry("z.mp4")])
    aged = msgspec.structs.replace(
        origin.make_announce(seq_floor=int((now + 60 - behind) * 1000)), age=94.0)
    victim.receive("relay", "10.0.0.9", encode(aged), now + 60, [])
    assert victim.records[origin.node_id].expires_at >= now + 60 + 95.0 - AGE_AHEAD_S
    stale_list = encode(msgspec.structs.replace(first, age=0.0))
    victim.expire(now + 1000)
    assert not victim.receive("relay", "10.0.0.9", stale_list, now + 1000, []).added


def test_an_origin_whose_fast_clock_is_corrected_stays_heard() -> None:
    """An offset learned while its clock ran an hour fast, then the clock corrected: its
    lists, relayed, looked an hour old to the node that had learned it — for good."""
    origin, victim = _clocked(1, epoch=3600.0), _clocked(2)
    origin.set_local([entry("x.mp4")])
    victim.receive(origin.node_id, "10.0.0.1", encode(origin.make_announce(seq_floor=3_600_000)), 0.0, [])
    origin.epoch = 0.0  # corrected; its seq keeps growing from where it was
    for now in (400.0, 1000.0, 3700.0, 86_400.0):
        origin.set_local([entry(f"x{now}.mp4")])
        relayed = msgspec.structs.replace(origin.make_announce(seq_floor=int(now * 1000)), age=0.5)
        assert victim.receive("relay", "10.0.0.9", encode(relayed), now + 0.5, []).added == {
            rid_of(f"x{now}.mp4")}, now


def test_a_node_whose_own_clock_is_an_hour_fast_reads_relayed_lists_on_its_neighbours_clocks() -> None:
    """Every relayed list looked an hour old to it (its neighbours' clocks, and the
    origins', all an hour behind its own): it saw nothing but its neighbours' files."""
    fast = _clocked(9, epoch=3600.0)
    neighbours = [_clocked(i) for i in (1, 2, 3)]
    for n in neighbours:
        n.set_local([entry(f"n{n.node_id[:4]}.mp4")])
        fast.receive(n.node_id, "10.0.0.1", encode(n.make_announce(seq_floor=10_000)), 10.0, [])
    far = _clocked(4)  # never spoke to us
    far.set_local([entry("far.mp4")])
    relayed = msgspec.structs.replace(far.make_announce(seq_floor=20_000), age=1.0)
    ids = [n.node_id for n in neighbours]
    assert fast.receive(ids[0], "10.0.0.1", encode(relayed), 21.0, ids).added == {rid_of("far.mp4")}
    assert fast.records[far.node_id].expires_at == pytest.approx(20.0 + 95.0, abs=0.1)


def test_a_forged_direct_announce_teaches_no_clock_offset() -> None:
    """The offset is taken only from a list whose signature verifies."""
    origin, victim = _clocked(1), _clocked(2)
    origin.set_local([entry("x.mp4")])
    forged = msgspec.structs.replace(origin.make_announce(seq_floor=1_000), signature=bytes(64))
    with pytest.raises(RemoteProtocolError):
        victim.receive(origin.node_id, "10.0.0.1", encode(forged), 5000.0, [])
    relayed = origin.make_announce(seq_floor=2_000)  # 4998 s "old" on our clock
    assert not victim.receive("relay", "10.0.0.9", encode(relayed), 5000.0, []).added


def test_a_peer_s_ttl_is_never_carried_past_ours() -> None:
    net = Net(5, ttl=2)
    net.line()
    a = net.core(0)
    a.set_local([entry("far.mp4")])
    wide = msgspec.structs.replace(a.make_announce(), ttl=16)  # ours says 2
    net.post(net.ids[0], [(net.ids[1], encode(wide))])
    net.run()
    assert rid_of("far.mp4") in net.rids(2) and net.rids(3) == set() and net.rids(4) == set()


def test_a_share_list_too_big_for_one_announce_is_cut_to_fit() -> None:
    net = Net(2)
    a, b = net.core(0), net.core(1)
    a.set_local([entry(f"f{i}.mp4", description="d" * 4000) for i in range(512)])
    ann = a.make_announce()
    assert len(ann.body) <= (1 << 20) and a.counters["truncated"] > 0
    out = b.receive(net.ids[0], "10.0.0.9", encode(ann), 0.0, [])
    assert 200 < len(out.added) < 512


def _made_up_origin(i: int, entries: list[Entry]) -> bytes:
    ident = Identity.from_seed(i.to_bytes(4, "big") * 8)
    core = FloodCore(ident.node_id, ident.public_key, ident.sign)
    core.set_local(entries)
    return encode(core.make_announce())


def test_announces_from_made_up_origins_are_bounded_in_bytes_and_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Identities are free: a hostile neighbour can sign announces for as many origins as
    it likes. What we hold stays bounded; origins we already know still update."""
    from p2pkit.plugins.flooding import _core

    # the real limits (4096 origins, 16 MiB) scaled down so the test takes no time
    MAX_HELD_BYTES, MAX_ORIGINS = 8 << 20, 300
    monkeypatch.setattr(_core, "MAX_HELD_BYTES", MAX_HELD_BYTES)
    monkeypatch.setattr(_core, "MAX_ORIGINS", MAX_ORIGINS)
    me = Identity.from_seed(b"\x01" * 32)
    victim = FloodCore(me.node_id, me.public_key, me.sign, rate=1e9, burst=1e9)
    known = _made_up_origin(1, [entry("kept.mp4")])
    victim.receive("p" * 64, "10.0.0.9", known, 0.0, [])
    bulky = [entry(f"f{i}.mp4", description="d" * 4000) for i in range(260)]  # ~1 MiB body
    for i in range(2, 2 + MAX_HELD_BYTES // (1 << 20) + 8):
        victim.receive("p" * 64, "10.0.0.9", _made_up_origin(i, bulky), 0.0, [])
    assert sum(len(r.announce.body) for r in victim.records.values()) <= MAX_HELD_BYTES
    small = [entry("s.mp4")]
    for i in range(10_000, 10_000 + MAX_ORIGINS):
        victim.receive("p" * 64, "10.0.0.9", _made_up_origin(i, small), 0.0, [])
    assert len(victim.records) <= MAX_ORIGINS
    assert victim.counters["records_full"] > 0
    # the origin we knew first can still replace its list
    first = Identity.from_seed((1).to_bytes(4, "big") * 8)
    update = FloodCore(first.node_id, first.public_key, first.sign)
    update.seq = 5
    update.set_local([entry("updated.mp4")])
    victim.receive("p" * 64, "10.0.0.9", encode(update.make_announce()), 0.0, [])
    assert rid_of("updated.mp4") in victim.records[first.node_id].entries


def test_made_up_origins_through_one_neighbour_leave_room_for_others() -> None:
    """~20 announces of made-up origins from one peer filled the table, and no new honest
    node's files appeared anywhere after that."""
    from p2pkit.plugins.flooding._core import MAX_HELD_BYTES, NEIGHBOUR_SHARE

    me = Identity.from_seed(b"\x01" * 32)
    victim = FloodCore(me.node_id, me.public_key, me.sign, rate=1e9, burst=1e9)
    bulky = [entry(f"f{i}.mp4", description="d" * 4000) for i in range(260)]  # ~1 MiB body
    for i in range(2, 2 + MAX_HELD_BYTES // (1 << 20) + 4):
        victim.receive("hostile", "10.0.0.9", _made_up_origin(i, bulky), 0.0, [])
    held = sum(len(r.announce.body) for r in victim.records.values())
    assert held <= MAX_HELD_BYTES // NEIGHBOUR_SHARE and victim.counters["records_full"] > 0
    honest = _made_up_origin(10_000, [entry("honest.mp4")])
    assert victim.receive("another", "10.0.0.8", honest, 0.0, []).added == {rid_of("honest.mp4")}
    # a neighbour's own list always fits, its share full or not
    own = Identity.from_seed((20_000).to_bytes(4, "big") * 8)
    victim.receive("hostile", "10.0.0.9", _made_up_origin(3, bulky), 0.0, [])
    assert victim.receive(own.node_id, "10.0.0.7", _made_up_origin(20_000, [entry("own.mp4")]),
                          0.0, []).added == {rid_of("own.mp4")}


# ---------------------------------------------------------------- signed search answers


def hits_delivered(net: Net) -> list[tuple[str, str, bytes]]:
    return [(s, t, d) for s, t, d in net.trace if isinstance(decode(d), Hits)]


def test_a_genuine_answer_through_two_relays_is_accepted_and_relayed_unchanged() -> None:
    net = Net(4)
    net.line()  # 0 - 1 - 2 - 3: node 0's answer to node 3 passes relays 1 and 2
    cat = entry("cat.mp4", title="Funny Cat")
    net.core(0).set_local([cat])
    qid, sends = net.core(3).start_query("cat", 0.0, net.links[net.ids[3]])
    net.post(net.ids[3], sends)
    net.run()
    (row,) = net.core(3).finish_query(qid)
    assert row["rid"] == cat.rid and row["providers"] == [net.ids[0]] and row["title"] == "Funny Cat"
    hops = hits_delivered(net)
    assert [(s, t) for s, t, _ in hops] == [(net.ids[0], net.ids[1]), (net.ids[1], net.ids[2]),
                                            (net.ids[2], net.ids[3])]
    assert len({data for _, _, data in hops}) == 1  # relays pass the signed bytes on as they are
    assert all(net.core(i).counters["hits_forged"] == 0 for i in range(4))
    assert [net.core(i).counters["hits_in"] for i in (1, 2, 3)] == [1, 1, 1]


def test_answers_from_two_providers_merge_into_one_row() -> None:
    net = Net(3)
    net.line()
    song = entry("song.mp3", title="Song")
    net.core(0).set_local([song, entry("other.mp3", title="Song two")])
    net.core(2).set_local([song])  # not announced: only the query finds them
    qid, sends = net.core(1).start_query("song", 0.0, net.links[net.ids[1]])
    net.post(net.ids[1], sends)
    net.run()
    rows = net.core(1).finish_query(qid)
    assert [r["title"] for r in rows] == ["Song", "Song two"]
    assert rows[0]["providers"] == sorted([net.ids[0], net.ids[2]])
    assert rows[1]["providers"] == [net.ids[0]]


MALLORY = Identity.from_seed(b"\x66" * 32)  # a hostile relay


def _signed_hits(signer: Identity, qid: bytes, provider: str, entries: list[Entry], *,
                 outer_qid: bytes | None = None, outer_provider: str | None = None,
                 public_key: bytes | None = None) -> Hits:
    body = encode(HitsBody(qid=qid, provider=provider, entries=entries))
    return Hits(qid=outer_qid or qid, provider=outer_provider or provider,
                public_key=public_key or signer.public_key, body=body,
                signature=signer.sign(HITS_CONTEXT + body))


def _alter_entries(hits: Hits, change: Callable[[list[dict[str, object]]], None]) -> Hits:
    body = msgspec.msgpack.decode(hits.body)
    change(body["entries"])
    return msgspec.structs.replace(hits, body=msgspec.msgpack.encode(body))


def _forgeries(victim: FloodCore, victim_id: Identity, qid: bytes) -> dict[str, Hits]:
    """What a relay on the path (MALLORY) might send instead of, or beside, the answer
    of ``victim`` to query ``qid``."""
    fake = [entry("fake.mp4", title="fake")]
    genuine = victim.make_hits(qid, [entry("real.mp4", title="real fake")])
    other_query = victim.make_hits(b"o" * 16, [entry("real.mp4", title="real fake")])

    def rename(entries: list[dict[str, object]]) -> None:
        entries[0]["name"] = "evil.exe"

    def append(entries: list[dict[str, object]]) -> None:
        entries.append(msgspec.to_builtins(fake[0]))

    return {
        # claims the victim's id, signed with the relay's own key
        "wrong key": _signed_hits(MALLORY, qid, victim_id.node_id, fake),
        # the victim's key, but the relay's signature
        "wrong signature": _signed_hits(MALLORY, qid, victim_id.node_id, fake,
                                        public_key=victim_id.public_key),
        "zero signature": msgspec.structs.replace(genuine, signature=b"\0" * 64),
        # the relay's key and id outside, the victim's id in the signed body
        "body names another provider": _signed_hits(
            MALLORY, qid, victim_id.node_id, fake, outer_provider=MALLORY.node_id),
        # the outer provider id does not belong to the key (the victim's genuine body)
        "provider id not the key's": msgspec.structs.replace(genuine, provider=MALLORY.node_id),
        # a genuine answer to another query, re-addressed
        "replayed from another query": msgspec.structs.replace(other_query, qid=qid),
        "entries altered": _alter_entries(genuine, rename),
        "entries added": _alter_entries(genuine, append),
        "another context": msgspec.structs.replace(
            genuine, signature=victim._sign(b"p2pkit-flood-announce-v1" + genuine.body)),
    }


FORGERY_KINDS = list(_forgeries(
    FloodCore(MALLORY.node_id, MALLORY.public_key, MALLORY.sign), MALLORY, b"q" * 16))


@pytest.mark.parametrize("kind", FORGERY_KINDS)
def test_a_forged_answer_is_rejected_counted_and_its_sender_dropped(kind: str) -> None:
    net = Net(3)
    net.line()  # 0 (victim provider) - 1 (relay) - 2 (asks)
    asker = net.core(2)
    qid, _ = asker.start_query("fake", 0.0, net.links[net.ids[2]])
    victim_identity = Identity.from_seed(bytes([1]) * 32)  # node 0's, as Net made it
    forged = _forgeries(net.core(0), victim_identity, qid)[kind]
    with pytest.raises(RemoteProtocolError, match="hits from"):  # the kernel drops node 1
        asker.receive(net.ids[1], "10.0.0.9", encode(forged), 0.0, net.links[net.ids[2]])
    assert asker.counters["hits_forged"] == 1
    assert asker.query_results(qid) == []


@pytest.mark.parametrize("kind", FORGERY_KINDS)
def test_a_relay_verifies_before_it_forwards(kind: str) -> None:
    """So an honest node never passes a forgery on, and blaming the sender is fair."""
    net = Net(3)
    net.line()
    qid, sends = net.core(2).start_query("fake", 0.0, net.links[net.ids[2]])
    net.post(net.ids[2], sends)
    net.run()  # node 1 now holds the reverse route to node 2
    victim_identity = Identity.from_seed(bytes([1]) * 32)
    forged = _forgeries(net.core(0), victim_identity, qid)[kind]
    relay = net.core(1)
    with pytest.raises(RemoteProtocolError):
        relay.receive(net.ids[0], "10.0.0.9", encode(forged), 0.0, net.links[net.ids[1]])
    assert relay.counters["hits_forged"] == 1


def test_a_relay_can_answer_only_for_itself() -> None:
    net = Net(3)
    net.line()
    asker = net.core(2)
    qid, _ = asker.start_query("fake", 0.0, net.links[net.ids[2]])
    relay_identity = Identity.from_seed(bytes([2]) * 32)  # node 1's
    own = _signed_hits(relay_identity, qid, net.ids[1], [entry("fake.mp4", title="fake")])
    out = asker.receive(net.ids[1], "10.0.0.9", encode(own), 0.0, net.links[net.ids[2]])
    assert out.hits_for == qid
    (row,) = asker.query_results(qid)
    assert row["providers"] == [net.ids[1]]  # its own id: it must serve the pieces itself


def test_an_answer_too_big_for_one_message_is_cut_to_fit_and_still_verifies() -> None:
    net = Net(2)
    net.link(0, 1)
    wide = "\u2603" * 4096  # 3 bytes each in UTF-8
    big = [entry(f"f{i}.mp4", title="f", description=wide) for i in range(100)]
    provider, asker = net.core(0), net.core(1)
    qid, _ = asker.start_query("f", 0.0, [net.ids[0]])
    hits = provider.make_hits(qid, big)
    assert len(hits.body) <= MAX_HITS_BODY and provider.counters["truncated"] > 0
    asker.receive(net.ids[0], "10.0.0.9", encode(hits), 0.0, [net.ids[0]])
    assert 50 < len(asker.query_results(qid)) < 100
    assert len(decode_hits_body(hits.body).entries) == len(asker.query_results(qid))


def test_a_new_neighbour_that_holds_the_same_lists_is_sent_none_of_them() -> None:
    # every list a node held went to every new neighbour, most of them lists it had
    net = Net(5)
    net.line()
    for i in range(5):
        net.share(i, entry(f"{i}.mp4"))
    before = len(net.trace)
    net.connect(0, 4)  # both hold every list already
    sent = [decode(data) for _, _, data in net.trace[before:]]
    assert sorted(type(m).__name__ for m in sent) == ["Announce", "Announce", "Digest", "Digest"]
    assert net.core(0).counters["synced_lists"] == net.core(4).counters["synced_lists"] == 0


def test_a_digest_brings_the_lists_a_neighbour_lacks_or_holds_older_and_only_those() -> None:
    net = Net(5)
    net.line()  # 0 - 1 - 2 - 3 - 4
    for i in range(5):
        net.share(i, entry(f"{i}.mp4"))
    net.links[net.ids[2]].discard(net.ids[3])  # node 3 misses node 2's next list
    net.links[net.ids[3]].discard(net.ids[2])
    net.share(2, entry("2.mp4"), entry("2b.mp4"))
    before = len(net.trace)
    net.connect(1, 3)
    lists = [decode(data) for frm, to, data in net.trace[before:]
             if frm == net.ids[1] and to == net.ids[3] and isinstance(decode(data), Announce)]
    # node 1's own list and node 2's newer one; not node 0's, which node 3 holds as new
    assert len(lists) == 2 and net.core(1).counters["synced_lists"] == 1
    assert net.rids(3) == {rid_of(f"{i}.mp4") for i in range(5)} | {rid_of("2b.mp4")}
    # node 3 had nothing node 1 lacked
    assert net.core(3).counters["synced_lists"] == 0


def test_a_neighbour_gets_our_lists_once_per_session_however_often_it_sends_a_digest() -> None:
    # a digest costs its sender a few bytes and us every list we hold: no amplifier
    net = Net(3)
    net.line()
    net.share(0, entry("a.mp4"))
    b = net.core(1)
    empty = encode(Digest(held=[]))
    first = b.receive(net.ids[2], "h", empty, net.now, net.links[net.ids[1]])
    again = b.receive(net.ids[2], "h", empty, net.now, net.links[net.ids[1]])
    assert first.backfill == (net.ids[2], [net.ids[0]])
    assert again.backfill is None and b.counters["digests_repeated"] == 1
    b.peer_down(net.ids[2], now=net.now, grace=10.0)  # a new session is answered again
    b.sync_for(net.ids[2], net.now)
    assert b.receive(net.ids[2], "h", empty, net.now, net.links[net.ids[1]]).backfill == first.backfill


def test_a_search_learns_that_its_flood_is_over_after_every_answer() -> None:
    # a search nobody could answer waited search_timeout (3 s), one that was answered
    # search_idle past its last answer
    net = Net(5)
    net.line()
    net.link(0, 2)  # a cycle: node 2 hears the query twice and says Done to both
    net.share(4, entry("far.mp4", title="Far away"))
    asker = net.core(0)
    qid, sends = asker.start_query("far", net.now, net.links[net.ids[0]])
    assert not asker.query_complete(qid)
    net.post(net.ids[0], sends)
    net.run()
    assert asker.query_complete(qid) and asker.query_answered(qid)
    (row,) = asker.query_results(qid)
    assert row["providers"] == [net.ids[4]]
    order = [type(decode(data)).__name__ for _, to, data in net.trace if to == net.ids[0]][-3:]
    assert order[-1] == "Done" and "Hits" in order  # the answer came before the last Done
    assert not any(core._relaying for core in net.cores.values())  # nothing left waiting
    qid, sends = asker.start_query("nothing here", net.now, net.links[net.ids[0]])
    net.post(net.ids[0], sends)
    net.run()
    assert asker.query_complete(qid) and not asker.query_answered(qid)


def test_answers_from_past_a_neighbour_that_flaps_mid_search_still_count() -> None:
    # its going away counted as Done: the search ended, and the answers that came over
    # its next session a moment later were lost
    net = Net(3)
    net.line()
    net.share(2, entry("x.mp4"))
    asker, relay = net.core(0), net.core(1)
    relay.records.clear()  # (not known by announce: only the answer tells)
    asker.records.clear()
    qid, sends = asker.start_query("x", net.now, net.links[net.ids[0]])
    relay_out = relay.receive(net.ids[0], "h", sends[0][1], net.now, net.links[net.ids[1]])
    assert [to for to, _ in relay_out.sends] == [net.ids[2]]  # waits for node 2 now
    relay.peer_down(net.ids[2], net.now, grace=1.0)  # ... which flaps
    asker.peer_down(net.ids[1], net.now, grace=1.0)  # and so does the asker's link
    assert not asker.query_complete(qid)  # not over: it may be back
    far = net.core(2).receive(net.ids[1], "h", relay_out.sends[0][1], net.now, net.links[net.ids[2]])
    net.post(net.ids[2], far.sends)  # the answer and Done, over the next sessions
    net.run()
    assert asker.query_complete(qid) and [r["rid"] for r in asker.query_results(qid)] == [rid_of("x.mp4")]


def test_a_node_that_comes_back_is_listed_again_whatever_its_neighbour_did_meanwhile() -> None:
    # our last announce goes to a new neighbour as it was (no new seq): a neighbour that
    # had cut its life at the flap, let it expire, or found it too old refused it
    net = Net(3, expiry=90.0)
    net.link(0, 1)
    net.share(0, entry("a.mp4"))
    a, b = net.core(0), net.core(1)

    def unlink(x: int, y: int) -> None:
        net.links[net.ids[x]].discard(net.ids[y])
        net.links[net.ids[y]].discard(net.ids[x])

    # a flap: B cut A's list to the grace, A is back within it
    unlink(0, 1)
    b.peer_down(net.ids[0], now=net.now, grace=10.0)
    a.peer_down(net.ids[1], now=net.now, grace=10.0)
    net.now = 2.0
    net.connect(0, 1)
    b.expire(20.0)
    assert net.rids(1) == {rid_of("a.mp4")}
    # B let it expire while A was away: a tombstone for A's seq, shown in B's digest
    unlink(0, 1)
    b.peer_down(net.ids[0], now=20.0, grace=10.0)
    a.peer_down(net.ids[1], now=20.0, grace=10.0)
    b.expire(31.0)
    assert net.rids(1) == set()
    seq = a.seq
    net.now = 32.0
    net.connect(0, 1)
    assert net.rids(1) == {rid_of("a.mp4")} and a.seq > seq  # a new list, for everyone
    # A alone for longer than a list lives, then a new neighbour: not stale there
    unlink(0, 1)
    a.peer_down(net.ids[1], now=32.0, grace=10.0)
    net.now = 32.0 + 95.0
    net.connect(0, 2)
    assert net.rids(2) == {rid_of("a.mp4")}


def test_a_newcomer_gets_every_list_however_many_there_are() -> None:
    net = Net(3)
    net.line()
    for i in range(3):
        net.share(i, entry(f"{i}.mp4"))
    newcomer = FloodCore("e" * 64, b"\x01" * 32, lambda data: b"\x00" * 64)
    out = newcomer.receive(net.ids[1], "h", net.core(1).sync_for("e" * 64, net.now)[1][1], net.now, [net.ids[1]])
    assert out.backfill is None  # the newcomer holds nothing to offer
    reply = net.core(1).receive("e" * 64, "h", encode(Digest(held=[])), net.now, [*net.links[net.ids[1]], "e" * 64])
    assert reply.backfill is not None and sorted(reply.backfill[1]) == sorted([net.ids[0], net.ids[2]])
    assert all(net.core(1).relayed_copy(o, net.now) for o in reply.backfill[1])


def test_a_relay_whose_answer_could_not_be_queued_does_not_say_done_after_it() -> None:
    # the Done that followed a dropped Hits told the asker every answer was in: its
    # search ended at once without that answer (before Done it only waited longer)
    net = Net(3)
    net.line()
    net.share(2, entry("x.mp4"))
    asker, relay = net.core(0), net.core(1)
    _qid, sends = asker.start_query("x", net.now, net.links[net.ids[0]])
    onward = relay.receive(net.ids[0], "h", sends[0][1], net.now, net.links[net.ids[1]]).sends
    far = net.core(2).receive(net.ids[1], "h", onward[0][1], net.now, net.links[net.ids[2]]).sends
    hits, done = (relay.receive(net.ids[2], "h", data, net.now, net.links[net.ids[1]]).sends
                  for _, data in far)
    ((to_asker, hits_data),) = hits
    ((_, done_data),) = done
    assert to_asker == net.ids[0] and isinstance(decode(done_data), Done)
    assert not relay.withheld(net.ids[0], done_data)  # nothing lost yet: it goes
    relay.send_dropped(net.ids[0], hits_data)  # the asker's queue was full
    assert relay.withheld(net.ids[0], done_data) and relay.counters["done_withheld"] == 1
    assert not relay.withheld(net.ids[0], hits_data)  # only the Done is held back
    other = encode(Done(qid=bytes(16)))
    assert not relay.withheld(net.ids[0], other)  # another query's Done goes
    relay.send_dropped(net.ids[0], other)  # a lost Done marks nothing
    assert not relay.withheld(net.ids[0], other)
    relay.peer_down(net.ids[0], net.now, grace=1.0)  # a new session starts clean
    assert not relay.withheld(net.ids[0], done_data)


def test_files_whose_names_no_manifest_may_carry_are_left_out_of_lists_and_answers() -> None:
    # a node running older code listed "a\x1b[2J.png": every list showed the escape
    # sequence, and the file could never be downloaded (its manifest does not decode)
    net = Net(2)
    net.link(0, 1)
    good, bad = entry("harbour.png"), entry("harbour\x1b[2J.png")
    hidden, spoofed = entry(".bashrc"), entry("clip\u202egpj.exe")
    net.share(0, good, bad, hidden, spoofed)
    assert net.rids(1) == {good.rid}
    qid, sends = net.core(1).start_query("harbour", net.now, net.links[net.ids[1]])
    net.post(net.ids[1], sends)
    net.run()
    assert [r["rid"] for r in net.core(1).query_results(qid)] == [good.rid]
    assert net.core(1).counters["hits_forged"] == 0  # the rest was no lie: nobody dropped
