"""The ``sim`` peer protocol treats input as hostile: garbage is a RemoteProtocolError."""

from __future__ import annotations

import types

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from p2pkit.simulator import Simulation
from p2pkit.simulator._workloads import _DATA, _FLOW_DATA, Flow, SimProtocol

from p2pkit._exceptions import RemoteProtocolError


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_never_escapes_as_anything_but_a_protocol_error(payload: bytes) -> None:
    sim = Simulation(seed=1)
    sim.flows[1] = Flow(1, "f", "a", "b", 10, 0.0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            node = types.SimpleNamespace(nursery=nursery)
            protocol = SimProtocol(sim, types.SimpleNamespace(name="b"), node)  # type: ignore[arg-type]
            sent: list[bytes] = []  # a ping is answered with a pong through send_nowait
            peer = types.SimpleNamespace(
                closed=trio.Event(), send_nowait=lambda protocol, data, channel: sent.append(data))
            try:
                await protocol.handle(peer, payload)  # type: ignore[arg-type]
            except RemoteProtocolError:
                pass
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert sim.flows[1].received <= max(0, len(payload) - _DATA.size)


def test_flow_data_is_counted_and_completes() -> None:
    sim = Simulation(seed=1)
    sim.flows[7] = Flow(7, "f", "a", "b", 10, 0.0)
    sim.flows[7].started = 0.0

    async def main() -> None:
        protocol = SimProtocol(sim, types.SimpleNamespace(name="b"), None)  # type: ignore[arg-type]
        await protocol.handle(None, _DATA.pack(_FLOW_DATA, 7) + b"x" * 6)  # type: ignore[arg-type]
        await protocol.handle(None, _DATA.pack(_FLOW_DATA, 7) + b"y" * 4)  # type: ignore[arg-type]

    trio.run(main, clock=trio.testing.MockClock())
    assert sim.flows[7].received == 10 and sim.flows[7].completed == 0.0
