"""Congestion control: the registry, NewReno's state machine, BBR on a real bottleneck."""

from __future__ import annotations

import pytest
from p2pkit.plugins.rudp import RudpConfig, congestion_controllers, register_congestion_controller
from p2pkit.plugins.rudp.bbr import MIN_CWND_PACKETS, Bbr
from p2pkit.plugins.rudp.congestion import RateSample, congestion_factory
from p2pkit.plugins.rudp.newreno import NewReno

from p2pkit import ConfigError

from .fakenet import FakeNet, FixedWindow, connected_pair, drain

MSS = 1400


def test_registry_has_both_and_default_is_loss_tolerant() -> None:
    assert {"bbr", "newreno"} <= set(congestion_controllers())
    assert congestion_factory("default") is Bbr
    with pytest.raises(ConfigError, match=r"rudp\.congestion.*cubic"):
        congestion_factory("cubic")


def test_newreno_slow_start_avoidance_recovery() -> None:
    cc = NewReno(MSS, 10 * MSS)
    sample = RateSample(newest_sent_time=1.0, prior_in_flight=10 * MSS, srtt=0.1)
    cc.on_ack(1.0, 10 * MSS, sample, 0)
    assert cc.cwnd == 20 * MSS and cc.state == "slow_start"
    cc.on_loss(2.0, MSS, 1.9, 10 * MSS)
    assert cc.cwnd == 10 * MSS and cc.state == "recovery"
    cc.on_loss(2.1, MSS, 1.95, 10 * MSS)  # same episode: no second halving
    assert cc.cwnd == 10 * MSS
    sample.newest_sent_time = 1.99  # acks of packets sent before recovery: no growth
    cc.on_ack(2.2, MSS, sample, 0)
    assert cc.cwnd == 10 * MSS
    sample.newest_sent_time = 2.3
    for _ in range(10):
        cc.on_ack(2.5, MSS, sample, 0)
    assert cc.state == "congestion_avoidance" and cc.cwnd == 11 * MSS  # +1 MSS per window
    cc.on_rto(3.0)
    assert cc.cwnd == 2 * MSS and cc.ssthresh == 5 * MSS + MSS // 2


def goodput(congestion: str, loss: float, seconds: float = 20.0) -> float:
    config = RudpConfig(congestion=congestion)
    net = FakeNet(seed=42, loss=0.0, rate=1.25e6, delay=0.02, queue_limit=0.04)  # 10 Mbit/s
    _, _, ca, cb = connected_pair(net, config, config)
    net.loss = loss
    chunk = b"g" * 50_000
    got: list[tuple[int, bytes]] = []
    start = net.now
    while net.now - start < seconds:
        while ca.can_send:
            ca.send(chunk, 1)
        net.run_for(0.05)
        drain(cb, got)
    return len(got) * len(chunk) / seconds


def test_both_controllers_fill_a_clean_link() -> None:
    for name in ("default", "newreno"):
        assert goodput(name, 0.0, 10.0) > 0.8 * 1.25e6


def test_default_keeps_a_lossy_link_busy_where_newreno_collapses() -> None:
    bbr = goodput("default", 0.05)
    reno = goodput("newreno", 0.05)
    assert bbr > 0.6 * 1.25e6
    assert bbr > 2 * reno


def test_bbr_models_the_bottleneck() -> None:
    net = FakeNet(seed=1, rate=1.25e6, delay=0.02, queue_limit=0.1)
    _, _, ca, cb = connected_pair(net)
    for _ in range(200):
        ca.send(b"m" * 20_000, 1)
    got: list[tuple[int, bytes]] = []
    net.run_for(3.0)
    drain(cb, got)
    cc = ca.cc
    assert isinstance(cc, Bbr)
    assert cc.state in ("probe_bw", "probe_rtt")
    assert 0.8 * 1.25e6 <= cc.btl_bw <= 1.3 * 1.25e6
    assert 0.039 <= cc.min_rtt <= 0.06
    assert ca.rtt.srtt < 0.04 + 0.1  # the queue is not kept full


def test_a_registered_controller_is_used() -> None:
    register_congestion_controller("fixed-test", FixedWindow)
    config = RudpConfig(congestion="fixed-test")
    net = FakeNet(seed=3)
    _, _, ca, cb = connected_pair(net, config, config)
    assert ca.cc.name == "fixed"
    for _ in range(50):
        ca.send(b"f" * 1000, 1)
    peak = 0
    got: list[tuple[int, bytes]] = []
    while len(got) < 50:
        net.step()
        peak = max(peak, ca.recovery.bytes_in_flight)
        drain(cb, got)
    assert peak <= 4 * 1400


def test_app_limited_mark_ends_once_its_flight_is_delivered() -> None:
    """Packets sent while the sender had nothing more are marked, until everything that
    was in flight then is delivered; a sticky flag marked every later bulk packet."""
    net = FakeNet(seed=2, rate=1.25e6, delay=0.02)
    _, _, ca, cb = connected_pair(net)
    ca.send(b"hello", 1)  # a small message: the queue empties with room in the window
    net.run_for(0.01)
    assert ca.recovery.app_limited
    net.run_for(0.2)  # the hello is delivered and acknowledged
    for _ in range(200):  # 4 MB: still sending after a second at 1.25 MB/s
        ca.send(b"b" * 20_000, 1)
    got: list[tuple[int, bytes]] = []
    for _ in range(20):
        net.run_for(0.05)
        drain(cb, got)
    assert ca.send_streams.queued_bytes
    assert not ca.recovery.app_limited
    assert not any(p[-1] for p in list(ca.recovery.sent.values())[-20:])  # bulk is unmarked


def test_bbr_leaves_startup_on_a_bandwidth_plateau_not_on_idle_rounds() -> None:
    """A session that begins with a few request/response messages (hello, manifest) and
    then turns to bulk must still find the path's rate in startup: rounds the application
    left idle are no evidence that the bandwidth stopped growing."""
    net = FakeNet(seed=3, rate=2.5e6, delay=0.01, queue_limit=0.1)
    _, _, ca, cb = connected_pair(net)
    got: list[tuple[int, bytes]] = []
    for _ in range(6):  # six idle rounds of small messages
        ca.send(b"q" * 200, 0)
        net.run_for(0.05)
        drain(cb, got)
    cc = ca.cc
    assert isinstance(cc, Bbr)
    assert cc.state == "startup"
    for _ in range(400):
        ca.send(b"b" * 20_000, 1)
    start = net.now
    while net.now - start < 10 and cc.btl_bw < 0.8 * 2.5e6:
        net.run_for(0.05)
        drain(cb, got)
    # doubling per round from the hello's tiny rate: well under a second of 20 ms rounds
    assert cc.btl_bw >= 0.8 * 2.5e6
    assert net.now - start < 1.0


def _bbr_with_model(rate: float = 1e6, rtt: float = 0.05) -> Bbr:
    """A BBR controller fed a steady rate until it has a model (and a window above it)."""
    cc = Bbr(MSS, 32 * MSS)
    delivered = 0
    for i in range(200):
        delivered += 10 * MSS
        sample = RateSample(delivered=10 * MSS, interval=rtt, delivery_rate=rate,
                            prior_delivered=delivered - 10 * MSS, total_delivered=delivered,
                            rtt=rtt, min_rtt=rtt, srtt=rtt, newest_sent_time=i * 0.01)
        cc.on_ack(i * 0.01, 10 * MSS, sample, 20 * MSS)
    return cc


def test_bbr_repairs_losses_within_what_is_delivered() -> None:
    """Linux BBR's recovery: a loss does not change the model (random loss must not slow
    it), but the window drops to what is still in flight and grows back only by what is
    acknowledged — also after the episode ends (no jump back to the old window). Without
    it, sessions sharing one full uplink queue re-sent their losses at 2.9x their share
    and kept the queue overflowing."""
    cc = _bbr_with_model()
    before, bw, pacing = cc.cwnd, cc.btl_bw, cc.pacing_rate
    assert before > 20 * MSS
    now = 2.0
    cc.on_loss(now, 5 * MSS, newest_lost_sent_time=now - 0.05, bytes_in_flight=10 * MSS)
    assert cc.in_recovery
    assert cc.cwnd == 10 * MSS  # only what is in flight: the repair adds nothing to a queue
    assert (cc.btl_bw, cc.pacing_rate) == (bw, pacing)  # the model ignores the loss
    delivered = 10**6
    # acks of packets sent before the loss: the window grows by what they deliver, no more
    sample = RateSample(delivered=MSS, interval=0.05, delivery_rate=1e6,
                        prior_delivered=delivered, total_delivered=delivered + MSS,
                        rtt=0.05, min_rtt=0.05, srtt=0.05, newest_sent_time=now - 0.01)
    cc.on_ack(now + 0.01, MSS, sample, 9 * MSS)
    assert cc.cwnd <= 11 * MSS
    cc.on_loss(now + 0.02, 2 * MSS, newest_lost_sent_time=now - 0.02, bytes_in_flight=7 * MSS)
    assert cc.cwnd <= 9 * MSS  # a further loss in the episode takes its bytes off
    # a packet sent after the episode began is acknowledged: repaired, window restored
    sample = RateSample(delivered=MSS, interval=0.05, delivery_rate=1e6,
                        prior_delivered=delivered, total_delivered=delivered + 2 * MSS,
                        rtt=0.05, min_rtt=0.05, srtt=0.05, newest_sent_time=now + 0.03)
    cc.on_ack(now + 0.08, MSS, sample, 5 * MSS)
    assert not cc.in_recovery
    assert cc.cwnd <= 11 * MSS  # repaired, but no jump: it grows back by what is acked
    total = delivered + 2 * MSS
    for i in range(200):  # a steady flow of acks brings it back to the model's target
        total += 2 * MSS
        sample = RateSample(delivered=2 * MSS, interval=0.05, delivery_rate=1e6,
                            prior_delivered=total - 2 * MSS, total_delivered=total,
                            rtt=0.05, min_rtt=0.05, srtt=0.05, newest_sent_time=now + 0.1 + i * 0.01)
        cc.on_ack(now + 0.1 + i * 0.01, 2 * MSS, sample, cc.cwnd)
    assert cc.cwnd >= before * 0.9


def test_small_exchanges_do_not_pace_a_new_session_to_a_crawl() -> None:
    # Linux BBR: until the bottleneck is found the pacing rate only grows, from the initial
    # window per round trip. A first exchange of one small message is an app-limited
    # sample of ~1 KB/s; pacing at 2.9x that made the next small message wait over a
    # second behind the pacer.
    net = FakeNet(seed=4, delay=0.030)
    _, _, ca, cb = connected_pair(net)
    got: list[tuple[int, bytes]] = []
    for i in range(5):
        start = net.now
        ca.send(b"one small request", 1)

        def delivered(i: int = i) -> bool:
            return drain(cb, got) >= 0 and len(got) > i

        assert net.run_until(delivered, 2.0)
        assert net.now - start <= 0.031  # one way across, no pacer delay
        net.run_for(0.5)
    assert ca.cc.pacing_rate >= 2 * 32 * 1400 / 0.060  # gain x initial window / RTT


class SlowPacer(FixedWindow):
    """A wide window paced at 10 KB/s: a session whose samples so far were small messages."""

    WINDOW_PACKETS = 64
    RATE = 10_000.0

    def __init__(self, max_datagram: int, initial_cwnd: int) -> None:
        super().__init__(max_datagram, initial_cwnd)
        self.pacing_rate = self.RATE


def test_a_short_message_behind_a_slow_pacer_waits_only_for_its_own_size() -> None:
    """The pacer wakes up for a quantum of two full datagrams, but a short datagram (the
    queue's last bytes) needs only its own size in tokens. Held for the quantum, an
    800-byte reply on a session paced slowly waited 100-200 ms (the swarm's manifest
    replies at the start of a run: 160 ms for a third of the leechers)."""
    register_congestion_controller("slow-pacer-test", SlowPacer)
    config = RudpConfig(congestion="slow-pacer-test")
    net = FakeNet(seed=4, delay=0.030)
    _, _, ca, cb = connected_pair(net, config, config)
    got: list[tuple[int, bytes]] = []
    start = net.now
    ca.send(b"r" * 800, 1)  # the pacer has earned ~600 bytes since the session began
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) == 1, 1.0)
    # one way across, plus at most the pacer's wait for the datagram's ~850 bytes
    assert net.now - start <= 0.030 + 850 / SlowPacer.RATE
    # a transfer longer than the burst is still paced at the rate
    start = net.now
    ca.send(b"b" * 60_000, 1)
    assert net.run_until(lambda: drain(cb, got) >= 0 and len(got) == 2, 30.0)
    assert net.now - start >= (60_000 - 16 * 1400) / SlowPacer.RATE


def test_bbr_startup_pacing_never_falls_to_a_low_sample() -> None:
    """Linux BBR's rule for all of startup, not only for app-limited samples: the pacing
    rate, once up, only grows until the bottleneck is found. A session paced at the floor
    (all its samples app-limited so far) lost it at its first low sample that was not,
    and paced at 2.9x a few KB/s: a 16 KiB block then took half a second."""
    cc = Bbr(MSS, 32 * MSS)
    hello = RateSample(delivered=200, interval=0.2, delivery_rate=1000, prior_delivered=0,
                       total_delivered=200, rtt=0.05, min_rtt=0.05, srtt=0.05,
                       newest_sent_time=0.0, is_app_limited=True)  # one small message
    cc.on_ack(0.05, 200, hello, 0)
    before = cc.pacing_rate
    assert before >= 2 * 32 * MSS / 0.05  # gain x initial window / RTT
    slow = RateSample(delivered=2 * MSS, interval=1.0, delivery_rate=2 * MSS,
                      prior_delivered=200, total_delivered=200 + 2 * MSS, rtt=0.05,
                      min_rtt=0.05, srtt=0.05, newest_sent_time=0.1)  # not app-limited
    cc.on_ack(1.1, 2 * MSS, slow, 0)
    assert cc.state == "startup"
    assert cc.pacing_rate >= before
    # once the bottleneck is found, the rate follows the model down as well
    model = _bbr_with_model(rate=1e6)
    assert model.state != "startup"
    assert model.pacing_rate < 2 * 1e6


def test_bbr_keeps_its_model_through_a_retransmission_timeout() -> None:
    """Linux BBR keeps the model through an RTO; only the window collapses. Restarting
    from startup (the old rule) paced at 2.9x the initial window per RTT into the very
    queue whose delay had caused the timeout (swarm N = 100: 23 000 timeouts)."""
    cc = _bbr_with_model()
    state, bw, min_rtt, pacing = cc.state, cc.btl_bw, cc.min_rtt, cc.pacing_rate
    assert state != "startup"
    now = 2.0
    cc.on_rto(now)
    assert cc.cwnd == MIN_CWND_PACKETS * MSS  # everything in flight was declared lost
    assert (cc.state, cc.btl_bw, cc.min_rtt, cc.pacing_rate) == (state, bw, min_rtt, pacing)
    assert cc.in_recovery
    total = 10**6
    for i in range(100):  # acks of the repair: the window grows back by what they deliver
        total += 2 * MSS
        sample = RateSample(delivered=2 * MSS, interval=0.05, delivery_rate=1e6,
                            prior_delivered=total - 2 * MSS, total_delivered=total,
                            rtt=0.05, min_rtt=0.05, srtt=0.05,
                            newest_sent_time=now + 0.01 + i * 0.01)
        before = cc.cwnd
        cc.on_ack(now + 0.05 + i * 0.01, 2 * MSS, sample, cc.cwnd)
        assert cc.cwnd <= before + 2 * MSS
    assert not cc.in_recovery
    assert cc.cwnd > 20 * MSS


def _startup_round(cc: Bbr, i: int, total: int, rate: float) -> int:
    """One round trip of startup: one ack delivering 10 packets at ``rate``."""
    sample = RateSample(delivered=10 * MSS, interval=0.05, delivery_rate=rate,
                        prior_delivered=total, total_delivered=total + 10 * MSS,
                        rtt=0.05, min_rtt=0.05, srtt=0.05, newest_sent_time=i * 0.05)
    cc.on_ack(i * 0.05, 10 * MSS, sample, 20 * MSS)
    return total + 10 * MSS


@pytest.mark.parametrize(("losses", "state"), [(2, "startup"), (6, "drain")])
def test_bbr_startup_ends_when_a_round_loses_too_much(losses: int, state: str) -> None:
    """BBR v2/v3's second way out of startup: a round with several separate losses costing
    over 2 % of what it carried means the doubling rate hit a queue's end. Sessions that
    share a swarm node's uplink never see their bandwidth plateau (each round some of them
    are application-limited), so without it they kept pacing at 2.9x their share into the
    uplink's queue. One or two losses (a lossy path) do not end startup."""
    cc = Bbr(MSS, 32 * MSS)
    total, rate = 0, 1e5
    for i in range(5):  # the delivery rate still doubles every round: no plateau
        total = _startup_round(cc, i, total, rate)
        rate *= 2
    assert cc.state == "startup"
    for _ in range(losses):
        cc.on_loss(0.3, MSS, newest_lost_sent_time=0.25, bytes_in_flight=20 * MSS)
    _startup_round(cc, 6, total, rate)  # the next round starts: the last one is judged
    assert cc.state == state
