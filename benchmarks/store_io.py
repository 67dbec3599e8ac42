"""Store I/O against raw file I/O, measured side by side in one run.

For each chunk size, the same bytes are written as sequential appends through
``FileStore.append`` with the default settings (limit check, the write, and the commit
of size, seq and mtime into the sizes map that makes the append survive a crash of the
process) and through plain ``os.write`` on a file; then the same random ranges are read
through ``FileStore.read`` and plain ``os.pread``. The machine is shared and noisy, so the
two sides are interleaved operation by operation and each operation is timed alone: both
see the same load at the same moment; the median time per operation (robust to the
operations that another process preempted) gives the throughput. Target: store/raw >= 0.7
at every size (16 KiB, the seed's 256 KiB chunk, 1 MiB); the JSON summary headlines
256 KiB and ``meets_target`` covers all three.

    python -m benchmarks.store_io [--quick]

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from p2pkit.plugins.store import FileStore, Manifest, Store, block_root

KIB = 1024
MIB = 1024 * KIB
TARGET = 0.7


def measure(workdir: Path, chunk_size: int, total: int, repeats: int, reads: int) -> dict[str, float]:
    """Interleaved at the finest grain: chunk by chunk, the raw write and the store
    append run one after the other (alternating who goes first), each timed alone, so
    both meet the same machine state; likewise for the reads."""
    chunk = os.urandom(chunk_size)
    count = max(1, total // chunk_size)
    nbytes = count * chunk_size
    raw_path = workdir / "raw.bin"
    store = FileStore(workdir / "store")
    spent: dict[str, list[float]] = {"raw": [], "store": []}
    clock = time.perf_counter
    for _ in range(repeats):
        # every run writes fresh files (removed outside the timing): truncating in place
        # makes ext4 flush on close (auto_da_alloc), which would punish one side
        if raw_path.exists():
            raw_path.unlink()
        store.delete("bench")
        fd = os.open(raw_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        store.create("bench")
        steps: list[tuple[str, Callable[[], object]]] = [
            ("raw", functools.partial(os.write, fd, chunk)),
            ("store", functools.partial(store.append, "bench", chunk)),
        ]
        for i in range(count):
            for name, step in steps if i % 2 else steps[::-1]:
                t = clock()
                step()
                spent[name].append(clock() - t)
        os.close(fd)

    rng = random.Random(chunk_size)
    offsets = [rng.randrange(0, nbytes - chunk_size + 1) for _ in range(reads)]
    raw_fd = os.open(raw_path, os.O_RDONLY)
    with open(raw_path, "rb") as f:  # both sides hold the same bytes
        f.seek(offsets[0])
        assert store.read("bench", offsets[0], offsets[0] + chunk_size) == f.read(chunk_size)
    read_spent: dict[str, list[float]] = {"raw": [], "store": []}
    for _ in range(repeats):
        for j, off in enumerate(offsets):
            order: list[tuple[str, Callable[[], object]]] = [
                ("raw", functools.partial(os.pread, raw_fd, chunk_size, off)),
                ("store", functools.partial(store.read, "bench", off, off + chunk_size)),
            ]
            for name, step in order if j % 2 else order[::-1]:
                t = clock()
                step()
                read_spent[name].append(clock() - t)
    os.close(raw_fd)
    store.close()
    shutil.rmtree(workdir / "store")
    raw_path.unlink()
    # medians: an operation that was preempted by another process is an outlier that
    # says nothing about the store
    w = {name: statistics.median(times) for name, times in spent.items()}
    r = {name: statistics.median(times) for name, times in read_spent.items()}
    # means include every slow operation (WAL checkpoints, and preemption on a busy box)
    wm = {name: statistics.fmean(times) for name, times in spent.items()}
    rm = {name: statistics.fmean(times) for name, times in read_spent.items()}
    return {
        "append_ratio_mean": wm["raw"] / wm["store"],
        "read_ratio_mean": rm["raw"] / rm["store"],
        "chunk_bytes": chunk_size,
        "append_mb_s": chunk_size / w["store"] / MIB, "raw_write_mb_s": chunk_size / w["raw"] / MIB,
        "append_ratio": w["raw"] / w["store"],
        "read_mb_s": chunk_size / r["store"] / MIB, "raw_read_mb_s": chunk_size / r["raw"] / MIB,
        "read_ratio": r["raw"] / r["store"],
    }


def measure_pieces(workdir: Path, total: int, *, legacy: bool = False) -> dict[str, float]:
    """Informational: verified piece writes and reads (what the swarm does), 256 KiB,
    checked by block roots (manifests made now) or, ``legacy``, by SHA-256 per piece."""
    piece = 256 * KIB
    data = os.urandom(max(piece, total - total % piece))
    pieces = [data[i:i + piece] for i in range(0, len(data), piece)]
    hashes = tuple(hashlib.sha256(p).digest() for p in pieces) if legacy else ()
    roots = () if legacy else tuple(block_root(p) for p in pieces)
    manifest = Manifest(name="bench.mp4", size=len(data), mime="video/mp4", category="video",
                        piece_size=piece, piece_hashes=hashes, block_roots=roots)
    with Store(workdir / "pieces") as store:
        store.begin_download(manifest)
        t = time.perf_counter()
        for i in range(manifest.num_pieces):
            store.write_piece(manifest.rid, i, data[i * piece:(i + 1) * piece])
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(manifest.num_pieces):
            store.read_piece(manifest.rid, i)
        cached_s = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(manifest.num_pieces):
            store.read_piece(manifest.rid, i, rehash=True)
        rehash_s = time.perf_counter() - t
    shutil.rmtree(workdir / "pieces")
    return {"piece_write_mb_s": len(data) / write_s / MIB,
            "piece_read_mb_s": len(data) / cached_s / MIB,
            "piece_read_rehash_mb_s": len(data) / rehash_s / MIB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repeats")
    args = parser.parse_args()
    total = 16 * MIB if args.quick else 64 * MIB
    repeats = 3 if args.quick else 5
    reads = 400 if args.quick else 2000
    sizes = [16 * KIB, 256 * KIB, 1 * MIB]
    results = []
    with tempfile.TemporaryDirectory(prefix="p2pkit-store-bench-") as tmp:
        print("median time per operation; (mean) = ratio of mean times, every slow operation included")
        print(f"{'chunk':>8} {'append MB/s':>12} {'raw write':>10} {'ratio':>6} {'(mean)':>7}"
              f" {'read MB/s':>10} {'raw read':>9} {'ratio':>6} {'(mean)':>7}")
        for size in sizes:
            r = measure(Path(tmp), size, total, repeats, reads)
            results.append(r)
            print(f"{size // KIB:>6}Ki {r['append_mb_s']:>12.0f} {r['raw_write_mb_s']:>10.0f}"
                  f" {r['append_ratio']:>6.2f} {r['append_ratio_mean']:>7.2f}"
                  f" {r['read_mb_s']:>10.0f}"
                  f" {r['raw_read_mb_s']:>9.0f} {r['read_ratio']:>6.2f} {r['read_ratio_mean']:>7.2f}")
        pieces = {}
        for legacy, label in ((False, "block roots"), (True, "SHA-256, older manifests")):
            got = measure_pieces(Path(tmp), total, legacy=legacy)
            print(f"pieces (256 KiB, checked by {label}): write {got['piece_write_mb_s']:.0f} MB/s,"
                  f" read {got['piece_read_mb_s']:.0f} MB/s (hashed once per run),"
                  f" read re-hashing {got['piece_read_rehash_mb_s']:.0f} MB/s")
            pieces.update({(f"legacy_{k}" if legacy else k): v for k, v in got.items()})
    main_size = next(r for r in results if r["chunk_bytes"] == 256 * KIB)  # the seed's chunk
    summary = {
        "benchmark": "store_io",
        "quick": args.quick,
        "total_bytes_per_size": total,
        "chunk_bytes": 256 * KIB,
        "append_ratio": round(main_size["append_ratio"], 3),
        "read_ratio": round(main_size["read_ratio"], 3),
        "append_ratio_mean": round(main_size["append_ratio_mean"], 3),
        "read_ratio_mean": round(main_size["read_ratio_mean"], 3),
        "target_ratio": TARGET,
        "meets_target": all(r["append_ratio"] >= TARGET and r["read_ratio"] >= TARGET
                            for r in results),
        "pieces": {k: round(v, 1) for k, v in pieces.items()},
        "by_chunk": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
                     for r in results],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
