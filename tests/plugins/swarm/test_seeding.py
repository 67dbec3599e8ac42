from p2pkit.plugins.swarm._seeding import InitialSeeding


def test_newcomers_are_shown_different_pieces() -> None:
    s = InitialSeeding(8, per_peer=2)
    av = [0] * 8
    assert s.active(av)
    a = s.offer("a", None, av)
    b = s.offer("b", None, av)
    c = s.offer("c", None, av)
    d = s.offer("d", None, av)
    assert len(a) == len(b) == 2
    # four peers, eight pieces: every piece shown exactly once — the origin's uplink
    # carries eight different pieces, not four copies of the same ones
    assert sorted(a + b + c + d) == list(range(8))
    assert s.shown("a") == set(a)


def test_pieces_held_by_peers_are_shown_last_and_never_to_their_holders() -> None:
    s = InitialSeeding(4, per_peer=2)
    av = [3, 0, 0, 1]
    has = [False, False, True, False]
    assert sorted(s.offer("a", has, av)) == [1, 3]  # 2: it has it; 0: three peers do


def test_a_have_for_an_offered_piece_unlocks_one_more() -> None:
    s = InitialSeeding(6, per_peer=2)
    av = [0] * 6
    first = s.offer("a", None, av)
    assert s.on_have("a", 5 if 5 not in first else 4, None, av) == []  # not an offer
    av[first[0]] = 1
    more = s.on_have("a", first[0], None, av)
    assert len(more) == 1 and more[0] not in first
    assert s.shown("a") == {first[1], more[0]}


def test_everything_revealed_once_every_piece_is_out() -> None:
    s = InitialSeeding(3, per_peer=1)
    s.offer("a", None, [0, 0, 0])
    assert s.active([1, 1, 0])
    assert not s.active([1, 1, 1])
    assert s.shown("a") is None  # all pieces may be shown now
    assert not s.active([0, 1, 1])  # and it stays that way (a peer leaving changes nothing)


def test_a_departed_peer_releases_its_offers() -> None:
    s = InitialSeeding(4, per_peer=2)
    av = [0] * 4
    a = s.offer("a", None, av)
    s.peer_gone("a")
    assert sorted(s.offer("b", None, av)) == sorted(a)  # its pieces are the least shown again
