from p2pkit.plugins.swarm._seeding import InitialSeeding

PIECE = 1000


def members(*names: str, pieces: int = 8) -> dict[str, list[bool]]:
    return {name: [False] * pieces for name in names}


def test_few_targets_each_shown_a_different_piece() -> None:
    s = InitialSeeding(8, targets=2)
    av = [0] * 8
    for name in "abcd":
        s.join(name)
    offers = s.next_offers(0.0, av, members(*"abcd"))
    # two peers are injected to at once, one piece each, different pieces
    assert len(offers) == 2
    assert len({piece for _peer, piece in offers}) == 2
    for peer, piece in offers:
        assert s.shown(peer) == {piece}
    others = set("abcd") - {peer for peer, _ in offers}
    assert all(s.shown(p) == set() for p in others)  # the rest see none of our pieces
    assert s.next_offers(0.1, av, members(*"abcd")) == []  # no place is free


def test_a_have_frees_the_place_for_a_member_injected_least() -> None:
    s = InitialSeeding(8, targets=1)
    av = [0] * 8
    [(first, piece)] = s.next_offers(0.0, av, members("a", "b"))
    av[piece] = 1
    s.on_have(first, piece)
    [(second, piece2)] = s.next_offers(0.5, av, members("a", "b"))
    assert second != first  # pieces land on different peers, which pass them on
    assert piece2 != piece


def test_pieces_a_peer_holds_are_never_shown_and_held_ones_not_injected() -> None:
    s = InitialSeeding(4, targets=1)
    av = [1, 1, 0, 1]  # only piece 2 is held by nobody
    has = {"a": [False, False, True, False], "b": [False] * 4}
    [(peer, piece)] = s.next_offers(0.0, av, has)
    assert (peer, piece) == ("b", 2)


def test_a_piece_sent_whole_frees_the_place_and_is_never_injected_again() -> None:
    s = InitialSeeding(3, targets=1, stall_after=2.0)
    av = [0, 0, 0]
    [(a, piece)] = s.next_offers(0.0, av, members("a", "b", pieces=3))
    assert not s.uploaded(a, piece, PIECE // 2, PIECE)
    assert not s.uploaded(a, (piece + 1) % 3, PIECE, PIECE)  # not its piece
    assert s.uploaded(a, piece, PIECE // 2, PIECE)  # the last bytes are on their way
    [(b, other)] = s.next_offers(0.1, av, members("a", "b", pieces=3))
    assert b != a and other != piece  # a fresh piece, not the one in transit
    assert s.uploaded(b, other, PIECE, PIECE)
    # even if their Haves never come (a member that dropped us does not tell us what it
    # gets), pieces sent whole are out: they are not injected again...
    [(c, third)] = s.next_offers(3.0, av, members("a", "b", "c", pieces=3))
    assert third not in (piece, other)
    assert s.uploaded(c, third, PIECE, PIECE)
    # ...and once every piece is out the injection is over, Haves or not
    assert not s.active(av)
    assert s.shown("a") is None


def test_a_silent_target_is_given_up() -> None:
    s = InitialSeeding(4, targets=1, stall_after=2.0)
    av = [0] * 4
    [(a, piece)] = s.next_offers(0.0, av, members("a", "b", pieces=4))
    assert s.next_offers(1.0, av, members("a", "b", pieces=4)) == []
    s.release(a)
    [(b, piece2)] = s.next_offers(1.1, av, members("a", "b", pieces=4))
    assert (b, piece2) == ("b", piece)  # its piece is the first fresh one again
    # once nothing fresh is left, a piece nobody holds yet may be shown a second time
    s2 = InitialSeeding(1, targets=2)
    offers = s2.next_offers(0.0, [0], members("a", "b", pieces=1))
    assert [p for _peer, p in offers] == [0, 0]


def test_everything_revealed_once_every_piece_is_out() -> None:
    s = InitialSeeding(3, targets=1)
    s.join("a")
    s.next_offers(0.0, [0, 0, 0], members("a", pieces=3))
    assert s.active([1, 1, 0])
    assert not s.active([1, 1, 1])
    assert s.shown("a") is None  # all pieces may be shown now
    assert s.offers == {}
    assert s.next_offers(1.0, [1, 1, 1], members("a", pieces=3)) == []
    assert not s.active([0, 1, 1])  # and it stays that way (a peer leaving changes nothing)


def test_a_departed_target_releases_its_piece() -> None:
    s = InitialSeeding(4, targets=1)
    av = [0] * 4
    [(a, piece)] = s.next_offers(0.0, av, members("a", "b", pieces=4))
    s.peer_gone(a)
    [(b, again)] = s.next_offers(0.1, av, members("b", pieces=4))
    assert (b, again) == ("b", piece)  # its piece is the first fresh one again


def test_a_spare_uplink_adds_targets_and_a_busy_one_gives_them_back() -> None:
    s = InitialSeeding(8, targets=1, max_extra=2)
    av = [0] * 8
    names = members(*"abcd")
    assert len(s.next_offers(0.0, av, names)) == 1
    s.spare(0.1)
    assert len(s.next_offers(0.1, av, names)) == 1  # a second target
    s.spare(0.2)  # too soon after the last one
    assert s.next_offers(0.2, av, names) == []
    s.spare(0.4)
    s.spare(0.7)  # at most max_extra
    assert len(s.next_offers(0.7, av, names)) == 1
    assert len(s.offers) == 3
    # a target's place frees while the uplink has been busy for over a second: the
    # extra place goes back, so only the remaining targets and no newcomer
    first, (piece, _since) = next(iter(s.offers.items()))
    assert s.uploaded(first, piece, 1000, 1000)
    assert s.next_offers(2.0, av, names) == []
    assert len(s.offers) == 2
