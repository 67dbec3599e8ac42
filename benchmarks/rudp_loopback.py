"""One-direction bulk transfer over 127.0.0.1 between two processes: rudp vs trio TCP vs
aioquic, measured in the same run.

    python -m benchmarks.rudp_loopback [--quick] [--mtu 1400] [--congestion default] [--only-rudp]
        [--uplink-target-ms 15]

rudp and TCP move ``--quick`` 64 MB (default 256 MB) in 64 KiB messages/writes; aioquic
(one stream, the Python QUIC reference) moves a quarter of that because it is slow — its
rate does not depend on the size. Each transfer runs in two fresh processes; the receiver
times from the accepted connection to the last byte. The rudp processes report their
peak RSS. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.seeds import last_json

CHUNK = 64 * 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def runqueue_wait() -> float:
    """Seconds this process was runnable but waiting for a core (Linux; 0 elsewhere): on a
    shared machine it tells CPU starvation apart from protocol idling."""
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def announce(port: int) -> None:
    print(f"PORT {port}", flush=True)


def report(**values: float) -> None:
    print(json.dumps(values), flush=True)


# ---------------------------------------------------------------------------- rudp


def rudp_config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from p2pkit.plugins.rudp import RudpConfig

    return RudpConfig(mtu=args.mtu, congestion=args.congestion, pacing=not args.no_pacing,
                      uplink_target_ms=args.uplink_target_ms)


async def rudp_receive(args: argparse.Namespace) -> None:
    import trio
    from p2pkit.plugins.rudp import RudpTransport

    from p2pkit.udp import UdpEndpoint

    endpoint = await UdpEndpoint.open("127.0.0.1", 0)
    transport = RudpTransport.over(endpoint, rudp_config(args))
    async with trio.open_nursery() as nursery:
        await nursery.start(endpoint.run, transport.handle_datagrams)
        await nursery.start(transport.serve)
        announce(endpoint.local_address[1])
        session = await transport.accept()
        start = time.perf_counter()
        cpu0 = cpu_seconds()
        wait0 = runqueue_wait()
        got = 0
        while got < args.bytes:
            _, message = await session.receive()
            got += len(message)
        elapsed = time.perf_counter() - start
        await session.send(b"done", channel=0)
        stats = session.stats()
        with trio.move_on_after(2):
            await session.aclose()
        report(seconds=elapsed, bytes=got, rss_MB=peak_rss_mb(), cpu=cpu_seconds() - cpu0,
               runqueue_wait=runqueue_wait() - wait0, packets_sent=float(stats["packets_sent"]),
               packets_received=float(stats["packets_received"]),
               gso=float(endpoint.gso), gro=float(endpoint.gro))
        nursery.cancel_scope.cancel()


async def rudp_send(args: argparse.Namespace) -> None:
    import trio
    from p2pkit.plugins.rudp import RudpTransport

    from p2pkit.udp import UdpEndpoint

    endpoint = await UdpEndpoint.open("127.0.0.1", 0)
    transport = RudpTransport.over(endpoint, rudp_config(args))
    async with trio.open_nursery() as nursery:
        await nursery.start(endpoint.run, transport.handle_datagrams)
        await nursery.start(transport.serve)
        session = await transport.connect(("127.0.0.1", args.port))
        cpu0 = cpu_seconds()
        wait0 = runqueue_wait()
        chunk = b"\xab" * CHUNK
        for _ in range(args.bytes // CHUNK):
            await session.send(chunk)
        await session.receive()  # "done"
        stats = session.stats()
        report(rss_MB=peak_rss_mb(), cpu=cpu_seconds() - cpu0, runqueue_wait=runqueue_wait() - wait0,
               packets_received=float(stats["packets_received"]), retransmits=float(stats["retransmits"]),
               lost=float(stats["lost_packets"]), srtt_ms=float(stats["srtt_ms"]),
               cwnd=float(stats["cwnd"]))
        nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------------- trio TCP


async def tcp_receive(args: argparse.Namespace) -> None:
    import trio

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    announce(listeners[0].socket.getsockname()[1])
    stream = await listeners[0].accept()
    start = time.perf_counter()
    cpu0 = cpu_seconds()
    got = 0
    while got < args.bytes:
        data = await stream.receive_some(CHUNK)
        if not data:
            break
        got += len(data)
    elapsed = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    await stream.send_all(b"done")
    await stream.aclose()
    report(seconds=elapsed, bytes=got, rss_MB=peak_rss_mb(), cpu=cpu)


async def tcp_send(args: argparse.Namespace) -> None:
    import trio

    stream = await trio.open_tcp_stream("127.0.0.1", args.port)
    cpu0 = cpu_seconds()
    chunk = b"\xab" * CHUNK
    for _ in range(args.bytes // CHUNK):
        await stream.send_all(chunk)
    await stream.receive_some(16)
    cpu = cpu_seconds() - cpu0
    await stream.aclose()
    report(rss_MB=peak_rss_mb(), cpu=cpu)


# ---------------------------------------------------------------------------- aioquic


def _self_signed(directory: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def quic_receive(args: argparse.Namespace) -> None:
    from aioquic.asyncio.server import serve
    from aioquic.quic.configuration import QuicConfiguration

    done = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        start = time.perf_counter()
        cpu0 = cpu_seconds()
        got = 0
        while got < args.bytes:
            data = await reader.read(CHUNK * 4)
            if not data:
                break
            got += len(data)
        elapsed = time.perf_counter() - start
        writer.write(b"done")
        writer.write_eof()
        done.set_result((elapsed, got, cpu_seconds() - cpu0))

    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _self_signed(Path(tmp))
        config = QuicConfiguration(is_client=False, alpn_protocols=["bench"])
        config.load_cert_chain(cert, key)
        handlers: set[asyncio.Task[None]] = set()  # referenced until done

        def on_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.ensure_future(handle(reader, writer))
            handlers.add(task)
            task.add_done_callback(handlers.discard)

        server = await serve("127.0.0.1", 0, configuration=config, stream_handler=on_stream)
        transport = server._transport
        assert transport is not None  # serve() returns once the socket is bound
        announce(transport.get_extra_info("sockname")[1])
        elapsed, got, cpu = await done
        await asyncio.sleep(0.2)
        server.close()
    report(seconds=elapsed, bytes=got, rss_MB=peak_rss_mb(), cpu=cpu)


async def quic_send(args: argparse.Namespace) -> None:
    from aioquic.asyncio.client import connect
    from aioquic.quic.configuration import QuicConfiguration

    config = QuicConfiguration(is_client=True, alpn_protocols=["bench"])
    config.verify_mode = ssl.CERT_NONE
    async with connect("127.0.0.1", args.port, configuration=config) as client:
        reader, writer = await client.create_stream()
        cpu0 = cpu_seconds()
        chunk = b"\xab" * CHUNK
        for i in range(args.bytes // CHUNK):
            writer.write(chunk)
            if i % 16 == 15:
                await writer.drain()
                await asyncio.sleep(0)
        await reader.read(16)
        cpu = cpu_seconds() - cpu0
    report(rss_MB=peak_rss_mb(), cpu=cpu)


# ---------------------------------------------------------------------------- driver


ROLES = {
    ("rudp", "recv"): rudp_receive, ("rudp", "send"): rudp_send,
    ("tcp", "recv"): tcp_receive, ("tcp", "send"): tcp_send,
    ("aioquic", "recv"): quic_receive, ("aioquic", "send"): quic_send,
}


def run_role(args: argparse.Namespace) -> None:
    fn = ROLES[(args.proto, args.role)]
    if args.proto == "aioquic":
        asyncio.run(fn(args))
    else:
        import trio

        trio.run(fn, args)


def measure(proto: str, nbytes: int, args: argparse.Namespace) -> dict[str, float]:
    base = [sys.executable, "-m", "benchmarks.rudp_loopback", "--proto", proto,
            "--bytes", str(nbytes), "--mtu", str(args.mtu), "--congestion", args.congestion,
            "--uplink-target-ms", str(args.uplink_target_ms),
            *(["--no-pacing"] if args.no_pacing else [])]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    receiver = subprocess.Popen([*base, "--role", "recv"], stdout=subprocess.PIPE, text=True, env=env)
    assert receiver.stdout is not None
    line = receiver.stdout.readline()
    if not line.startswith("PORT "):
        receiver.kill()
        raise RuntimeError(f"{proto} receiver did not start: {line!r}")
    port = line.split()[1]
    sender = subprocess.run([*base, "--role", "send", "--port", port], capture_output=True,
                            text=True, env=env, timeout=600)
    out, _ = receiver.communicate(timeout=600)
    if sender.returncode or receiver.returncode:
        raise RuntimeError(f"{proto} failed: {sender.stderr[-2000:]}")
    recv = last_json(out)
    send = last_json(sender.stdout)
    busiest = max(recv["cpu"], send["cpu"])
    result = {"MBps": recv["bytes"] / recv["seconds"] / 1e6, "seconds": recv["seconds"],
              "bytes": recv["bytes"], "rss_MB": max(recv["rss_MB"], send["rss_MB"]),
              "MBps_per_cpu": recv["bytes"] / busiest / 1e6 if busiest > 0 else 0.0}
    result.update({f"recv_{k}": v for k, v in recv.items() if k not in ("seconds", "bytes", "rss_MB")})
    result.update({f"send_{k}": v for k, v in send.items() if k != "rss_MB"})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MB instead of 256 MB")
    parser.add_argument("--mtu", type=int, default=1400, help="rudp datagram size")
    parser.add_argument("--congestion", default="default", help="rudp congestion controller")
    parser.add_argument("--no-pacing", action="store_true", help="rudp without pacing")
    parser.add_argument("--uplink-target-ms", type=int, default=15,
                        help="rudp's uplink control target (0 = off; 15 is the default)")
    parser.add_argument("--only-rudp", action="store_true",
                        help="measure rudp alone (for profiling; its JSON line has no comparison)")
    parser.add_argument("--proto", choices=["rudp", "tcp", "aioquic"], help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=["recv", "send"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bytes", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        run_role(args)
        return
    size = (64 if args.quick else 256) * 1024 * 1024
    quic_size = max(16 * 1024 * 1024, size // 4)
    print(f"one-direction transfer over 127.0.0.1, two processes each "
          f"(rudp/TCP {size >> 20} MiB, aioquic {quic_size >> 20} MiB)")
    results = {}
    runs = (("rudp", size), ("tcp", size), ("aioquic", quic_size))
    for proto, nbytes in runs[:1] if args.only_rudp else runs:
        results[proto] = r = measure(proto, nbytes, args)
        extra = ""
        if proto == "rudp":
            extra = (f"  retransmits {r['send_retransmits']:.0f}  srtt {r['send_srtt_ms']:.2f} ms"
                     f"  GSO {bool(r['recv_gso'])} GRO {bool(r['recv_gro'])}"
                     f"  waited for a core: recv {r['recv_runqueue_wait']:.2f} s,"
                     f" send {r['send_runqueue_wait']:.2f} s")
        print(f"  {proto:8s} {r['MBps']:8.1f} MB/s  {r['seconds']:6.2f} s  "
              f"{r['MBps_per_cpu']:8.1f} MB per CPU-second of the busier process  "
              f"peak RSS {r['rss_MB']:6.1f} MB{extra}")
    from p2pkit.compiled import build_description  # the children ran the same install

    comparison: dict[str, float] = {}
    if not args.only_rudp:
        rudp, tcp, quic = (results[p]["MBps"] for p in ("rudp", "tcp", "aioquic"))
        print(f"  rudp/aioquic {rudp / quic:.1f}x   rudp/tcp {rudp / tcp:.2f}x   (wall clock; the "
              f"per-CPU figures are what the code costs when other processes share the cores)")
        comparison = {"rudp_vs_aioquic": round(rudp / quic, 1), "rudp_vs_tcp": round(rudp / tcp, 3)}
    print(json.dumps({  # with --only-rudp, rudp's figures alone
        **{f"{p}_MBps": round(results[p]["MBps"], 1) for p in results},
        "rudp_rss_MB": round(results["rudp"]["rss_MB"], 1),
        **comparison,
        **{f"{p}_MBps_per_cpu": round(results[p]["MBps_per_cpu"], 1) for p in results},
        "bytes": size, "aioquic_bytes": quic_size, "mtu": args.mtu, "congestion": args.congestion,
        "pacing": not args.no_pacing, "uplink_target_ms": args.uplink_target_ms,
        "build": build_description(),
    }))


if __name__ == "__main__":
    main()
