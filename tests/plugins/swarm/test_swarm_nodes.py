"""Real nodes on loopback: the swarm over the real transport, UDP sockets and stores.

Every wait is bounded by ``trio.fail_after``, so a bug fails a test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import wave
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from p2pkit.plugins.swarm import NoProvidersError, P2PDisabledError, SwarmError, SwarmProvider
from p2pkit.plugins.swarm import _messages as msg

from p2pkit import NodeConfig, NodeStateError, SessionClosed, open_node
from p2pkit._exceptions import RemoteProtocolError
from p2pkit.events import GenericEvent
from p2pkit.hookspecs import hookimpl

SWARM = "p2pkit.plugins.swarm"
BASE = ["p2pkit.plugins.rudp", SWARM]  # no-ops once they are built-ins


def make_wav(path: Path, seconds: float, seed: int = 0, rate: int = 22050) -> Path:
    rng = random.Random(seed)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(rng.randbytes(int(seconds * rate) * 2))
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def port_of(node: Any) -> int:
    return int(node.endpoint.local_address[1])


@asynccontextmanager
async def swarm_node(*bootstrap: Any, plugins: list[Any] | None = None,
                     cfg: dict[str, Any] | None = None, sections: dict[str, Any] | None = None,
                     **node: Any) -> AsyncIterator[Any]:
    config = NodeConfig.from_mapping({
        "node": {"ephemeral": True, "port": 0, "host": "127.0.0.1",
                 "bootstrap": [f"127.0.0.1:{port_of(b)}" for b in bootstrap], **node},
        "cfg": cfg or {}, **(sections or {}),
    })
    async with open_node(config, plugins=[*BASE, *(plugins or [])]) as n:
        yield n


async def until(predicate: Callable[[], Any], limit: float = 20.0) -> Any:
    with trio.fail_after(limit):
        while not (value := predicate()):  # noqa: ASYNC110
            await trio.sleep(0.05)
    return value


async def test_two_nodes_download_verified(tmp_path: Path) -> None:
    media = make_wav(tmp_path / "a.wav", 30, seed=1)  # 1.3 MB, 6 pieces
    async with swarm_node() as seed, swarm_node(seed) as leech:
        manifest = await seed.share(media)
        await until(lambda: len(leech.peers) == 1)
        seen: list[tuple[int, int]] = []
        async with leech.events.subscribe() as events:
            with trio.fail_after(30):
                path = await leech.download(manifest.rid, tmp_path / "out.wav",
                                            progress=lambda d, t: seen.append((d, t)))
            kinds = []
            while True:
                try:
                    kinds.append(events.receive_nowait())
                except trio.WouldBlock:
                    break
        assert sha(path) == sha(media)
        assert seen[-1] == (manifest.size, manifest.size)
        progress = [e for e in kinds if isinstance(e, GenericEvent) and e.kind == "download.progress"]
        assert progress and progress[-1].data["done"] == manifest.size
        assert {"rid", "done", "total", "rate", "peers"} <= set(progress[-1].data)
        assert leech.swarm.bytes_from_peers[seed.id] >= manifest.size
        assert seed.swarm.bytes_to_peers[leech.id] >= manifest.size
        assert leech.fields.get("swarm.bytes_from")[seed.id] >= manifest.size
        # downloading again is instant: the content is complete in the store
        with trio.fail_after(10):
            again = await leech.download(manifest.rid, tmp_path / "again.wav")
        assert sha(again) == sha(media)


async def test_multi_source_and_leechers_trade(tmp_path: Path) -> None:
    media = make_wav(tmp_path / "b.wav", 60, seed=2)  # 2.6 MB, 11 pieces
    async with AsyncExitStack() as stack:
        s1 = await stack.enter_async_context(swarm_node())
        s2 = await stack.enter_async_context(swarm_node(s1))
        m1 = await s1.share(media)
        m2 = await s2.share(media)
        assert m1.rid == m2.rid
        leechers = [await stack.enter_async_context(swarm_node(s1, s2)) for _ in range(3)]
        await until(lambda: all(len(lc.peers) >= 2 for lc in leechers))
        paths: list[Path] = []

        async def fetch(i: int, node: Any) -> None:
            paths.append(await node.download(m1.rid, tmp_path / f"out{i}.wav"))

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for i, node in enumerate(leechers):
                    nursery.start_soon(fetch, i, node)
        assert all(sha(p) == sha(media) for p in paths)
        for lc in leechers:
            got = lc.swarm.bytes_from_peers
            assert got[s1.id] > 0 and got[s2.id] > 0  # both seeders served every leecher
        for node in (s1, s2, *leechers):  # the kept counts agree with the bitfields
            for t in node.swarm.torrents.values():
                assert all(ps.held == sum(ps.pieces or ()) for ps in t.peers.values())


class CorruptSwarm(SwarmProvider):
    """Flips a byte of every 16 KiB leaf it serves (every block is bad: a peer it sent one
    bad block of a piece is not asked for that piece again, so strikes come from several
    pieces); the leaf hashes it sends are computed from what it serves, so they do not
    match the manifest's block roots."""

    def _read_piece(self, rid: str, index: int) -> bytes | None:
        data = super()._read_piece(rid, index)
        if data is None:
            return None
        flipped = bytearray(data)
        flipped[::16384] = bytes(b ^ 1 for b in flipped[::16384])
        return bytes(flipped)


class CorruptBlocksSwarm(CorruptSwarm):
    """Sends the true leaf hashes (they check out) and corrupt blocks: each block is
    caught on arrival, by its own hash."""

    def _leaves_of(self, t: Any, piece: int, data: bytes | None) -> list[bytes] | None:
        return super()._leaves_of(t, piece, SwarmProvider._read_piece(self, t.rid, piece))


def corrupt_plugin(swarm: type[SwarmProvider]) -> Any:
    class CorruptPlugin:
        __name__ = "corrupt"

        @hookimpl
        def p2pkit_capabilities(self) -> dict[str, Any]:
            return {"swarm": swarm}

    return CorruptPlugin()


@pytest.mark.parametrize(("swarm", "caught_by"), [
    (CorruptSwarm, "bad_leaves"), (CorruptBlocksSwarm, "bad_blocks"),
])
async def test_corrupting_peer_gets_strikes_and_is_dropped(
        tmp_path: Path, swarm: type[SwarmProvider], caught_by: str) -> None:
    media = make_wav(tmp_path / "c.wav", 60, seed=3)
    # the honest seeder slow and the liar offering everything at once: the leech asks
    # the liar for several pieces (it is asked for none again once it sent a bad block)
    async with swarm_node(cfg={"upload_limit_kbps": 256}) as honest, \
            swarm_node(honest, plugins=[corrupt_plugin(swarm)], swarm="corrupt",
                       sections={"swarm": {"initial_seeding": False}}) as liar, \
            swarm_node(honest, liar, cfg={}) as leech:
        assert isinstance(liar.swarm, swarm)
        manifest = await honest.share(media)
        await liar.share(media)
        assert manifest.block_roots
        await until(lambda: len(leech.peers) == 2)
        with trio.fail_after(60):
            path = await leech.download(manifest.rid, tmp_path / "out.wav")
        assert sha(path) == sha(media)
        stats = leech.swarm.counters
        assert stats[caught_by] >= 1 and stats["peers_dropped"] == 1
        assert stats["bad_pieces"] + stats["bad_leaves"] + stats["bad_blocks"] >= 3
        assert liar.id in leech.swarm.banned and honest.id not in leech.swarm.banned
        assert leech.swarm.torrents[manifest.rid].strikes[liar.id] >= 3  # banned at 3; blocks
        # it sent before a piece's leaf hashes came may convict it again later
        assert leech.swarm.torrents[manifest.rid].strikes[honest.id] == 0


class PoisonThenSilentSwarm(SwarmProvider):
    """Serves each block of the pieces it shows once, corrupt and without leaf hashes (so
    only the whole piece's hash catches it: one strike), then never answers again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.served: set[tuple[int, int]] = set()

    def _on_request(self, t: Any, ps: Any, m: msg.Request) -> None:
        if (m.piece, m.offset) not in self.served:
            self.served.add((m.piece, m.offset))
            ps.link.queue_upload(t.rid, m)

    def _block_to_send(self, t: Any, m: msg.Request) -> tuple[bytes, Any]:
        data = self._read_piece(t.rid, m.piece) or b""
        return bytes(b ^ 0xFF for b in data[m.offset:m.offset + m.length]), None


async def test_a_piece_its_only_sender_corrupted_is_fetched_from_an_honest_peer_that_came_later(
        tmp_path: Path) -> None:
    """The corrupted piece was kept for the liar (the one peer allowed to send it again)
    and the download stalled for good, an honest seeder connected and unchoking us."""
    media = make_wav(tmp_path / "p.wav", 20, seed=5)
    async with swarm_node(plugins=[corrupt_plugin(PoisonThenSilentSwarm)], swarm="corrupt") as liar, \
            swarm_node() as honest, swarm_node(liar) as leech:
        manifest = await liar.share(media)
        liar.swarm._torrent(manifest.rid).lost = set(range(1, manifest.num_pieces))  # shows piece 0 only
        await honest.share(media)
        await until(lambda: len(leech.peers) == 1)
        async with trio.open_nursery() as nursery:
            done = trio.Event()

            async def download() -> None:
                with trio.fail_after(60):
                    await leech.download(manifest.rid, tmp_path / "out.wav")
                done.set()

            nursery.start_soon(download)
            await until(lambda: leech.swarm.counters["bad_pieces"] >= 1, 30)
            await leech.peers.connect(("127.0.0.1", port_of(honest)))
            with trio.fail_after(60):
                await done.wait()
        assert sha(tmp_path / "out.wav") == sha(media)
        t = leech.swarm.torrents[manifest.rid]
        assert t.strikes[liar.id] >= 1 and t.strikes[honest.id] == 0


class JunkBlocksSwarm(SwarmProvider):
    """Claims every piece, answers no request and sends blocks nobody asked for: one of a
    piece in the file, then one of a piece past its end."""

    def _on_request(self, t: Any, ps: Any, m: msg.Request) -> None:
        pass

    def _on_bitfield(self, peer: Any, m: Any) -> None:
        super()._on_bitfield(peer, m)
        self.node.nursery.start_soon(self._junk, peer, m.rid)

    async def _junk(self, peer: Any, rid: Any) -> None:
        for piece in (0, 4_000_000):
            await peer.send(msg.PROTOCOL, msg.encode(msg.Piece(rid, piece, 0, b"\0" * 16384)))


async def test_blocks_nobody_asked_for_are_not_the_sender_s_rate_and_past_the_end_drop_it(
        tmp_path: Path) -> None:
    """Junk blocks counted as the peer's rate and bytes: it looked like the fastest source
    (requests never moved away from it, upload slots given to it)."""
    media = make_wav(tmp_path / "j.wav", 10, seed=6)
    async with swarm_node() as honest, \
            swarm_node(honest, plugins=[corrupt_plugin(JunkBlocksSwarm)], swarm="corrupt") as liar, \
            swarm_node(honest, liar) as leech:
        manifest = await honest.share(media)
        await liar.share(media)
        await until(lambda: len(leech.peers) == 2)
        with trio.fail_after(60):
            path = await leech.download(manifest.rid, tmp_path / "out.wav")
        assert sha(path) == sha(media)
        await until(lambda: leech.peers.get(liar.id) is None)  # a piece past the end: a protocol error
        assert leech.swarm.bytes_from_peers[liar.id] == 0
        assert leech.swarm.bytes_from_peers[honest.id] >= manifest.size


STORM = 3000


class LostStormSwarm(SwarmProvider):
    """Serves nothing and, once a member's bitfield arrives, says it lost piece 0 —
    STORM times."""

    def _on_request(self, t: Any, ps: Any, m: msg.Request) -> None:
        pass

    def _on_bitfield(self, peer: Any, m: Any) -> None:
        super()._on_bitfield(peer, m)
        self.node.nursery.start_soon(self._storm, peer, m.rid)

    async def _storm(self, peer: Any, rid: Any) -> None:
        lost = msg.encode(msg.Lost(rid, 0))
        with contextlib.suppress(SessionClosed):  # the leech may go first
            for _ in range(STORM):
                await peer.send(msg.PROTOCOL, lost)


async def test_a_storm_of_lost_messages_refills_nobody_s_pipeline(tmp_path: Path) -> None:
    """Every Lost refilled every member's request pipeline (work ∝ pieces × members), also
    when nothing had been asked of the sender: a CPU cost per message a peer chooses."""
    media = make_wav(tmp_path / "l.wav", 20, seed=7)
    async with swarm_node(cfg={"upload_limit_kbps": 400}) as honest, \
            swarm_node(honest, plugins=[corrupt_plugin(LostStormSwarm)], swarm="corrupt") as liar, \
            swarm_node(honest, liar) as leech:
        manifest = await honest.share(media)
        await liar.share(media)
        await until(lambda: len(leech.peers) == 2)
        refills = 0
        fill_all = leech.swarm._fill_all

        def counted(t: Any) -> None:
            nonlocal refills
            refills += 1
            fill_all(t)

        leech.swarm._fill_all = counted
        with trio.fail_after(60):
            path = await leech.download(manifest.rid, tmp_path / "out.wav")
        assert sha(path) == sha(media)
        await until(lambda: leech.swarm.counters["lost_by_peers"] >= STORM)  # (a storm per bitfield)
        assert refills < STORM // 10, refills


async def test_a_download_cancelled_and_started_again_resumes_from_a_seed_done_injecting(
        tmp_path: Path) -> None:
    """The cancel told every member NotInterested; started again, the download told them
    nothing: a seed whose injection was over (another node had everything) never
    unchoked us again, and the download sat at 0 B/s for good."""
    media = make_wav(tmp_path / "r.wav", 40, seed=8)  # 1.8 MB
    async with swarm_node() as seed:
        manifest = await seed.share(media)
        async with swarm_node(seed) as first:  # takes every piece once: injection over
            with trio.fail_after(60):
                await first.download(manifest.rid, tmp_path / "first.wav")
        seed.settings.set("upload_limit_kbps", 400)  # slow enough to cancel half-way
        async with swarm_node(seed) as leech:
            with trio.move_on_after(1.0):
                await leech.download(manifest.rid, tmp_path / "out.wav")
            assert not leech.store.is_complete(manifest.rid)
            with trio.fail_after(60):
                path = await leech.download(manifest.rid, tmp_path / "out.wav")
            assert sha(path) == sha(media)


async def test_disabled_peer_is_not_used(tmp_path: Path) -> None:
    media = make_wav(tmp_path / "d.wav", 20, seed=4)
    async with swarm_node() as s1, swarm_node(s1) as s2, swarm_node(s1, s2) as leech:
        manifest = await s1.share(media)
        await s2.share(media)
        await until(lambda: len(leech.peers) == 2)
        leech.peers.get(s2.id).enabled = False
        with trio.fail_after(30):
            path = await leech.download(manifest.rid, tmp_path / "out.wav")
        assert sha(path) == sha(media)
        assert leech.swarm.bytes_from_peers[s2.id] == 0


async def test_a_share_changed_on_disk_is_refused_once_per_piece_not_in_a_loop(tmp_path: Path) -> None:
    # The seeder whose shared file changed answered every request with a Reject and the
    # downloader asked again at once: both spun a CPU core for as long as they ran.
    (tmp_path / "intact").mkdir()
    media = make_wav(tmp_path / "intact" / "c.wav", 20, seed=6)
    copy = tmp_path / "c.wav"  # the same name: the same manifest, the same rid
    copy.write_bytes(media.read_bytes())
    async with swarm_node() as broken, swarm_node(broken) as leech:
        manifest = await broken.share(copy)
        with copy.open("ab") as f:
            f.write(b"edited")
        await until(lambda: len(leech.peers) == 1)
        with trio.move_on_after(3):
            await leech.download(manifest.rid, tmp_path / "never.wav")
        blocks = -(-manifest.size // (16 * 1024))
        refusals = broken.swarm.counters["lost_sent"] + broken.swarm.counters["rejects_sent"]
        assert 0 < refusals <= blocks, refusals  # each block asked at most once (it was thousands)
        report = leech.swarm.diagnose(manifest.rid)
        assert report is not None and report["nobody"] == report["missing_blocks"] > 0
        # a peer with an intact copy comes: the download completes from it
        async with swarm_node(broken, leech) as intact:
            await intact.share(media)
            with trio.fail_after(30):
                path = await leech.download(manifest.rid, tmp_path / "out.wav")
        assert sha(path) == sha(media)
        assert broken.swarm.counters["lost_sent"] + broken.swarm.counters["rejects_sent"] <= blocks


async def test_a_download_whose_only_provider_lost_the_file_ends_with_a_clear_error(
        tmp_path: Path) -> None:
    # the provider still gave the manifest and answered every request with Lost: the
    # download (and `p2pkit get` without --timeout) sat at 0 for good, saying nothing
    media = make_wav(tmp_path / "c.wav", 10, seed=7)
    async with swarm_node() as broken, swarm_node(broken) as leech:
        manifest = await broken.share(media)
        with media.open("ab") as f:
            f.write(b"edited")
        leech.swarm.cfg.provider_wait_s = 1.0
        with trio.fail_after(20), pytest.raises(NoProvidersError) as caught:
            await leech.download(manifest.rid, tmp_path / "out.wav")
        assert str(caught.value) == (
            f"no peer offered the {manifest.num_pieces} missing pieces of "
            f"{manifest.rid[:12]} for 1 s; 1 peer(s) said they no longer have them")
        assert broken.swarm.counters["lost_sent"] > 0


async def test_a_file_removed_after_its_download_can_be_downloaded_again(tmp_path: Path) -> None:
    # The seeder still counted us a seed (a repeated bitfield only adds pieces) and never
    # served us: the second download waited forever. Leaving the swarm says so (Leave).
    media = make_wav(tmp_path / "again.wav", 10, seed=7)
    async with swarm_node() as seed, swarm_node(seed) as leech:
        manifest = await seed.share(media)
        await until(lambda: len(leech.peers) == 1)
        with trio.fail_after(30):
            await leech.download(manifest.rid, tmp_path / "one.wav")
        await leech.unshare(manifest.rid)
        await until(lambda: seed.swarm.counters["members_left"] == 1)
        with trio.fail_after(30):
            path = await leech.download(manifest.rid, tmp_path / "two.wav")
        assert sha(path) == sha(media)


async def test_a_rid_as_a_person_copies_it_downloads(tmp_path: Path) -> None:
    # capitals and spaces around were fetched and verified, then the export failed: "no
    # content with rid 'BD1609ED3CE6…'" (only the fetch had taken the rid's spelling)
    media = make_wav(tmp_path / "spelt.wav", 3, seed=8)
    async with swarm_node() as seed, swarm_node(seed) as leech:
        manifest = await seed.share(media)
        await until(lambda: len(leech.peers) == 1)
        with trio.fail_after(30):
            path = await leech.download(f" {manifest.rid.upper()} ", tmp_path / "out.wav")
        assert sha(path) == sha(media)


async def test_a_destination_that_cannot_be_written_is_refused_before_fetching(tmp_path: Path) -> None:
    media = make_wav(tmp_path / "dest.wav", 5, seed=8)
    (tmp_path / "notes.txt").write_text("a file")
    async with swarm_node() as seed, swarm_node(seed) as leech:
        manifest = await seed.share(media)
        await until(lambda: len(leech.peers) == 1)
        for dest, why in [(str(tmp_path / "newdir") + "/", "no such directory"),  # wrote a file 'newdir'
                          (tmp_path / "nodir" / "x.wav", "no such directory"),
                          (tmp_path / "notes.txt" / "x.wav", "no such directory")]:
            with pytest.raises(SwarmError, match=why):
                await leech.download(manifest.rid, dest)
        assert manifest.rid not in leech.swarm.torrents  # refused before anything was fetched
        seen: list[tuple[int, int]] = []
        with trio.fail_after(30):
            first = await leech.download(manifest.rid, str(tmp_path) + "/")
            # already here: the progress callback still hears the end
            again = await leech.download(manifest.rid, tmp_path / "again.wav",
                                         progress=lambda d, t: seen.append((d, t)))
        assert first == tmp_path / manifest.name and sha(again) == sha(media)
        assert seen == [(manifest.size, manifest.size)]


async def test_the_library_api_refuses_calls_once_the_node_stopped(tmp_path: Path) -> None:
    media = make_wav(tmp_path / "late.wav", 2, seed=9)
    async with swarm_node() as node:
        manifest = await node.share(media)
    for call in (node.share(media), node.unshare(manifest.rid), node.download(manifest.rid),
                 node.search("late")):
        with pytest.raises(NodeStateError, match="not running"):
            await call
    with pytest.raises(NodeStateError, match="network_files: the node is stopped"):
        node.network_files()  # it answered with the list it had when it stopped


async def test_a_download_running_outside_the_node_s_block_ends_when_the_node_stops(
        tmp_path: Path) -> None:
    """Started in the caller's own nursery, a download waited for ever once the node it
    ran on had stopped (search and connect raised)."""
    media = make_wav(tmp_path / "slow.wav", 20, seed=4)
    (tmp_path / "out").mkdir()
    outcomes: dict[str, BaseException] = {}

    async def download(node: Any, rid: str, name: str) -> None:
        try:
            await node.download(rid, tmp_path / "out" / name)
        except NodeStateError as exc:
            outcomes[name] = exc

    async with swarm_node(cfg={"upload_limit_kbps": 64}) as seeder:  # ~14 s for the file
        manifest = await seeder.share(media)
        with trio.fail_after(30):
            async with trio.open_nursery() as outside, swarm_node(seeder) as waiting, \
                    swarm_node(seeder) as fetching:
                # one waits for a provider of content nobody has, one is mid-transfer
                outside.start_soon(download, waiting, "cd" * 32, "nobody.wav")
                outside.start_soon(download, fetching, manifest.rid, "slow.wav")
                await until(lambda: manifest.rid in fetching.swarm.torrents
                            and fetching.swarm.torrents[manifest.rid].done_bytes() > 0)
    assert sorted(outcomes) == ["nobody.wav", "slow.wav"]
    assert all("the node stopped" in str(exc) for exc in outcomes.values())
    assert list((tmp_path / "out").iterdir()) == []


async def test_a_name_that_cannot_be_written_where_it_goes_is_refused_before_any_piece(
        tmp_path: Path) -> None:
    # "-o DIR/" holding a directory of the file's name: the whole file was downloaded,
    # and only then refused
    media = make_wav(tmp_path / "clip.wav", 10, seed=8)
    (tmp_path / "out" / "clip.wav").mkdir(parents=True)
    async with swarm_node() as seeder, swarm_node(seeder) as leech:
        manifest = await seeder.share(media)
        with trio.fail_after(20), pytest.raises(SwarmError, match="exists and is not a regular file"):
            await leech.download(manifest.rid, tmp_path / "out")
        assert sum(leech.swarm.bytes_from_peers.values()) == 0


async def test_p2p_disabled_is_a_clear_error(tmp_path: Path) -> None:
    async with swarm_node(cfg={"p2p_enabled": False}) as node:
        with pytest.raises(P2PDisabledError, match="p2p_enabled"):
            await node.download("ab" * 32)


async def test_no_provider_is_a_clear_error() -> None:
    async with swarm_node() as lonely:
        lonely.swarm.cfg.provider_wait_s = 1.0
        with trio.fail_after(10), pytest.raises(NoProvidersError, match="no peer offered"):
            await lonely.download("cd" * 32)


async def test_garbage_from_a_peer_drops_only_that_peer(tmp_path: Path) -> None:
    async with swarm_node() as a, swarm_node(a) as b:
        await until(lambda: len(a.peers) == 1)
        peer = b.peers.get(a.id)
        await peer.send("swarm", b"\x93\xa2zz\x01")  # a tag nobody knows
        await until(lambda: len(a.peers) == 0)
        with pytest.raises(RemoteProtocolError):
            msg.decode(b"\x93\xa2zz\x01")


async def test_origin_injects_a_piece_at_a_time_until_all_are_out_then_everything(
        tmp_path: Path) -> None:
    """Initial seeding: a leecher first sees at most one piece of the origin (the one it is
    being sent), so the origin's uplink carries each piece once; once every piece is out,
    all of them are revealed and every download completes."""
    media = make_wav(tmp_path / "c.wav", 60, seed=3)  # 2.6 MB, 11 pieces
    first_bitfields: dict[str, int] = {}
    original = SwarmProvider._on_bitfield

    def spy(self: SwarmProvider, peer: Any, m: msg.Bitfield) -> None:
        if peer.id not in first_bitfields and m.rid.hex() == rid:
            first_bitfields[peer.id] = sum(msg.unpack_bits(m.bits, 11))
        original(self, peer, m)

    async with AsyncExitStack() as stack:
        seed = await stack.enter_async_context(swarm_node())
        rid = (await seed.share(media)).rid
        leechers = [await stack.enter_async_context(swarm_node(seed)) for _ in range(3)]
        await until(lambda: all(len(lc.peers) >= 1 for lc in leechers))
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(SwarmProvider, "_on_bitfield", spy)
            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for node in leechers:
                        nursery.start_soon(node.swarm.fetch, rid)
        assert all(node.store.is_complete(rid) for node in leechers)
        assert first_bitfields[seed.id] <= 1  # what a leecher first saw of the origin
        # the origin learns of the last pieces from the leechers' Haves, which may still be
        # on their way when the downloads return (seen once in 25 runs)
        await until(lambda: seed.swarm.counters["initial_seeding_done"] == 1)


