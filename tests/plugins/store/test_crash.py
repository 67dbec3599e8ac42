"""Crash consistency with real processes: a writer killed with SIGKILL mid-stream leaves a
store that reopens consistent, keeps every acknowledged write, and serves nothing torn.
Appends commit no SQLite transaction (their sizes go to the sizes map), so these are the
tests that this is enough."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from p2pkit.plugins.store import FileStore, Manifest, Store

PIECE = 64 * 1024


def chunk(i: int) -> bytes:
    """Chunk i of the appended stream: deterministic, of varying length (4 KiB .. 2 MiB)."""
    n = 4096 + (i * 7919 * 4099) % (2 * 1024 * 1024)
    return hashlib.sha256(str(i).encode()).digest()[:1] * n


SMALL_SIDS = [f"cam-{k}/seg" for k in range(5)]


def small_chunk(k: int, i: int) -> bytes:
    """Chunk i of resource k in the small-append mode: 1..16 KiB, recognisable bytes."""
    n = 1024 + (i * 4099 + k * 577) % (15 * 1024)
    return bytes([(k * 31 + i) % 251]) * n


def small_order(seed: int) -> list[int]:
    """Which resource the small-append writer appends to, step by step."""
    rng = random.Random(seed)
    return [rng.randrange(len(SMALL_SIDS)) for _ in range(200_000)]


def pieces_payload() -> bytes:
    return random.Random(7).randbytes(PIECE * 40 + 1234)


def pieces_manifest() -> Manifest:
    data = pieces_payload()
    hashes = tuple(hashlib.sha256(data[i:i + PIECE]).digest() for i in range(0, len(data), PIECE))
    return Manifest(name="f.bin", size=len(data), mime="video/mp4", category="video",
                    piece_size=PIECE, piece_hashes=hashes)


WRITER = r"""
import random, sys
sys.path.insert(0, {test_dir!r})
from test_crash import chunk, pieces_manifest, pieces_payload, PIECE
from p2pkit.plugins.store import FileStore, Store

root, mode = sys.argv[1], sys.argv[2]
if mode.startswith("small"):
    from test_crash import SMALL_SIDS, small_chunk, small_order
    fs = FileStore(root)
    seed = int(mode.split("-")[1])
    for sid in SMALL_SIDS:
        fs.create(sid)
    counts = [0] * len(SMALL_SIDS)
    for step, k in enumerate(small_order(seed)):
        fs.append(SMALL_SIDS[k], small_chunk(k, counts[k]))
        print(step, flush=True)  # acknowledged
        counts[k] += 1
elif mode == "append":
    fs = FileStore(root)
    if not fs.exists("stream"):
        fs.create("stream")
    size, i = fs.size("stream"), 0
    while size > 0:
        size -= len(chunk(i)); i += 1
    assert size == 0, "reopened size is not a whole number of chunks"
    while True:
        fs.append("stream", chunk(i))
        print(i, flush=True)  # acknowledged: committed before this line is written
        i += 1
else:
    store = Store(root, piece_size=PIECE)
    m = pieces_manifest()
    data = pieces_payload()
    store.begin_download(m)
    order = store.missing_pieces(m.rid)
    random.Random().shuffle(order)
    for i in order:
        assert store.write_piece(m.rid, i, data[i * PIECE:(i + 1) * PIECE])
        print(i, flush=True)
    print("done", flush=True)
"""


def run_and_kill(root: Path, mode: str, acks_before_kill: int, rng: random.Random) -> list[str]:
    script = WRITER.format(test_dir=str(Path(__file__).parent))
    proc = subprocess.Popen([sys.executable, "-c", script, str(root), mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acks: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            acks.append(line.strip())
            if len(acks) >= acks_before_kill or line.strip() == "done":
                break
        time.sleep(rng.random() * 0.01)  # land somewhere inside the next write
        os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    acks += [x for x in rest.split("\n") if x.strip()]  # lines written before death count too
    assert proc.returncode == -signal.SIGKILL or "done" in acks, err
    return acks


@pytest.mark.slow
def test_kill9_during_appends(tmp_path: Path) -> None:
    """Every acknowledged append survives; never a torn one (appends of 4 KiB .. 2 MiB)."""
    root = tmp_path / "fs"
    mode = "append"
    rng = random.Random(1)
    acknowledged = -1
    torn = 0
    for _round in range(4):
        acks = run_and_kill(root, mode, rng.randint(3, 12), rng)
        acknowledged = max(acknowledged, int(acks[-1]))
        with FileStore(root) as fs:
            torn += fs.counters["recovered_truncations"]
            size = fs.size("stream")
            assert size is not None
            # the size is a whole number of chunks and includes every acknowledged one
            total, k = 0, 0
            while total < size:
                total += len(chunk(k))
                k += 1
            assert total == size, "a torn append is visible"
            assert k - 1 >= acknowledged
            assert fs.used_bytes == size
            # the bytes are exactly the stream (spot-check every chunk's ends)
            offset = 0
            for i in range(k):
                c = chunk(i)
                assert fs.read("stream", offset, offset + 16) == c[:16]
                assert fs.read("stream", offset + len(c) - 16, offset + len(c)) == c[-16:]
                offset += len(c)
            assert fs.read("stream", size, size + 10) == b""
        file = root / "objects" / hashlib.sha256(b"stream").hexdigest()
        assert file.stat().st_size == size  # the uncommitted tail was truncated
    assert torn >= 1, "no kill landed inside a write: the recovery path was not exercised"


@pytest.mark.slow
def test_kill9_during_piece_writes_resumes(tmp_path: Path) -> None:
    root = tmp_path / "store"
    rng = random.Random(2)
    m = pieces_manifest()
    have_acked: set[int] = set()
    for _round in range(3):
        acks = run_and_kill(root, "pieces", rng.randint(3, 10), rng)
        have_acked |= {int(a) for a in acks if a != "done"}
        with Store(root, piece_size=PIECE) as store:
            present = set(range(m.num_pieces)) - set(store.missing_pieces(m.rid))
            assert have_acked <= present
            assert store.verify(m.rid) == []  # every piece the bitmap claims is intact
            assert store.counters.get("damaged_pieces", 0) == 0
            assert store.used_bytes == sum(m.piece_length(i) for i in present)
    acks = run_and_kill(root, "pieces", 10_000, rng)  # let it finish
    assert acks[-1] == "done"
    with Store(root, piece_size=PIECE) as store:
        assert store.is_complete(m.rid)
        assert store.read_content(m.rid, 0, m.size) == pieces_payload()


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_kill9_after_many_small_appends(tmp_path: Path, seed: int) -> None:
    """The complaint this answers: "I appended thousands of small chunks, the process was
    killed, and after the restart ...". The store reopens holding exactly the writer's
    first L appends for some L at least the number acknowledged (every acknowledged append,
    whole, nothing torn, none missing in between), sizes equal to the file contents, and it
    evicts in the order the writer last modified the resources."""
    root = tmp_path / "fs"
    order = small_order(seed)
    acks = run_and_kill(root, f"small-{seed}", 1500 + seed * 100, random.Random(seed))
    acknowledged = int(acks[-1]) + 1
    with FileStore(root) as fs:
        assert fs.counters["recovered_from_map"] >= 1  # SQLite knew only the creates
        # how many whole chunks each resource holds
        chunks = []
        for k, sid in enumerate(SMALL_SIDS):
            size = fs.size(sid)
            assert size is not None
            file = root / "objects" / hashlib.sha256(sid.encode()).hexdigest()
            assert file.stat().st_size == size  # the size is what the file holds
            c, total = 0, 0
            while total < size:
                total += len(small_chunk(k, c))
                c += 1
            assert total == size, f"{sid}: a torn append is visible"
            assert fs.read(sid, 0, size + 1) == b"".join(small_chunk(k, i) for i in range(c))
            chunks.append(c)
        survived = sum(chunks)
        assert survived >= acknowledged
        assert [order[:survived].count(k) for k in range(len(SMALL_SIDS))] == chunks, \
            "not a prefix of the writer's appends"
        assert fs.used_bytes == sum(fs.size(sid) or 0 for sid in SMALL_SIDS)
        # eviction follows the writer's last modifications
        last_modified = {k: step for step, k in enumerate(order[:survived])}
        expected_victims = [SMALL_SIDS[k] for k in sorted(last_modified, key=last_modified.__getitem__)]
        evicted: list[str] = []
        fs.on_evict = lambda kind, key, size: evicted.append(key)
        fs.set_storage_limit(0)
        assert evicted == expected_victims
