"""Flow control with a slow reader, send-buffer backpressure, channel priority."""

from __future__ import annotations

from p2pkit.plugins.rudp import Connection, RudpConfig

from .fakenet import Address, FakeNet, connected_pair, drain

WINDOW = 64 * 1024


def held_by_receiver(cb: Connection) -> int:
    rs = cb.recv_streams
    return rs.inbox_bytes + rs.partial + rs.ooo_bytes


def test_slow_reader_bounds_the_sender_and_loses_nothing() -> None:
    config = RudpConfig(receive_window=WINDOW, send_buffer=256 * 1024)
    net = FakeNet(seed=1, loss=0.05, rate=5e6)
    _, _, ca, cb = connected_pair(net, config, config)
    messages = [bytes([i % 256]) * 8000 for i in range(400)]  # 3.2 MB, 50x the window
    queued = 0
    got: list[tuple[int, bytes]] = []
    peak_held = 0
    for _ in range(2000):
        while queued < len(messages) and ca.can_send:
            ca.send(messages[queued], 1)
            queued += 1
        net.step()
        peak_held = max(peak_held, held_by_receiver(cb))
        # the receiver never holds more than its window (plus one message being assembled)
        assert ca.send_streams.sent_bytes <= cb.recv_streams.max_data
        assert ca.send_streams.queued_bytes <= config.send_buffer + 8004
        if net.now > 5.0:
            break
    assert peak_held <= WINDOW + 8004
    assert len(got) == 0 and queued < len(messages)  # blocked: backpressure reached the app
    # now read slowly: one message every 10 ms of virtual time
    while len(got) < len(messages):
        item = cb.next_message()
        if item is not None:
            got.append(item)
        while queued < len(messages) and ca.can_send:
            ca.send(messages[queued], 1)
            queued += 1
        net.run_for(0.01)
        assert held_by_receiver(cb) <= WINDOW + 8004
        assert net.now < 600
    assert [m for _, m in got] == messages


def test_lost_window_update_is_recovered_by_a_probe() -> None:
    config = RudpConfig(receive_window=WINDOW)
    net = FakeNet(seed=2)
    _, _, ca, cb = connected_pair(net, config, config)
    for _ in range(20):
        ca.send(b"w" * 10_000, 1)
    net.run_for(2.0)
    assert ca.send_streams.queued_bytes > 0  # blocked on the window
    net.drop = lambda data, s, d: data[2] == 3  # every ACK is lost (window updates too)
    got: list[tuple[int, bytes]] = []
    drain(cb, got)
    net.run_for(0.5)
    net.drop = None
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) == 20, 30)


def test_control_channel_overtakes_queued_bulk() -> None:
    net = FakeNet(seed=3, rate=1e6)
    _, _, ca, cb = connected_pair(net)
    for i in range(200):
        ca.send(bytes([i]) * 5000, 1)  # 1 MB of bulk: a second at 1 MB/s
    net.run_for(0.1)
    ca.send(b"STOP", 0)
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and (0, b"STOP") in got, 5)
    bulk_before = sum(1 for ch, _ in got if ch == 1)
    assert bulk_before < 100  # it did not wait for the bulk queue
    assert net.now < 0.5


def test_receiver_hands_out_control_messages_first() -> None:
    net = FakeNet(seed=4)
    _, _, ca, cb = connected_pair(net)
    for i in range(5):
        ca.send(b"bulk%d" % i, 1)
    net.run_for(0.5)
    ca.send(b"urgent", 0)
    net.run_for(0.5)
    assert cb.next_message() == (0, b"urgent")
    assert [cb.next_message() for _ in range(5)] == [(1, b"bulk%d" % i) for i in range(5)]


def test_channels_are_independent_under_loss() -> None:
    """A lost bulk packet does not hold back control messages sent after it."""
    net = FakeNet(seed=5)
    _, _, ca, cb = connected_pair(net)
    dropped = {"n": 0}

    def drop_one_bulk(data: bytes, s: Address, d: Address) -> bool:
        if data[2] == 4 and data[36 + 1] == 1 and dropped["n"] == 0:
            dropped["n"] = 1
            return True
        return False

    net.drop = drop_one_bulk
    ca.send(b"B" * 1000, 1)
    net.flush()  # the bulk message leaves alone in its packet, which is lost
    ca.send(b"C" * 10, 0)
    net.flush()
    got: list[tuple[int, bytes]] = []
    net.run_for(0.015)  # one one-way delay: the control packet arrived, the bulk one did not
    drain(cb, got)
    assert got == [(0, b"C" * 10)]
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) == 2, 5)


def test_a_held_connection_gives_a_large_message_no_room_beyond_the_window() -> None:
    # a node's sessions are held until the peer's handshake is done: a peer that never
    # finishes it made the node buffer a 60 MB message (the window plus its size)
    config = RudpConfig(receive_window=WINDOW)
    net = FakeNet(seed=3)
    a = net.add_host(("10.0.0.1", 1000), config)
    b = net.add_host(("10.0.0.2", 2000), config)
    b.hold_large_messages = True
    ca = a.connect(("10.0.0.2", 2000), net.now)
    big = b"z" * (10 * WINDOW)
    ca.send(big, 1)  # queued before the connection exists: it starts with the first packets
    assert net.run_until(lambda: bool(b.accept_queue), 60)
    cb = b.accept()
    assert cb is not None
    net.run_for(2.0)
    assert cb.recv_streams.max_data <= WINDOW and held_by_receiver(cb) <= WINDOW
    assert ca.send_streams.queued_bytes > 0  # the sender waits: nothing is lost
    cb.recv_streams.hold_large_messages(False)  # released (RudpSession does it for the kernel)
    got: list[tuple[int, bytes]] = []
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) == 1, 60)
    assert got == [(1, big)]
