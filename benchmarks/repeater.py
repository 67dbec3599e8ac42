"""Repeater getter round trips per second, next to plain Unix-socket echo servers.

    python -m benchmarks.repeater [--quick] [--seconds S] [--rounds N]

Every server runs in its own process, started by this script; the client loop runs here.
Each round trip is one 37-byte getter request (``peer.count``) and one 45-byte reply
(37-byte header + 8-byte int), so all servers move the same bytes:

- ``repeater``: ``serve_repeater`` (trio) with a FieldRegistry: parse, look up, call the
  getter, encode, reply. Measured with a minimal raw-socket client loop, and with
  ``RepeaterClient.get`` (the typed blocking client) to show the client's own cost.
- ``echo-trio``: a trio server that reads 37 bytes and writes 45: the same framework and
  syscalls with no protocol work, so the ratio is the repeater's own overhead.
- ``echo-plain``: the same echo in a blocking ``socket`` loop, no trio at all.

Rounds alternate between the servers and the best round of each is kept (the machine is
shared and noisy). The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REQUEST_SIZE = 37
REPLY_SIZE = 45
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------- servers


def _serve_repeater(path: str) -> None:
    import trio

    from p2pkit.fields import Field, FieldRegistry, FieldType
    from p2pkit.repeater.server import serve_repeater

    registry = FieldRegistry()
    registry.register(Field("peer.count", FieldType.INT, lambda: 7))
    registry.register(Field("meta.fields", FieldType.JSON, registry.describe))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_repeater, registry, path)
            print("ready", flush=True)

    trio.run(main)


def _serve_echo_trio(path: str) -> None:
    import trio

    reply_tail = bytes(REPLY_SIZE - REQUEST_SIZE)

    async def handle(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        async with stream:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
                while len(buffer) >= REQUEST_SIZE:
                    request = bytes(buffer[:REQUEST_SIZE])
                    del buffer[:REQUEST_SIZE]
                    await stream.send_all(request + reply_tail)

    async def main() -> None:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(path)
        sock.listen(16)
        listener = trio.SocketListener(sock)
        print("ready", flush=True)
        await trio.serve_listeners(handle, [listener])

    trio.run(main)


def _serve_echo_plain(path: str) -> None:
    reply_tail = bytes(REPLY_SIZE - REQUEST_SIZE)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(16)
        print("ready", flush=True)
        while True:  # one client at a time is all the benchmark needs
            conn, _ = server.accept()
            with conn:
                buffer = bytearray()
                while data := conn.recv(65536):
                    buffer += data
                    while len(buffer) >= REQUEST_SIZE:
                        request = bytes(buffer[:REQUEST_SIZE])
                        del buffer[:REQUEST_SIZE]
                        conn.sendall(request + reply_tail)


SERVERS: dict[str, Callable[[str], None]] = {
    "repeater": _serve_repeater,
    "echo-trio": _serve_echo_trio,
    "echo-plain": _serve_echo_plain,
}


def _start(kind: str, path: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.repeater", "--serve", kind, "--path", path],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"{kind} server did not start (got {line!r})")
    return proc


# ---------------------------------------------------------------------------- clients


def _raw_loop(path: str, seconds: float) -> tuple[int, float, list[int]]:
    """Blocking request/reply loop with no client library: (count, elapsed, sample ns)."""
    from p2pkit.repeater.protocol import FuncType, encode_frame

    request = encode_frame(FuncType.GET, "peer.count")
    assert len(request) == REQUEST_SIZE
    samples: list[int] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        count = 0
        start = time.perf_counter()
        end = start + seconds
        clock = time.perf_counter_ns
        while True:
            t0 = clock()
            sock.sendall(request)
            got = 0
            while got < REPLY_SIZE:
                chunk = sock.recv(REPLY_SIZE - got)
                if not chunk:
                    raise RuntimeError("server closed the connection")
                got += len(chunk)
            samples.append(clock() - t0)
            count += 1
            if count % 256 == 0 and time.perf_counter() >= end:
                break
        return count, time.perf_counter() - start, samples


def _client_loop(path: str, seconds: float) -> tuple[int, float, list[int]]:
    """The same through ``RepeaterClient.get`` (typed decoding, locking, checks)."""
    from p2pkit.repeater.client import RepeaterClient

    samples: list[int] = []
    with RepeaterClient(path) as client:
        assert client.get("peer.count") == 7  # fetches meta.fields once, outside the timing
        count = 0
        start = time.perf_counter()
        end = start + seconds
        clock = time.perf_counter_ns
        while True:
            t0 = clock()
            client.get("peer.count")
            samples.append(clock() - t0)
            count += 1
            if count % 256 == 0 and time.perf_counter() >= end:
                break
        return count, time.perf_counter() - start, samples


# ---------------------------------------------------------------------------- main


def _summary(count: int, elapsed: float, samples: list[int]) -> dict[str, float]:
    samples.sort()
    return {
        "rps": count / elapsed,
        "p50_us": statistics.median(samples) / 1000,
        "p99_us": samples[int(len(samples) * 0.99) - 1] / 1000,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (0.5 s x 2 rounds)")
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", choices=sorted(SERVERS), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        SERVERS[args.serve](args.path)
        return 0
    seconds, rounds = (0.5, 2) if args.quick else (args.seconds, args.rounds)

    cases: list[tuple[str, str, Callable[[str, float], tuple[int, float, list[int]]]]] = [
        ("repeater (raw client loop)", "repeater", _raw_loop),
        ("repeater (RepeaterClient.get)", "repeater", _client_loop),
        ("echo-trio (same frame sizes)", "echo-trio", _raw_loop),
        ("echo-plain (blocking socket)", "echo-plain", _raw_loop),
    ]
    best: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="p2pk-bench-") as tmp:
        procs = {kind: _start(kind, os.path.join(tmp, f"{kind}.sock")) for kind in SERVERS}
        try:
            for _ in range(rounds):
                for label, kind, loop in cases:
                    result = _summary(*loop(os.path.join(tmp, f"{kind}.sock"), seconds))
                    if label not in best or result["rps"] > best[label]["rps"]:
                        best[label] = result
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(10)
                if proc.stdout:
                    proc.stdout.close()

    print(f"getter round trips over a Unix socket, best of {rounds} x {seconds:g} s, "
          f"one client, servers in separate processes")
    print(f"{'case':32} {'round trips/s':>14} {'p50 µs':>8} {'p99 µs':>8}")
    for label, result in best.items():
        print(f"{label:32} {result['rps']:14,.0f} {result['p50_us']:8.1f} {result['p99_us']:8.1f}")
    repeater = best["repeater (raw client loop)"]["rps"]
    echo_trio = best["echo-trio (same frame sizes)"]["rps"]
    echo_plain = best["echo-plain (blocking socket)"]["rps"]
    client = best["repeater (RepeaterClient.get)"]["rps"]
    print(f"repeater / echo-trio = {repeater / echo_trio:.2f}, "
          f"repeater / echo-plain = {repeater / echo_plain:.2f}, "
          f"RepeaterClient / raw loop = {client / repeater:.2f}")
    print(json.dumps({
        "benchmark": "repeater",
        "seconds_per_case": seconds,
        "rounds": rounds,
        "request_bytes": REQUEST_SIZE,
        "reply_bytes": REPLY_SIZE,
        "repeater_get_per_s": round(repeater),
        "repeater_client_get_per_s": round(client),
        "echo_trio_per_s": round(echo_trio),
        "echo_plain_per_s": round(echo_plain),
        "ratio_repeater_vs_echo_trio": round(repeater / echo_trio, 3),
        "ratio_repeater_vs_echo_plain": round(repeater / echo_plain, 3),
        "ratio_client_vs_raw": round(client / repeater, 3),
        # per-request latency is less disturbed by other jobs than throughput
        "ratio_p50_echo_trio_vs_repeater": round(
            best["echo-trio (same frame sizes)"]["p50_us"]
            / best["repeater (raw client loop)"]["p50_us"], 3),
        "p50_us": {k: round(v["p50_us"], 1) for k, v in best.items()},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
