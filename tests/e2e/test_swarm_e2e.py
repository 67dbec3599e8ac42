"""End-to-end: real ``p2pkit`` processes on 127.0.0.1 share, list and download media.

Each test starts its own nodes with temporary data directories and no repeater socket,
and every wait is bounded (a hang is a failure). Downloads are slowed where a test must
act in the middle of one (``cfg.upload_limit_kbps`` on the seeders).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._harness import Background, NodeProc, files, make_wav, run, sha256, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def procs() -> Iterator[list[NodeProc]]:
    started: list[NodeProc] = []
    yield started
    for p in started:
        p.stop()


def node_id(p: NodeProc) -> str:
    return p.wait_for(r"p2pkit node ([0-9a-f]{64})").group(1)


def get(rid: str, port: int, out: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run(["get", rid, "--bootstrap", f"127.0.0.1:{port}", "-o", str(out), "--quiet",
                "--timeout", str(timeout), *extra], timeout=timeout + 30)


def sources(output: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"from peer ([0-9a-f]{64}): (\d+) bytes", output)}


def test_share_list_and_download_across_three_nodes(tmp_path: Path, procs: list[NodeProc]) -> None:
    media = make_wav(tmp_path / "song.wav", 30, seed=1)  # 1.3 MB
    seeder = NodeProc(tmp_path, "seeder", share=[media])
    procs.append(seeder)
    (rid,) = seeder.shared_rids()
    relay = NodeProc(tmp_path, "relay", bootstrap=[seeder.port])
    procs.append(relay)

    listed = wait_until(lambda: [f for f in files(relay.port) if f["rid"] == rid], 60, "the file listed")
    assert listed[0]["name"] == "song.wav" and listed[0]["category"] == "audio"
    assert listed[0]["size"] == media.stat().st_size

    out = tmp_path / "downloaded.wav"
    result = get(rid, relay.port, out)  # the downloader knows only the relay
    assert result.returncode == 0, result.stderr
    assert sha256(out) == sha256(media)
    assert "verified" in result.stderr
    assert node_id(seeder) in sources(result.stderr)


def test_a_finished_get_leaves_no_provider_behind(tmp_path: Path, procs: list[NodeProc]) -> None:
    """``get`` runs its own node, which offers what it downloads while it runs; when it
    exits, its farewell takes it off the list at once (before: a provider that was gone,
    listed until its announce expired)."""
    media = make_wav(tmp_path / "once.wav", 3, seed=4)
    seeder = NodeProc(tmp_path, "seeder", share=[media])
    procs.append(seeder)
    (rid,) = seeder.shared_rids()
    result = get(rid, seeder.port, tmp_path / "once-out.wav")
    assert result.returncode == 0, result.stderr
    (listed,) = [f for f in files(seeder.port) if f["rid"] == rid]
    assert listed["providers"] == [node_id(seeder)]


def test_unknown_content_fails_clearly(tmp_path: Path, procs: list[NodeProc]) -> None:
    seeder = NodeProc(tmp_path, "seeder")
    procs.append(seeder)
    seeder.wait_for("p2pkit node")
    result = run(["get", "ab" * 32, "--bootstrap", f"127.0.0.1:{seeder.port}", "--quiet",
                  "--set", "swarm.provider_wait_s=3"], timeout=60)
    assert result.returncode == 1
    assert "no peer offered" in result.stderr
    bad = run(["get", "not-a-rid", "--bootstrap", f"127.0.0.1:{seeder.port}"], timeout=60)
    assert bad.returncode == 2 and "content id" in bad.stderr


def test_a_download_cut_short_says_what_it_was_waiting_for(tmp_path: Path, procs: list[NodeProc]) -> None:
    """A seeder limited to 100 KiB/s and an 8 s ``--timeout`` for 4.4 MB (44 s at that
    rate): ``get`` exits 1 and its error line says how many blocks were missing and what
    they waited for — asked of the one peer, the slow one."""
    media = make_wav(tmp_path / "long.wav", 100, seed=6)  # 4.4 MB
    seeder = NodeProc(tmp_path, "seeder", share=[media], args=["--set", "cfg.upload_limit_kbps=100"])
    procs.append(seeder)
    (rid,) = seeder.shared_rids()
    result = get(rid, seeder.port, tmp_path / "out.wav", timeout=8)
    assert result.returncode == 1, result.stderr
    line = re.search(r"did not finish within 8 s; (\d+) blocks missing: (\d+) asked of ([01]) peer",
                     result.stderr)
    assert line, result.stderr
    assert int(line.group(2)) <= int(line.group(1)) <= -(-media.stat().st_size // 16384)
    assert int(line.group(1)) > 0
    assert not (tmp_path / "out.wav").exists()


def test_unshare_propagates(tmp_path: Path, procs: list[NodeProc]) -> None:
    media = make_wav(tmp_path / "clip.wav", 5, seed=2)
    owner = NodeProc(tmp_path, "owner", command=[sys.executable, "-m", "tests.e2e.node_driver"])
    procs.append(owner)
    owner.wait_for(r'"ready"')
    other = NodeProc(tmp_path, "other", bootstrap=[owner.port])
    procs.append(other)
    assert owner.proc.stdin is not None
    owner.proc.stdin.write(f"share {media}\n".encode())
    owner.proc.stdin.flush()
    (rid,) = owner.shared_rids()
    wait_until(lambda: any(f["rid"] == rid for f in files(other.port)), 60, "the share to propagate")
    owner.proc.stdin.write(f"unshare {rid}\n".encode())
    owner.proc.stdin.flush()
    owner.wait_for(r'"unshared": true')
    wait_until(lambda: not any(f["rid"] == rid for f in files(other.port)), 60, "the removal to propagate")


def test_download_survives_a_seeder_killed_mid_transfer(tmp_path: Path, procs: list[NodeProc]) -> None:
    media = make_wav(tmp_path / "long.wav", 100, seed=3)  # 4.4 MB
    slow = ["--set", "cfg.upload_limit_kbps=300"]
    first = NodeProc(tmp_path, "first", share=[media], args=slow)
    procs.append(first)
    (rid,) = first.shared_rids()
    sock_dir = Path(tempfile.mkdtemp(prefix="p2e-"))  # a short path: Unix sockets limit it
    sock = sock_dir / "v.sock"
    second = NodeProc(tmp_path, "second", share=[media], bootstrap=[first.port],
                      args=[*slow, "--repeater", str(sock)])
    procs.append(second)
    assert second.shared_rids() == [rid]
    victim_id = node_id(second)
    wait_until(lambda: len(next((f for f in files(first.port) if f["rid"] == rid), {"providers": []})["providers"]) == 2,
               60, "both seeders announced")

    out = tmp_path / "out.wav"
    job = Background(tmp_path, "get", ["get", rid, "--bootstrap", f"127.0.0.1:{first.port}",
                                       "-o", str(out), "--quiet", "--timeout", "150"])
    def served_by_victim() -> bool:
        out = run(["ctl", "--socket", str(sock), "get", "swarm.up_rate"], timeout=30)
        return out.returncode == 0 and float(out.stdout.strip() or 0) > 0

    try:
        wait_until(served_by_victim, 60, "the second seeder to serve", interval=0.5)
        assert job.proc.poll() is None, job.log()  # mid-transfer: 4.4 MB take ~7 s
        second.kill()
        assert job.wait(timeout=180) == 0, job.log()
    finally:
        job.kill()
    assert sha256(out) == sha256(media)
    got = sources(job.log())
    assert got.get(victim_id, 0) > 0  # the killed seeder had served part of it
    assert sum(got.values()) >= media.stat().st_size
    shutil.rmtree(sock_dir, ignore_errors=True)


def test_corrupting_peer_is_detected_and_the_download_completes(tmp_path: Path, procs: list[NodeProc]) -> None:
    media = make_wav(tmp_path / "movie.wav", 60, seed=4)  # 2.6 MB = 11 pieces
    honest = NodeProc(tmp_path, "honest", share=[media], args=["--set", "cfg.upload_limit_kbps=400"])
    procs.append(honest)
    (rid,) = honest.shared_rids()
    liar = NodeProc(tmp_path, "liar", share=[media], bootstrap=[honest.port],
                    args=["--plugin", "tests.e2e.corrupt_plugin:plugin", "--set", "node.disable=swarm"])
    procs.append(liar)
    assert liar.shared_rids() == [rid]
    liar_id = node_id(liar)
    wait_until(lambda: len(next((f for f in files(honest.port) if f["rid"] == rid), {"providers": []})["providers"]) == 2,
               60, "both providers announced")

    out = tmp_path / "out.wav"
    result = get(rid, honest.port, out)
    assert result.returncode == 0, result.stderr
    assert sha256(out) == sha256(media)
    assert "failed its hash" in result.stderr
    assert f"dropped peer {liar_id[:12]}" in result.stderr, result.stderr


def test_restart_mid_download_resumes(tmp_path: Path, procs: list[NodeProc]) -> None:
    media = make_wav(tmp_path / "talk.wav", 100, seed=5)  # 4.4 MB = 17 pieces
    seeder = NodeProc(tmp_path, "seeder", share=[media], args=["--set", "cfg.upload_limit_kbps=400"])
    procs.append(seeder)
    (rid,) = seeder.shared_rids()
    data_dir = tmp_path / "leecher"
    out = tmp_path / "out.wav"
    args = ["get", rid, "--bootstrap", f"127.0.0.1:{seeder.port}", "-o", str(out), "--quiet",
            "--data-dir", str(data_dir), "--repeater", "off", "--timeout", "120"]
    job = Background(tmp_path, "get1", args)
    try:
        time.sleep(5)
        assert job.proc.poll() is None, job.log()
    finally:
        job.kill()  # SIGKILL: no clean shutdown
    assert not out.exists()
    result = run(args, timeout=150)
    assert result.returncode == 0, result.stderr
    resumed = re.search(r"resuming: (\d+) of (\d+) pieces", result.stderr)
    assert resumed, result.stderr
    assert 0 < int(resumed.group(1)) < int(resumed.group(2))
    assert sha256(out) == sha256(media)
    fetched = sum(sources(result.stderr).values())
    assert fetched < media.stat().st_size  # only what was missing came over the network


def test_storage_limit_evicts_the_oldest_download(tmp_path: Path, procs: list[NodeProc]) -> None:
    a = make_wav(tmp_path / "a.wav", 70, seed=6)  # 3.1 MB each: two do not fit in 5 MiB
    b = make_wav(tmp_path / "b.wav", 70, seed=7)
    seeder = NodeProc(tmp_path, "seeder", share=[a, b])
    procs.append(seeder)
    rid_a, rid_b = seeder.shared_rids(2)
    data_dir = tmp_path / "small"
    common = ["--data-dir", str(data_dir), "--repeater", "off", "--set", "cfg.cache_limit_mb=5"]
    for rid, name in ((rid_a, "a.out"), (rid_b, "b.out")):
        result = get(rid, seeder.port, tmp_path / name, *common)
        assert result.returncode == 0, result.stderr
    assert sha256(tmp_path / "a.out") == sha256(a) and sha256(tmp_path / "b.out") == sha256(b)

    from p2pkit.plugins.store import Store

    with Store(data_dir / "store") as store:
        assert store.manifest(rid_a) is None  # evicted to make room
        assert store.is_complete(rid_b)
        assert store.used_bytes <= 5 * 1024 * 1024


def test_p2p_disabled_refuses_to_download(tmp_path: Path, procs: list[NodeProc]) -> None:
    media = make_wav(tmp_path / "x.wav", 5, seed=8)
    seeder = NodeProc(tmp_path, "seeder", share=[media])
    procs.append(seeder)
    (rid,) = seeder.shared_rids()
    result = get(rid, seeder.port, tmp_path / "x.out", "--set", "cfg.p2p_enabled=false", timeout=30)
    assert result.returncode == 1
    assert "p2p_enabled" in result.stderr

