"""Real nodes on loopback: the flooding plugin over the real transport and UDP sockets.

Timers are shortened (announce every 0.5 s, expiry 2 s) so the tests run in seconds of
real time; every wait is bounded by ``trio.fail_after`` so a bug fails instead of hanging.
"""

from __future__ import annotations

import hashlib
import time
import wave
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import trio
from p2pkit.plugins.flooding import PROTOCOL, Entry, FloodCore, Hits, HitsBody
from p2pkit.plugins.flooding._core import HITS_CONTEXT, Output
from p2pkit.plugins.flooding._messages import encode

from p2pkit import ContentAdded, ContentRemoved, Identity, NodeConfig, PeerDown, hookimpl, open_node

FLOODING = "p2pkit.plugins.flooding"
RUDP = "p2pkit.plugins.rudp"
PLUGINS = [RUDP, FLOODING]
FAST = {
    "announce_interval": 0.5, "entry_expiry": 2.0, "peer_down_grace": 1.0,
    "search_timeout": 3.0, "search_idle": 0.5, "pex_interval": 0.3, "bootstrap_timeout": 20.0,
    "connect_timeout": 5.0,
}


# The nodes load rudp and flooding explicitly, so these tests run whether or not they are
# built-in plugins yet (a plugin already registered is not registered twice).


def make_wav(path: Path, freq: float = 440.0, seconds: float = 0.5) -> Path:
    t = np.arange(int(seconds * 8000)) / 8000
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((np.sin(2 * np.pi * freq * t) * 12000).astype("<i2").tobytes())
    return path


def port_of(node: Any) -> int:
    return int(node.endpoint.local_address[1])


@asynccontextmanager
async def flood_node(*bootstrap: Any, **flooding: Any) -> AsyncIterator[Any]:
    config = NodeConfig.from_mapping({
        "node": {"ephemeral": True, "port": 0, "host": "127.0.0.1",
                 "bootstrap": [f"127.0.0.1:{port_of(b)}" for b in bootstrap]},
        "flooding": {**FAST, **flooding},
    })
    async with open_node(config, plugins=PLUGINS) as node:
        yield node


async def until(predicate: Callable[[], Any], limit: float = 15.0) -> Any:
    """Poll ``predicate`` until it is truthy; fail the test after ``limit`` seconds.
    (Polling on purpose: the state lives in several nodes, no single event covers it.)"""
    with trio.fail_after(limit):
        while not (value := predicate()):  # noqa: ASYNC110
            await trio.sleep(0.05)
    return value


def rids(node: Any) -> set[str]:
    return {f["rid"] for f in node.network_files()}


@asynccontextmanager
async def line(**flooding: Any) -> AsyncIterator[tuple[Any, Any, Any]]:
    """A - B - C, without peer exchange so C only hears of A through B."""
    flooding.setdefault("peer_exchange", False)
    async with flood_node(**flooding) as a, flood_node(a, **flooding) as b, \
            flood_node(b, **flooding) as c:
        await until(lambda: len(b.peers) == 2 and len(c.peers) == 1)
        yield a, b, c


async def test_nodes_of_one_trio_run_share_one_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ages are checked against seq on a wall clock that runs with trio's. Each node took
    its own as it started; in the simulator, where nodes start at different virtual and
    wall times, every age then looked seconds off and runs stopped being reproducible."""
    import time

    wall = iter(range(1_000_000, 2_000_000, 1000))  # each reading 1000 s after the last
    monkeypatch.setattr(time, "time", lambda: float(next(wall)))
    async with flood_node() as a:
        await trio.sleep(0.01)
        async with flood_node() as b:
            assert a.discovery.core.epoch == b.discovery.core.epoch is not None


async def test_what_is_queued_for_a_peer_that_does_not_read_is_bounded_in_bytes() -> None:
    """The send queue was bounded in messages only: 256 announces of up to 1 MiB each
    waited for a peer that never read."""
    from p2pkit.plugins.flooding._discovery import MAX_QUEUED_BYTES

    async with flood_node() as a:
        disc = a.discovery
        send, receive = trio.open_memory_channel[bytes](256)
        disc._queues["reader" * 8] = send
        disc._queued_bytes["reader" * 8] = 0
        big = b"x" * (1 << 20)
        disc._send_all([("reader" * 8, big)] * 256)
        queued = receive.statistics().current_buffer_used
        assert queued * len(big) <= MAX_QUEUED_BYTES < (queued + 1) * len(big)
        assert disc.dropped_sends == 256 - queued
        del disc._queues["reader" * 8]
        send.close()
        receive.close()


async def test_a_done_after_an_answer_the_full_queue_dropped_is_not_sent() -> None:
    """A Hits dropped on a full queue and the Done after it, which fitted: the asker's
    search ended at once, without that answer."""
    from p2pkit.plugins.flooding._messages import Done, encode

    async with flood_node() as a:
        disc = a.discovery
        peer = "asker" * 13
        send, receive = trio.open_memory_channel[bytes](1)
        disc._queues[peer] = send
        disc._queued_bytes[peer] = 0
        qid = bytes(range(16))
        hits = encode(disc.core.make_hits(qid, []))
        disc._send_all([(peer, b"filler"), (peer, hits), (peer, encode(Done(qid=qid)))])
        assert disc.dropped_sends == 1 and disc.core.counters["done_withheld"] == 1
        assert receive.receive_nowait() == b"filler"
        disc._send_all([(peer, encode(Done(qid=qid)))])  # later, with room: still not
        disc._send_all([(peer, encode(Done(qid=bytes(16))))])  # another query's goes
        assert msgspec.msgpack.decode(receive.receive_nowait())["qid"] == bytes(16)
        with pytest.raises(trio.WouldBlock):
            receive.receive_nowait()
        del disc._queues[peer]
        send.close()
        receive.close()


async def test_share_on_a_is_seen_on_c_and_unshare_propagates(tmp_path: Path) -> None:
    async with line() as (a, _b, c), c.events.subscribe() as events:
        manifest = await a.share(make_wav(tmp_path / "sunset.wav"), title="Sunset Walk",
                                 description="Waves at dusk")
        row = await until(lambda: next((f for f in c.network_files() if f["rid"] == manifest.rid), None))
        assert row["providers"] == [a.id] and not row["local"]
        assert (row["title"], row["description"], row["category"]) == ("Sunset Walk", "Waves at dusk", "audio")
        assert row["size"] == manifest.size and row["name"] == "sunset.wav"
        assert await c.discovery.find_providers(manifest.rid) == [a.id]
        assert c.discovery.address_of(a.id) == a.endpoint.local_address
        assert c.peers.get(a.id) is None  # no shortcut: it came through B

        with pytest.raises(ValueError, match="not a content id"):
            await a.unshare(manifest.rid[:12])
        assert await a.unshare(manifest.rid.upper())  # as copied from anywhere
        assert not await a.unshare(manifest.rid)  # gone already
        await until(lambda: manifest.rid not in rids(c))
        seen: list[ContentAdded | ContentRemoved] = []
        while len(seen) < 2:
            with trio.fail_after(5):
                event = await events.receive()
            if isinstance(event, ContentAdded | ContentRemoved) and event.rid == manifest.rid:
                seen.append(event)
        assert [type(e) for e in seen] == [ContentAdded, ContentRemoved]
        assert not any(e.local for e in seen)


async def test_search_from_c_finds_the_file_on_a(tmp_path: Path) -> None:
    async with line() as (a, b, c):
        wanted = await a.share(make_wav(tmp_path / "birds.wav", 660), description="Morning BIRDSONG")
        await b.share(make_wav(tmp_path / "rain.wav", 330), title="Rain")
        with trio.fail_after(10):
            results = await c.search("birdsong")
        assert [r["rid"] for r in results] == [wanted.rid]
        assert results[0]["providers"] == [a.id]
        assert a.discovery.core.counters["queries_in"] >= 1  # the query travelled two hops
        with trio.fail_after(10):
            assert {r["title"] for r in await c.search("")} >= {"Rain", "birds"}


async def test_a_relay_that_forges_an_answer_is_dropped_and_never_listed(tmp_path: Path) -> None:
    """B relays C's query but also answers that A has a file A never shared. C checks the
    signature, drops B (as for a forged announce) and lists only what A really has."""
    async with line() as (a, b, c), c.events.subscribe() as events:
        wanted = await a.share(make_wav(tmp_path / "owl.wav"), title="Night Owl")
        await until(lambda: wanted.rid in rids(c))  # announced: a known match of the search
        # B never says its part of the flood is over, so C's search is still open (it
        # ends 0.5 s after A's answer) when the forgery comes
        b.discovery.core._on_done = lambda sender, done: Output()  # type: ignore[method-assign]
        async with trio.open_nursery() as nursery:
            found: list[dict[str, Any]] = []

            async def search() -> None:
                found.extend(await c.search("owl"))

            nursery.start_soon(search)
            qid = await until(lambda: next(iter(b.discovery.core._reverse), None))
            fake = Entry(rid="f" * 64, name="owl.exe", size=1, title="Night Owl (full)")
            body = encode(HitsBody(qid=qid, provider=a.id, entries=[fake]))
            forged = Hits(qid=qid, provider=a.id, public_key=b.identity.public_key, body=body,
                          signature=b.identity.sign(HITS_CONTEXT + body))
            await b.peers.get(c.id).send(PROTOCOL, encode(forged))
            with trio.fail_after(10):
                while True:
                    event = await events.receive()
                    if isinstance(event, PeerDown) and event.peer_id == b.id:
                        break
        assert "protocol error" in event.reason and "hits" in event.reason
        assert c.discovery.core.counters["hits_forged"] == 1
        assert [(r["rid"], r["providers"]) for r in found] == [(wanted.rid, [a.id])]


class VersionOneFlood:
    """What a node from before signed answers looks like on the wire: it speaks ``flood``
    (version 1), not ``flood/2``. It records what it receives."""

    name = "flood"

    def __init__(self) -> None:
        self.received: list[bytes] = []

    async def handle(self, peer: Any, payload: bytes) -> None:
        self.received.append(payload)

    @hookimpl
    def p2pkit_message_protocols(self, node: Any) -> Iterable[Any]:
        return [self]


async def test_an_old_flood_peer_and_a_new_one_ignore_each_other_without_dropping(
        tmp_path: Path) -> None:
    old = VersionOneFlood()
    config = NodeConfig.from_mapping({"node": {"ephemeral": True, "port": 0, "host": "127.0.0.1",
                                               "disable": ["flooding", "swarm", "store"]}})
    async with open_node(config, plugins=[RUDP, old]) as v1, flood_node(v1) as v2:
        v1_peers = v1.peers  # a local, so the lambda below sees it narrowed
        assert v1_peers is not None
        await v2.share(make_wav(tmp_path / "new.wav"))
        peer = await until(lambda: v1_peers.get(v2.id))
        assert "flood" not in peer.protocols and PROTOCOL in peer.protocols
        assert "flood" in (await until(lambda: v2.peers.get(v1.id))).protocols
        # the new node finds no discovery peer in the old one
        assert not await v2.discovery.wait_settled(trio.current_time() + 1.0)
        # a version-1 answer (unsigned hits) is an unknown protocol to the new node, not garbage
        unsigned = msgspec.msgpack.encode({"t": "hits", "qid": b"q" * 16, "provider": "a" * 64,
                                           "entries": []})
        unknown = v2.peers.unknown_protocol
        await peer.send("flood", unsigned)
        await until(lambda: v2.peers.unknown_protocol > unknown)
        assert v2.peers.get(v1.id) is not None and v1_peers.get(v2.id) is not None
        assert old.received == []  # nothing flood/2 reached the old node either
        assert v2.discovery.core.counters["malformed"] == 0


async def test_a_node_that_vanishes_expires(tmp_path: Path) -> None:
    async with flood_node(peer_exchange=False) as b, flood_node(b, peer_exchange=False) as c:
        async with flood_node(b, peer_exchange=False) as a:
            manifest = await a.share(make_wav(tmp_path / "gone.wav"))
            await until(lambda: manifest.rid in rids(c))
            a.stop_grace = 0.0  # as if killed: no farewell
        # A stopped without a word; B saw PeerDown, C only sees no more re-announces.
        await until(lambda: manifest.rid not in rids(c))
        assert c.discovery.core.counters["expired"] >= 1


async def test_a_node_that_stops_takes_its_files_off_the_network_at_once(tmp_path: Path) -> None:
    # entry_expiry and the peer-down grace far beyond the wait: only a farewell can do it
    slow = {"peer_exchange": False, "entry_expiry": 600.0, "peer_down_grace": 600.0}
    async with flood_node(**slow) as b, flood_node(b, **slow) as c:
        async with flood_node(b, **slow) as a:
            manifest = await a.share(make_wav(tmp_path / "left.wav"))
            await until(lambda: manifest.rid in rids(c))
        await until(lambda: manifest.rid not in rids(b) and manifest.rid not in rids(c), limit=5.0)
        assert b.discovery.core.counters["expired"] == c.discovery.core.counters["expired"] == 0


async def test_a_late_joiner_gets_the_current_list(tmp_path: Path) -> None:
    async with flood_node(peer_exchange=False) as a:
        manifest = await a.share(make_wav(tmp_path / "early.wav"))
        async with flood_node(a, peer_exchange=False) as late:
            await until(lambda: manifest.rid in rids(late))


async def test_peer_exchange_connects_c_to_a_directly() -> None:
    async with flood_node() as a, flood_node(a) as b, flood_node(b) as c:
        await until(lambda: c.peers.get(a.id) is not None and a.peers.get(c.id) is not None)
        assert b.discovery.core.known_peers  # addresses were gossiped


async def test_bootstrap_retries_until_the_peer_starts() -> None:
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = NodeConfig.from_mapping({
        "node": {"ephemeral": True, "port": 0, "host": "127.0.0.1",
                 "bootstrap": [f"127.0.0.1:{port}"]},
        "flooding": FAST,
    })
    async with open_node(config, plugins=PLUGINS) as early:
        early_peers = early.peers  # a local, so the lambda below sees it narrowed
        assert early_peers is not None
        await trio.sleep(1.0)  # it has tried and failed by now
        late_config = NodeConfig.from_mapping({
            "node": {"ephemeral": True, "port": port, "host": "127.0.0.1"}, "flooding": FAST})
        async with open_node(late_config, plugins=PLUGINS) as late:
            await until(lambda: early_peers.get(late.id) is not None)


async def test_lan_beacons_connect_nodes_without_bootstrap() -> None:
    async with flood_node(lan_discovery=True, lan_port=1) as a, flood_node(
        lan_discovery=True, lan_address="127.0.0.1", lan_port=port_of(a), lan_interval=0.2,
    ) as b:
        await until(lambda: a.peers.get(b.id) is not None)
        assert a.discovery.lan_beacons_in >= 1


async def test_a_peer_sending_garbage_is_dropped_and_the_node_goes_on() -> None:
    async with flood_node(peer_exchange=False) as a, flood_node(a, peer_exchange=False) as b, \
            b.events.subscribe() as events:
        peer = await until(lambda: a.peers.get(b.id))
        await peer.send(PROTOCOL, b"\xc1 not msgpack")
        with trio.fail_after(10):
            while True:
                event = await events.receive()
                if isinstance(event, PeerDown) and event.peer_id == a.id:
                    break
        assert "protocol error" in event.reason
        assert b.state.value == "running"


async def test_search_without_peers_returns_local_matches_at_once(tmp_path: Path) -> None:
    async with flood_node() as a:
        manifest = await a.share(make_wav(tmp_path / "solo.wav"), title="Solo Tune")
        with trio.fail_after(1):
            (row,) = await a.search("TUNE")
        assert row["rid"] == manifest.rid and row["local"] and row["providers"] == [a.id]


async def test_the_documented_example_runs(tmp_path: Path) -> None:
    from docs.examples.flooding_three_nodes import main

    result = await main(tmp_path)
    assert result["listed"]["title"] == "Harbour Bells"
    assert result["listed"]["providers"] == [result["a"]]
    assert [f["title"] for f in result["found"]] == ["Harbour Bells"]


async def test_a_default_node_discovers_by_flooding() -> None:
    config = NodeConfig.from_mapping({"node": {"ephemeral": True, "port": 0, "host": "127.0.0.1"}})
    async with open_node(config) as node:
        assert node.provider_names["discovery"] == "flooding"
        assert node.fields.get("flood.files") == 0


async def test_a_flood_of_lan_beacons_is_bounded_in_memory_and_dials() -> None:
    """Anyone who can send UDP to the node's port can send beacons with made-up ids and
    ports: what the node remembers and how many dials it starts stay bounded."""
    from p2pkit.plugins.flooding._core import MAX_KNOWN_PEERS
    from p2pkit.plugins.flooding._messages import LanBeacon, encode_beacon

    async with flood_node(lan_discovery=True, lan_port=1, lan_interval=1000.0) as a:
        tasks_before = len(a.nursery.child_tasks)
        batch = [(encode_beacon(LanBeacon(id=f"{i:064x}", port=1000 + i)), ("192.0.2.1", 7700))
                 for i in range(1, 3 * MAX_KNOWN_PEERS)]
        a.discovery._on_lan_datagrams(batch, trio.current_time())
        a.discovery._on_lan_datagrams(batch[::-1], trio.current_time())
        # maintenance rounds meanwhile (every pex_interval) dial known peers too: the
        # dials already under way count against the same bound
        a.discovery._connect_to_known()
        a.discovery._connect_to_known()
        await trio.lowlevel.checkpoint()
        assert a.discovery.lan_beacons_in == 2 * len(batch)
        assert len(a.discovery.core.known_peers) <= MAX_KNOWN_PEERS
        assert len(a.nursery.child_tasks) - tasks_before <= a.discovery.config.target_peers


async def test_a_node_restarted_with_its_clock_set_back_is_heard_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """seq follows the wall clock; set back an hour (a time sync correcting a clock that
    ran fast), a restarted node announced a smaller seq than its last one and every peer
    ignored it as old news until its tombstone lapsed (2 x entry_expiry + 300 s). The
    last seq is kept in the data dir."""
    from p2pkit.plugins.flooding import _discovery

    media = make_wav(tmp_path / "back.wav")
    slow = {**FAST, "peer_exchange": False, "entry_expiry": 600.0, "peer_down_grace": 600.0}

    def persistent(*bootstrap: Any) -> NodeConfig:
        return NodeConfig.from_mapping({
            "node": {"data_dir": str(tmp_path / "a"), "port": 0, "host": "127.0.0.1",
                     "repeater": "off",
                     "bootstrap": [f"127.0.0.1:{port_of(b)}" for b in bootstrap]},
            "flooding": slow,
        })

    async with flood_node(**slow) as b:
        async with open_node(persistent(b), plugins=PLUGINS) as a:
            manifest = await a.share(media)
            await until(lambda: manifest.rid in rids(b))
        await until(lambda: manifest.rid not in rids(b))  # its farewell
        real = _discovery._epoch()
        monkeypatch.setattr(_discovery, "_epoch", lambda: real - 3600.0)
        async with open_node(persistent(b), plugins=PLUGINS) as a:
            await until(lambda: manifest.rid in rids(b), limit=5.0)  # shared again from its store


@pytest.mark.parametrize("text", ["", "12x", "-5", "９９", "1" * 40, "\x00",
                                  "99999999999999999999", str(1 << 63)])
def test_a_damaged_seq_file_is_ignored(tmp_path: Path, text: str) -> None:
    from p2pkit.plugins.flooding._discovery import _read_seq

    (tmp_path / "flooding.seq").write_text(text)
    assert _read_seq(tmp_path / "flooding.seq") == 0
    (tmp_path / "flooding.seq").write_text("1764000000123")
    assert _read_seq(tmp_path / "flooding.seq") == 1764000000123
    assert _read_seq(tmp_path / "missing") == 0 and _read_seq(None) == 0


async def test_a_kept_seq_far_ahead_of_the_clock_is_not_followed(tmp_path: Path) -> None:
    """A seq kept from a clock that ran years fast held every later seq there (it only
    grows): never aged, never refused as a replay. A day ahead of the clock at most."""
    from p2pkit.plugins.flooding._discovery import SEQ_AHEAD_MS, _epoch

    (tmp_path / "flooding.seq").write_text(str(4_102_444_800_000))  # 2100-01-01
    config = NodeConfig.from_mapping({"node": {"data_dir": str(tmp_path), "port": 0,
                                               "host": "127.0.0.1", "repeater": "off"},
                                      "flooding": FAST})
    async with open_node(config, plugins=PLUGINS) as node:
        wall_ms = (trio.current_time() + _epoch()) * 1000
        assert node.discovery.core.seq <= wall_ms + SEQ_AHEAD_MS


async def test_a_newcomer_gets_more_lists_than_the_queue_to_it_holds() -> None:
    # the lists a new neighbour lacked were queued at once: past queue_size (256) the
    # rest were dropped, and came only with their origins' next announces
    count = 300
    async with flood_node(entry_expiry=60.0, announce_interval=30.0) as a:
        core = a.discovery.core
        for i in range(count):
            ident = Identity.from_seed(i.to_bytes(4, "big") + b"\x02" * 28)
            origin = FloodCore(ident.node_id, ident.public_key, ident.sign)
            origin.set_local([Entry(rid=hashlib.sha256(b"%d" % i).hexdigest(), name=f"f{i}.wav", size=1)])
            announce = origin.make_announce(seq_floor=int(time.time() * 1000))  # seq: the wall clock
            core.receive(ident.node_id, "10.0.0.2", encode(announce), trio.current_time(), [])
        assert len(core.records) == count
        async with flood_node(a, entry_expiry=60.0, announce_interval=30.0) as b:
            await until(lambda: len(b.network_files()) == count)
        assert a.discovery.dropped_sends == 0


def _kept_node(data_dir: Path, port: int = 0, *bootstrap: Any, **flooding: Any) -> NodeConfig:
    return NodeConfig.from_mapping({
        "node": {"data_dir": str(data_dir), "port": port, "host": "127.0.0.1", "repeater": "off",
                 "bootstrap": [f"127.0.0.1:{port_of(b)}" for b in bootstrap]},
        "flooding": {**FAST, **flooding},
    })


async def test_a_restarted_node_is_found_again_by_neighbours_that_have_each_other(
        tmp_path: Path) -> None:
    """X shares; Y and Z bootstrap from X and meet by peer exchange. X stops, stays away
    for several peer-exchange rounds and dial timeouts, and comes back on the same data
    dir and port without --bootstrap. Y redialled the bootstrap address only when it had
    no peer at all, peer exchange forgot X at its first failed dial, and X remembered no
    one: X's files were gone from the network for good."""
    media = make_wav(tmp_path / "x.wav")
    quick = {"connect_timeout": 1.0}
    stop, stopped = trio.Event(), trio.Event()

    async def run_x(*, task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
        async with open_node(_kept_node(tmp_path / "x", 0, **quick), plugins=PLUGINS) as node:
            task_status.started(node)
            await stop.wait()
        stopped.set()

    async with trio.open_nursery() as nursery:
        x = await nursery.start(run_x)
        x_id, x_port = x.id, port_of(x)
        manifest = await x.share(media)
        async with flood_node(x, **quick) as y, flood_node(x, **quick) as z:
            await until(lambda: y.peers.get(z.id) is not None
                        and manifest.rid in rids(y) and manifest.rid in rids(z))
            stop.set()  # X stops
            await stopped.wait()
            await until(lambda: manifest.rid not in rids(y) and manifest.rid not in rids(z))
            # away for longer than a dial timeout and many peer-exchange rounds: every
            # dial Y and Z made to X meanwhile failed
            await trio.sleep(4 * quick["connect_timeout"])
            assert y.peers.get(z.id) is not None and y.peers.get(x_id) is None
            async with open_node(_kept_node(tmp_path / "x", x_port, **quick), plugins=PLUGINS) as x:
                assert x.id == x_id
                await until(lambda: manifest.rid in rids(y) and manifest.rid in rids(z), limit=30.0)
                await until(lambda: y.peers.get(x_id) is not None and z.peers.get(x_id) is not None,
                            limit=30.0)


async def test_a_restarted_node_dials_the_peers_it_remembers(tmp_path: Path) -> None:
    """Restarted on another port and without --bootstrap, nobody can find X at its old
    address: X dials the peers it was connected to, kept in its data dir."""
    media = make_wav(tmp_path / "x.wav")
    async with flood_node() as y:
        async with open_node(_kept_node(tmp_path / "x", 0, y), plugins=PLUGINS) as x:
            x_id = x.id
            await until(lambda: y.peers.get(x_id) is not None)
        await until(lambda: y.peers.get(x_id) is None)
        async with open_node(_kept_node(tmp_path / "x", 0), plugins=PLUGINS) as x:
            manifest = await x.share(media)
            await until(lambda: manifest.rid in rids(y))
            assert y.peers.get(x_id) is not None
        assert (tmp_path / "x" / "flooding.peers").exists()
