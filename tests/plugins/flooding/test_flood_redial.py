"""Who a node dials again and when (sans-IO), and the peers it keeps in its data dir."""

from __future__ import annotations

import itertools
from pathlib import Path

import msgspec
import pytest
import trio
from p2pkit.plugins.flooding._redial import (
    BACKOFF_CAP,
    LEARNED_FAILURES,
    MAX_LOST,
    PEERS_FILE,
    PeerBook,
    Redialer,
)

from p2pkit import NodeConfig, open_node
from tests.plugins.flooding.test_flood_nodes import FAST, PLUGINS, flood_node, until

X, Y = "a" * 64, "b" * 64
X_ADDR, Y_ADDR = ("10.0.0.1", 7700), ("10.0.0.2", 7700)


def nobody(_peer_id: str) -> bool:
    return False


def dial_times(redial: Redialer, until_t: float, step: float = 1.0) -> list[float]:
    """Every instant (on a grid of ``step``) at which something is due; each dial fails."""
    times, now = [], 0.0
    while now <= until_t:
        for addr in redial.due(now, nobody):
            times.append(now)
            redial.dial_failed(addr, now)
        now += step
    return times


def test_a_lost_neighbour_is_redialled_with_backoff_then_forgotten() -> None:
    redial = Redialer(interval=15.0, lost_for=300.0)
    redial.lost(X, X_ADDR, 0.0)
    assert redial.due(14.0, nobody) == []
    assert dial_times(redial, 1000.0) == [15.0, 45.0, 105.0, 225.0]
    assert redial.lost_peers() == {}


def test_a_lost_neighbour_that_came_back_is_not_dialled() -> None:
    redial = Redialer(interval=15.0, lost_for=300.0)
    redial.lost(X, X_ADDR, 0.0)
    assert redial.due(20.0, lambda peer: peer == X) == []
    assert redial.lost_peers() == {}
    redial.lost(Y, Y_ADDR, 0.0)
    redial.connected(Y, {Y_ADDR})  # it dialled us
    assert redial.due(20.0, nobody) == []


def test_redial_for_zero_redials_no_lost_neighbour_nor_remembered_peer() -> None:
    redial = Redialer(interval=15.0, lost_for=0.0)
    redial.lost(X, X_ADDR, 0.0)
    redial.remembered([(Y, Y_ADDR)], 0.0)
    assert dial_times(redial, 1000.0) == []


def test_a_bootstrap_address_is_redialled_while_not_connected_for_good() -> None:
    redial = Redialer(interval=15.0, lost_for=300.0)
    redial.add_bootstrap(X_ADDR, 0.0)
    times = dial_times(redial, 2 * 86_400.0)
    assert times[:4] == [15.0, 45.0, 105.0, 225.0]
    gaps = {b - a for a, b in itertools.pairwise(times[3:])}
    assert gaps == {15.0 * BACKOFF_CAP}  # then at a steady, slow pace, and never given up
    assert times[-1] > 86_400.0


def test_a_connected_bootstrap_address_is_not_dialled_and_one_lost_is_at_once() -> None:
    redial = Redialer(interval=15.0, lost_for=300.0)
    redial.add_bootstrap(X_ADDR, 0.0)
    redial.dial_succeeded(X_ADDR, X, 15.0)
    assert redial.due(500.0, lambda peer: peer == X) == []
    assert redial.due(500.0, nobody) == [X_ADDR]


def test_an_isolated_node_dials_every_bootstrap_address_every_round() -> None:
    redial = Redialer(interval=15.0, lost_for=300.0)
    redial.add_bootstrap(X_ADDR, 0.0)
    for _ in range(5):
        redial.dial_failed(X_ADDR, 0.0)
    assert redial.due(1.0, nobody) == []
    assert redial.due(1.0, nobody, isolated=True) == [X_ADDR]


def test_remembered_peers_are_due_at_once_most_recent_first() -> None:
    book = PeerBook(8)
    book.note(X, X_ADDR, 100.0)
    book.note(Y, Y_ADDR, 200.0)
    redial = Redialer(interval=15.0, lost_for=300.0)
    redial.remembered(book.recent(), 0.0)
    assert redial.due(0.0, nobody) == [Y_ADDR, X_ADDR]
    assert dial_times(redial, 1000.0)[-1] < 300.0  # then tried as lost ones, and forgotten


def test_lost_neighbours_are_bounded() -> None:
    redial = Redialer(interval=15.0, lost_for=300.0)
    for i in range(MAX_LOST + 10):
        redial.lost(f"{i:064x}", ("10.0.0.1", 1000 + i), 0.0)
    assert len(redial.lost_peers()) == MAX_LOST
    assert f"{0:064x}" not in redial.lost_peers()  # the oldest went first


def test_a_learned_address_is_forgotten_after_a_few_failures_with_backoff() -> None:
    redial = Redialer(interval=15.0, lost_for=300.0)
    assert redial.learned_ready(X, 0.0)
    forgotten = [redial.learned_failed(X, 0.0)]
    assert not redial.learned_ready(X, 29.0) and redial.learned_ready(X, 30.0)
    forgotten += [redial.learned_failed(X, 30.0) for _ in range(LEARNED_FAILURES - 1)]
    assert forgotten == [False] * (LEARNED_FAILURES - 1) + [True]
    redial.learned_failed(Y, 0.0)
    redial.connected(Y, {Y_ADDR})  # a success starts the count again
    assert redial.learned_ready(Y, 0.0) and not redial.learned_failed(Y, 0.0)


def test_the_peer_book_keeps_the_most_recent_peers_and_round_trips() -> None:
    book = PeerBook(2)
    assert book.note(X, X_ADDR, 1.0)
    assert not book.note(X, X_ADDR, 2.0)  # only newer: not worth a write
    assert book.note(X, ("10.0.0.9", 7700), 3.0)  # moved
    assert book.note(Y, Y_ADDR, 4.0)
    assert book.note("c" * 64, ("10.0.0.3", 7700), 5.0)
    assert [peer for peer, _ in book.recent()] == ["c" * 64, Y]
    assert not book.note("d" * 64, ("10.0.0.4", 0), 6.0)  # no listen port: not dialable
    again = PeerBook(2)
    again.load(book.encode())
    assert again.recent() == book.recent()
    smaller = PeerBook(1)
    smaller.load(book.encode())
    assert smaller.recent() == book.recent()[:1]


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"version": 2, "peers": []}',
                                  b'{"version": 1, "peers": [{"id": "zz", "host": "h", "port": 1, "seen": 0}]}',
                                  b'{"version": 1, "peers": [{"id": "' + b"a" * 64
                                  + b'", "host": "h", "port": 70000, "seen": 0}]}'])
def test_a_damaged_peer_file_is_refused(data: bytes) -> None:
    with pytest.raises(msgspec.DecodeError):
        PeerBook(8).load(data)


def _kept(data_dir: Path, **flooding: object) -> NodeConfig:
    return NodeConfig.from_mapping({
        "node": {"data_dir": str(data_dir), "port": 0, "host": "127.0.0.1", "repeater": "off"},
        "flooding": {**FAST, **flooding},
    })


async def test_a_node_keeps_its_peers_in_its_data_dir_and_starts_despite_a_damaged_file(
        tmp_path: Path) -> None:
    (tmp_path / PEERS_FILE).write_bytes(b"\xff not json")
    async with flood_node() as y, open_node(_kept(tmp_path), plugins=PLUGINS) as x:
        await x.discovery.bootstrap([("127.0.0.1", y.endpoint.local_address[1])])
        await until(lambda: (tmp_path / PEERS_FILE).exists()
                    and y.id in (tmp_path / PEERS_FILE).read_text())
        book = PeerBook(8)
        book.load((tmp_path / PEERS_FILE).read_bytes())
        assert book.recent() == [(y.id, ("127.0.0.1", y.endpoint.local_address[1]))]
    assert not (tmp_path / (PEERS_FILE + ".tmp")).exists()


async def test_remember_peers_zero_keeps_no_file(tmp_path: Path) -> None:
    async with flood_node() as y, open_node(_kept(tmp_path, remember_peers=0), plugins=PLUGINS) as x:
        assert await x.discovery.bootstrap([("127.0.0.1", y.endpoint.local_address[1])]) == 1
    assert not (tmp_path / PEERS_FILE).exists()


async def test_a_peer_dropped_for_garbage_is_not_redialled() -> None:
    from p2pkit.plugins.flooding import PROTOCOL

    async with flood_node(peer_exchange=False) as a, flood_node(a, peer_exchange=False) as b:
        peer = await until(lambda: a.peers.get(b.id))
        await peer.send(PROTOCOL, b"\xc1 not msgpack")
        await until(lambda: b.peers.get(a.id) is None and a.peers.get(b.id) is None)
        await trio.lowlevel.checkpoint()
        assert a.id not in b.discovery._redial.lost_peers()  # b dropped a
        assert b.id in a.discovery._redial.lost_peers()  # a did nothing wrong: it tries


async def test_a_peer_another_plugin_dropped_is_not_redialled() -> None:
    # the swarm drops a liar with peer.close("sent corrupt pieces") after banning it:
    # flooding took that for a lost neighbour and dialled it again, ~4 times in redial_for
    async with flood_node(peer_exchange=False) as a, flood_node(a, peer_exchange=False) as b:
        peer = await until(lambda: b.peers.get(a.id) if a.id in b.discovery._listening else None)
        peer.close("sent corrupt pieces")  # as SwarmProvider._strike does
        await until(lambda: a.peers.get(b.id) is None)
        await trio.lowlevel.checkpoint()
        assert a.id not in b.discovery._redial.lost_peers()  # b ended it: no redial
        assert b.id in a.discovery._redial.lost_peers()  # a lost it: it tries


def test_the_new_keys_are_checked() -> None:
    from p2pkit.plugins.flooding import FloodingConfig

    with pytest.raises(ValueError, match="remember_peers"):
        FloodingConfig(remember_peers=-1)
    with pytest.raises(ValueError, match="redial_for"):
        FloodingConfig(redial_for=-1.0)
