"""Store I/O against raw file I/O, measured side by side in one run.

For each chunk size, the same bytes are written as sequential appends through
``FileStore.append`` (which also commits size and mtime to SQLite and enforces the
limit) and through plain ``os.write`` on an unbuffered file; then the same random ranges
are read through ``FileStore.read`` and plain ``os.pread``. Each measurement is repeated
and the best run kept (the machine is shared); every run writes a fresh file on both
sides. Target: store/raw >= 0.7 at the seed's 256 KiB chunk (16 KiB and 1 MiB shown too).

    python -m benchmarks.store_io [--quick]

The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from p2pkit.plugins.store import FileStore

KIB = 1024
MIB = 1024 * KIB
TARGET = 0.7


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(workdir: Path, chunk_size: int, total: int, repeats: int, reads: int) -> dict[str, float]:
    chunk = os.urandom(chunk_size)
    count = max(1, total // chunk_size)
    nbytes = count * chunk_size
    raw_path = workdir / "raw.bin"
    store_root = workdir / "store"

    # Both sides write a fresh file each run (the old one is removed outside the timing):
    # truncating a file in place makes ext4 flush it on close (auto_da_alloc), which would
    # punish whichever side closes its file.
    def raw_append() -> None:
        fd = os.open(raw_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            for _ in range(count):
                os.write(fd, chunk)
        finally:
            os.close(fd)

    store = FileStore(store_root)

    def store_append() -> None:
        store.create("bench")
        for _ in range(count):
            store.append("bench", chunk)

    # interleaved, best of ``repeats``: both see the same machine state
    raw_t, store_t = float("inf"), float("inf")
    for i in range(repeats):
        if i:
            raw_path.unlink()
            store.delete("bench")
        raw_t = min(raw_t, timed(raw_append))
        store_t = min(store_t, timed(store_append))
    raw_w, store_w = nbytes / raw_t, nbytes / store_t

    rng = random.Random(chunk_size)
    offsets = [rng.randrange(0, nbytes - chunk_size + 1) for _ in range(reads)]
    read_bytes = reads * chunk_size
    raw_fd = os.open(raw_path, os.O_RDONLY)

    def raw_read() -> None:
        for off in offsets:
            os.pread(raw_fd, chunk_size, off)

    def store_read() -> None:
        for off in offsets:
            store.read("bench", off, off + chunk_size)

    assert store.read("bench", offsets[0], offsets[0] + chunk_size) == os.pread(raw_fd, chunk_size, offsets[0])
    raw_rt, store_rt = float("inf"), float("inf")
    for _ in range(repeats):
        raw_rt = min(raw_rt, timed(raw_read))
        store_rt = min(store_rt, timed(store_read))
    raw_r, store_r = read_bytes / raw_rt, read_bytes / store_rt
    os.close(raw_fd)
    store.close()
    shutil.rmtree(store_root)
    raw_path.unlink()
    return {
        "chunk_bytes": chunk_size,
        "append_mb_s": store_w / MIB, "raw_write_mb_s": raw_w / MIB, "append_ratio": store_w / raw_w,
        "read_mb_s": store_r / MIB, "raw_read_mb_s": raw_r / MIB, "read_ratio": store_r / raw_r,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repeats")
    args = parser.parse_args()
    total = 24 * MIB if args.quick else 128 * MIB
    repeats = 3 if args.quick else 5
    reads = 400 if args.quick else 2000
    sizes = [16 * KIB, 256 * KIB, 1 * MIB]
    results = []
    with tempfile.TemporaryDirectory(prefix="p2pkit-store-bench-") as tmp:
        print(f"{'chunk':>8} {'append MB/s':>12} {'raw write':>10} {'ratio':>6}"
              f" {'read MB/s':>10} {'raw read':>9} {'ratio':>6}")
        for size in sizes:
            r = measure(Path(tmp), size, total, repeats, reads)
            results.append(r)
            print(f"{size // KIB:>6}Ki {r['append_mb_s']:>12.0f} {r['raw_write_mb_s']:>10.0f}"
                  f" {r['append_ratio']:>6.2f} {r['read_mb_s']:>10.0f} {r['raw_read_mb_s']:>9.0f}"
                  f" {r['read_ratio']:>6.2f}")
    main_size = next(r for r in results if r["chunk_bytes"] == 256 * KIB)  # the seed's chunk
    summary = {
        "benchmark": "store_io",
        "quick": args.quick,
        "total_bytes_per_size": total,
        "chunk_bytes": 256 * KIB,
        "append_ratio": round(main_size["append_ratio"], 3),
        "read_ratio": round(main_size["read_ratio"], 3),
        "target_ratio": TARGET,
        "meets_target": main_size["append_ratio"] >= TARGET and main_size["read_ratio"] >= TARGET,
        "by_chunk": [{k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}
                     for r in results],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
