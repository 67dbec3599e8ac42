import random

from p2pkit.plugins.swarm._choker import Choker, PeerView


def views(rates: dict[str, float], uninterested: set[str] = frozenset()) -> dict[str, PeerView]:  # type: ignore[assignment]
    return {p: PeerView(p not in uninterested, r) for p, r in rates.items()}


def test_best_four_get_regular_slots_plus_one_optimistic() -> None:
    c = Choker(rng=random.Random(3))
    rates = {f"p{i}": float(i) for i in range(10)}
    unchoked = c.update(0.0, views(rates))
    assert {"p9", "p8", "p7", "p6"} <= unchoked or c.optimistic in {"p9", "p8", "p7", "p6"}
    assert len(unchoked) == 5
    assert len(c.regular) == 4 and c.optimistic not in c.regular


def test_regular_slots_only_change_every_interval() -> None:
    c = Choker(rng=random.Random(0))
    rates = {f"p{i}": float(i) for i in range(8)}
    c.update(0.0, views(rates))
    before = set(c.regular)
    rates.update(p0=100.0, p1=99.0, p2=98.0, p3=97.0)
    c.update(5.0, views(rates))
    assert c.regular == before
    c.update(10.0, views(rates))
    assert c.regular >= {"p0", "p1", "p2", "p3"} - {c.optimistic}


def test_optimistic_rotates_every_30_seconds() -> None:
    c = Choker(rng=random.Random(0))
    rates = {f"p{i}": 0.0 for i in range(30)}
    seen = set()
    for t in range(0, 300, 30):
        c.update(float(t), views(rates))
        seen.add(c.optimistic)
    assert len(seen) > 3


def test_uninterested_or_departed_peers_are_choked_and_slots_refilled() -> None:
    c = Choker(rng=random.Random(0))
    rates = {f"p{i}": float(i) for i in range(6)}
    c.update(0.0, views(rates))
    assert len(c.unchoked) == 5
    gone = next(iter(c.regular))
    del rates[gone]
    unchoked = c.update(1.0, views(rates, uninterested={"p0"}))
    assert gone not in unchoked and "p0" not in unchoked
    assert len(unchoked) == 4  # the five remaining interested peers minus none: all served


def test_new_interested_peer_gets_a_free_slot_at_once() -> None:
    c = Choker()
    assert c.update(0.0, views({"a": 0.0})) == {"a"}
    assert c.update(1.0, views({"a": 0.0, "b": 0.0})) == {"a", "b"}


def test_spare_uplink_unchokes_one_more_peer_per_grow_interval() -> None:
    c = Choker(rng=random.Random(0), grow_interval=0.25, max_extra=2)
    rates = {f"p{i}": float(i) for i in range(10)}
    assert len(c.update(0.0, views(rates))) == 5
    assert len(c.update(0.1, views(rates))) == 5  # busy uplink: the reference 4 + 1
    grown = c.update(0.2, views(rates), spare=True)
    assert len(grown) == 6
    # the best-rated waiting peer gets the extra slot (tit-for-tat still decides order)
    waiting = set(rates) - (grown - c.extra)
    assert c.extra == {max(waiting, key=lambda p: rates[p])}
    assert len(c.update(0.3, views(rates), spare=True)) == 6  # one per grow interval
    assert len(c.update(0.5, views(rates), spare=True)) == 7
    assert len(c.update(0.8, views(rates), spare=True)) == 7  # at most max_extra


def test_extra_slots_shrink_when_the_uplink_stays_busy() -> None:
    c = Choker(rng=random.Random(0), grow_interval=0.0, max_extra=4)
    rates = {f"p{i}": float(i) for i in range(12)}
    c.update(0.0, views(rates))
    for t in (1.0, 2.0, 3.0):
        c.update(t, views(rates), spare=True)
    assert len(c.extra) == 3
    c.update(10.0, views(rates))  # a round in which the uplink was found spare: kept
    assert len(c.extra) == 3
    c.update(20.0, views(rates))  # a whole round busy: one slot given back
    assert len(c.extra) == 2
    c.update(30.0, views(rates))
    assert len(c.extra) == 1


def test_uninterested_extra_peer_is_choked() -> None:
    c = Choker(rng=random.Random(0), grow_interval=0.0)
    rates = {f"p{i}": float(i) for i in range(7)}
    c.update(0.0, views(rates))
    c.update(1.0, views(rates), spare=True)
    (extra,) = c.extra
    assert extra not in c.update(2.0, views(rates, uninterested={extra}))


def test_seeding_serves_the_peers_missing_most() -> None:
    c = Choker(rng=random.Random(0))
    peers = {f"p{i}": PeerView(True, rate=float(100 - i), missing=i / 10) for i in range(10)}
    unchoked = c.update(0.0, peers, seeding=True)
    # the four missing most (besides the optimistic pick): the last to finish, not the
    # fastest receivers
    assert c.regular == set(sorted({"p9", "p8", "p7", "p6", "p5"} - {c.optimistic})[-4:])
    assert len(unchoked) == 5
    leeching = Choker(rng=random.Random(0))
    leeching.update(0.0, peers)
    # downloading: tit-for-tat by rate
    assert leeching.regular == set(sorted({"p0", "p1", "p2", "p3", "p4"} - {leeching.optimistic})[:4])


def test_a_young_downloader_serves_the_peers_holding_least_first() -> None:
    # no reciprocation to rank by yet: the slot goes to the peer that becomes a new
    # source of our piece, not to the one that happens to send us the most
    peers = {"rich": PeerView(True, rate=500.0, missing=0.2),
             "poor": PeerView(True, rate=0.0, missing=1.0),
             "half": PeerView(True, rate=100.0, missing=0.5)}
    young = Choker(slots=1, rng=random.Random(0))
    young.update(0.0, peers, young=True)
    # (the optimistic slot is drawn first, at random: the regular one is the best of the rest)
    assert young.regular == ({"poor"} if young.optimistic != "poor" else {"half"})
    grown = Choker(slots=1, rng=random.Random(0))
    grown.update(0.0, peers)
    assert grown.regular == ({"rich"} if grown.optimistic != "rich" else {"half"})


def test_a_downloader_that_grows_up_ranks_by_rate_at_once() -> None:
    # young order fills the slots before any rate is known; the next round is 10 s
    # away, longer than many downloads: the first update after the young phase re-ranks
    # by rate (tit-for-tat), later ones wait for the round again
    c = Choker(slots=2, rng=random.Random(0))
    peers = {f"p{i}": PeerView(True, rate=0.0, missing=1.0 - i / 10) for i in range(6)}
    c.update(0.0, peers, young=True)
    young_slots = set(c.regular)
    assert young_slots <= {"p0", "p1", "p2"}  # the ones holding least (one may be optimistic)
    rates = {"p0": 1.0, "p1": 2.0, "p2": 1.5, "p3": 40.0, "p4": 43.0, "p5": 30.0}
    grown = {p: PeerView(True, rate=rates[p], missing=v.missing) for p, v in peers.items()}
    c.update(1.0, grown, young=True)
    assert c.regular == young_slots  # still young: nothing changes between rounds
    c.update(2.0, grown)
    assert c.regular == set(sorted({"p4", "p3", "p5"} - {c.optimistic}, key=lambda p: -rates[p])[:2])
    after = set(c.regular)
    rates.update(p0=100.0, p1=99.0)
    c.update(3.0, {p: PeerView(True, rate=rates[p]) for p in peers})
    assert c.regular == after  # grown up once: the 10 s rounds again
