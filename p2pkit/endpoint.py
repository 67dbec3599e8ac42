"""Datagram endpoints: the one socket a node owns.

A node has exactly one endpoint. Everything a node says on the network (STUN, rudp,
DHT RPC, ...) goes through it, which is what makes NAT hole punching possible.

Receiving is push-based: :meth:`DatagramEndpoint.run` calls ``dispatch(batch, now)``
synchronously with every batch that arrived. The real endpoint does that from its
receive task; the simulator's virtual endpoint is called by the virtual network
directly, so no task is woken per datagram — in a simulation even from the virtual
clock, outside any task. So ``dispatch`` (like a timer callback) is plain synchronous
code: it may wake tasks, set events, send, and ``nursery.start_soon`` work, but must not
rely on running inside a particular task. ``send``/``send_batch`` are synchronous
and never block: UDP may drop, and callers that need backpressure wait on
:meth:`DatagramEndpoint.wait_writable`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import attrs
import trio

Address = tuple[str, int]
Datagram = tuple[bytes, Address]
DispatchFn = Callable[[list[Datagram], float], None]


@attrs.define
class EndpointStats:
    """Byte and datagram counters of one endpoint (monotonic since it opened)."""

    bytes_sent: int = 0
    bytes_received: int = 0
    datagrams_sent: int = 0
    datagrams_received: int = 0
    send_dropped: int = 0  # datagrams refused because the socket buffer was full


@runtime_checkable
class DatagramEndpoint(Protocol):
    """What the kernel needs from a datagram socket (real or simulated)."""

    stats: EndpointStats

    @property
    def local_address(self) -> Address:
        """The (host, port) this endpoint is bound to."""
        ...

    def send(self, data: bytes, addr: Address) -> bool:
        """Queue one datagram; False if it was dropped because the socket is full."""
        ...

    def send_batch(self, datagrams: Sequence[Datagram]) -> int:
        """Send datagrams in order; returns how many were accepted (a prefix)."""
        ...

    async def wait_writable(self) -> None:
        """Wait until a send would be accepted again."""
        ...

    async def run(
        self, dispatch: DispatchFn, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Deliver received batches to ``dispatch`` until cancelled."""
        ...

    def close(self) -> None:
        """Release the socket; idempotent."""
        ...
