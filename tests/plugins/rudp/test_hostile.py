"""Hostile input: garbage, lies about acks and windows, protocol violations."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p2pkit.plugins.rudp import Connection, RudpConfig
from p2pkit.plugins.rudp.connection import ConnectionState
from p2pkit.plugins.rudp.packet import (
    ACK,
    DATA,
    PING,
    STREAM_FRAME,
    STREAM_HEADER,
    encode_header,
    encode_sack_frame,
)

from .fakenet import A, Address, B, FakeNet, connected_pair, drain

CLOSED = ConnectionState.CLOSED


def still_works(net: FakeNet, ca: Connection, cb: Connection) -> None:
    ca.send(b"still here", 1)
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and bool(got), 30)
    assert got == [(1, b"still here")]


def header_for(cb: Connection, ptype: int = DATA, *, seq: int | None = None, ack: int | None = None,
               bits: int = 0, max_data: int | None = None) -> bytes:
    """A header as A would address it to B's connection."""
    assert cb.rcv is not None
    return encode_header(
        ptype, 0, cb.local_cid, cb.rcv.next if seq is None else seq,
        cb.recovery.snd_una if ack is None else ack, bits,
        cb.recv_streams.max_data if max_data is None else max_data, 0, 0,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ptype=st.integers(1, 8), tail=st.binary(max_size=80), garbage=st.binary(max_size=60))
def test_garbage_never_crashes_and_is_counted(ptype: int, tail: bytes, garbage: bytes) -> None:
    net = FakeNet(seed=0)
    _a, b, ca, cb = connected_pair(net)
    assert cb.rcv is not None
    # Sequence number 10 ahead: a blind attacker cannot know the exact next one, and the
    # check below sends a single packet, so a frame that happens to be valid stays harmless.
    forged = header_for(cb, ptype, seq=cb.rcv.next + 10) + tail
    b.receive_batch([(garbage, A), (b"\x52" + garbage, A), (forged, A)], net.now)
    b.datagrams_to_send(net.now)
    if cb.state in (CLOSED, ConnectionState.TIME_WAIT):  # a forged RESET/FIN in the window
        assert cb.close_reason is not None
        return
    still_works(net, ca, cb)


def test_truncated_and_foreign_datagrams_are_dropped() -> None:
    net = FakeNet(seed=0)
    _a, b, ca, cb = connected_pair(net)
    valid = header_for(cb, PING)
    b.receive_batch([(valid[:10], A), (b"\x00\x01" + valid[2:], A), (b"", A)], net.now)
    assert b.stats.malformed >= 2
    still_works(net, ca, cb)


def test_ack_for_data_never_sent_is_dropped() -> None:
    net = FakeNet(seed=0)
    _a, b, ca, cb = connected_pair(net)
    before = cb.invalid
    bogus = header_for(cb, ACK, ack=cb.recovery.snd_nxt + 1000)
    b.receive_batch([(bogus, A)], net.now)
    assert cb.invalid == before + 1
    assert cb.recovery.snd_una == cb.recovery.snd_nxt  # untouched
    still_works(net, cb, ca)


def test_sack_bits_and_ranges_for_unsent_packets_are_ignored() -> None:
    net = FakeNet(seed=0)
    _a, b, ca, cb = connected_pair(net)
    cb.send(b"x" * 1000, 1)  # one packet in flight, so the ack is processed in full
    for data, dst in b.datagrams_to_send(net.now):
        net.inject(data, B, dst, at=net.now + 0.01)
    assert cb.recovery.snd_nxt == cb.recovery.snd_una + 1
    in_flight = cb.recovery.bytes_in_flight
    nxt = cb.recovery.snd_nxt
    bogus = header_for(cb, ACK, bits=0xFFFFFFFF) + encode_sack_frame([(nxt + 5, nxt + 50)])
    b.receive_batch([(bogus, A)], net.now)
    assert cb.state is not CLOSED
    # only packets that really exist can be acknowledged
    assert cb.recovery.bytes_in_flight <= in_flight
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(ca, got) >= 0 and bool(got), 30)
    assert got == [(1, b"x" * 1000)]


def test_absurd_window_does_not_unbound_memory() -> None:
    net = FakeNet(seed=0, delay=0.05)
    a, _b, ca, _cb = connected_pair(net, RudpConfig(send_buffer=100_000))
    assert ca.rcv is not None
    b_header = encode_header(PING, 0, ca.local_cid, ca.rcv.next, ca.recovery.snd_una, 0, 2**64 - 1, 0, 0)
    a.receive_batch([(b_header, B)], net.now)
    assert ca.peer_max_data == 2**64 - 1
    n = 0
    while ca.can_send:
        ca.send(b"z" * 10_000, 1)
        n += 1
    assert n <= 11  # the send buffer, not the peer's claim, bounds what we hold
    assert ca.state is not CLOSED


def test_window_violation_resets_the_session() -> None:
    net = FakeNet(seed=0)
    _a, b, _ca, cb = connected_pair(net, RudpConfig(receive_window=10_000), RudpConfig(receive_window=10_000))
    frame = STREAM_HEADER.pack(STREAM_FRAME, 1, 50_000, 100) + b"q" * 100
    b.receive_batch([(header_for(cb) + frame, A)], net.now)
    assert cb.state is CLOSED and "window" in (cb.close_reason or "")
    out = b.datagrams_to_send(net.now)
    assert any(data[2] == 8 for data, _ in out)  # RESET to the peer


def test_message_over_the_limit_resets_the_session() -> None:
    net = FakeNet(seed=0)
    _a, b, _ca, cb = connected_pair(net)
    prefix = (64 * 1024 * 1024 + 1).to_bytes(4, "big")
    frame = STREAM_HEADER.pack(STREAM_FRAME, 1, 0, 4) + prefix
    b.receive_batch([(header_for(cb) + frame, A)], net.now)
    assert cb.state is CLOSED and "exceeds" in (cb.close_reason or "")


def test_channel_out_of_range_resets_the_session() -> None:
    net = FakeNet(seed=0)
    _a, b, _ca, cb = connected_pair(net)
    frame = STREAM_HEADER.pack(STREAM_FRAME, 200, 0, 4) + bytes(4)
    b.receive_batch([(header_for(cb) + frame, A)], net.now)
    assert cb.state is CLOSED and "channel" in (cb.close_reason or "")


def test_valid_connection_id_from_another_address_is_not_accepted() -> None:
    net = FakeNet(seed=0)
    _a, b, ca, cb = connected_pair(net)
    frame = STREAM_HEADER.pack(STREAM_FRAME, 1, 0, 8) + (4).to_bytes(4, "big") + b"evil"
    b.receive_batch([(header_for(cb) + frame, ("10.6.6.6", 666))], net.now)
    assert cb.next_message() is None
    assert b.stats.unknown_connection == 1
    still_works(net, ca, cb)


def test_replayed_data_is_delivered_once() -> None:
    net = FakeNet(seed=0)
    seen: list[bytes] = []

    def record_data_from_a(data: bytes, s: Address, d: Address) -> bool:
        if data[2] == DATA and s == A:
            seen.append(data)
        return False

    net.drop = record_data_from_a
    _a, b, ca, cb = connected_pair(net)
    ca.send(b"once", 1)
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and bool(got), 5)
    for _ in range(10):
        b.receive_batch([(seen[0], A)], net.now)
    drain(cb, got)
    assert got == [(1, b"once")]
    assert cb.duplicates == 10


def test_flood_of_tiny_out_of_order_frames_is_bounded() -> None:
    from p2pkit.plugins.rudp.streams import MAX_OOO_ENTRIES

    net = FakeNet(seed=0)
    config = RudpConfig(receive_window=1 << 20)
    _a, b, _ca, cb = connected_pair(net, config, config)
    assert cb.rcv is not None
    offset = 10
    seq = cb.rcv.next + 1  # leave a hole at rcv.next so nothing is ever in order
    while cb.state is not CLOSED:
        frames = b"".join(
            STREAM_HEADER.pack(STREAM_FRAME, 1, offset + 2 * i, 1) + b"x" for i in range(100)
        )
        offset += 200
        b.receive_batch([(header_for(cb, seq=seq) + frames, A)], net.now)
        seq += 1
        assert cb.recv_streams.ooo_entries <= MAX_OOO_ENTRIES
        assert seq < cb.rcv.next + 10_000  # the session gives up long before that
    assert "out-of-order" in (cb.close_reason or "")
