"""Small helpers for simulator tests: a recording endpoint driver."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import trio
from p2pkit.simulator import Network, VirtualEndpoint


class Recorder:
    """Runs an endpoint and records (time, data, source address) of every datagram."""

    def __init__(self, endpoint: VirtualEndpoint) -> None:
        self.endpoint = endpoint
        self.received: list[tuple[float, bytes, tuple[str, int]]] = []

    def dispatch(self, batch: list[tuple[bytes, tuple[str, int]]], now: float) -> None:
        for data, addr in batch:
            self.received.append((now, data, addr))

    @property
    def payloads(self) -> list[bytes]:
        return [data for _t, data, _a in self.received]


@contextlib.asynccontextmanager
async def running(network: Network, *endpoints: VirtualEndpoint) -> AsyncIterator[list[Recorder]]:
    """Start the network task and a Recorder per endpoint; cancel all on exit."""
    async with trio.open_nursery() as nursery:
        await nursery.start(network.run)
        recorders = [Recorder(ep) for ep in endpoints]
        for recorder in recorders:
            await nursery.start(recorder.endpoint.run, recorder.dispatch)
        yield recorders
        nursery.cancel_scope.cancel()
