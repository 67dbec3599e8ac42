import trio
import trio.lowlevel

from p2pkit.events import Event, EventBus, GenericEvent, PeerUp
from p2pkit.rates import RateMeter


def test_rate_over_a_sliding_window() -> None:
    meter = RateMeter(window=5.0, resolution=0.5)
    counter = 0
    for step in range(21):  # 10 s at 1000 units/s
        meter.sample(step * 0.5, counter)
        counter += 500
    assert abs(meter.rate(10.0, 10_000) - 1000) < 1e-9
    # traffic stops: the rate decays as the window slides past the old samples
    assert meter.rate(20.0, 10_000) == 0.0


def test_rate_with_no_history_is_zero() -> None:
    assert RateMeter().rate(0.0, 0) == 0.0


async def test_bus_fans_out_to_observer_and_subscribers() -> None:
    seen: list[Event] = []
    bus = EventBus(seen.append, buffer=2)
    async with bus.subscribe() as events:
        bus.emit(PeerUp(peer_id="a", address=("h", 1)))
        assert events.receive_nowait().kind == "peer.up"
    assert [e.kind for e in seen] == ["peer.up"]
    bus.emit(GenericEvent(kind="x"))  # no subscriber left: nothing breaks


async def test_a_full_subscriber_misses_new_events_and_never_blocks() -> None:
    bus = EventBus(lambda e: None, buffer=2)
    async with bus.subscribe() as events:
        for i in range(5):
            bus.emit(GenericEvent(kind="tick", data={"i": i}))
        assert bus.dropped == 3
        got = [events.receive_nowait().as_dict()["i"] for _ in range(2)]
        assert got == [0, 1]
        with trio.testing.assert_checkpoints():
            await trio.lowlevel.checkpoint()


def test_event_dicts_are_json_ready() -> None:
    assert PeerUp(peer_id="p", address=("h", 2)).as_dict() == {
        "kind": "peer.up", "peer_id": "p", "address": ("h", 2)}
    assert GenericEvent(kind="download.progress", data={"done": 1}).as_dict() == {
        "kind": "download.progress", "done": 1}
