"""A virtual UDP endpoint implementing the kernel's ``DatagramEndpoint`` interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import trio

from p2pkit.addresses import check_send_host
from p2pkit.endpoint import Address, Datagram, DispatchFn, EndpointStats
from p2pkit.timers import TimerCallback

if TYPE_CHECKING:
    from ._network import Host, NetworkTimer

# Datagrams a bound endpoint buffers before ``run`` registers its dispatch function,
# like a socket's receive buffer; more are dropped ("rcvbuf").
RECEIVE_BUFFER_DATAGRAMS: Final = 256

# Hosts sent to, known to be IP literals (shared by every virtual endpoint), so the check
# costs a set lookup per datagram; code that sends to a name fails in the simulator as it
# would on a real socket (p2pkit.addresses.check_send_host).
_IP_HOSTS: Final[set[str]] = set()


def _check_host(host: str) -> None:
    check_send_host(host, _IP_HOSTS, "VirtualEndpoint")


class VirtualEndpoint:
    """One bound port of a simulated host.

    ``send`` hands the datagram to the network synchronously and, like a UDP socket, reports
    success even if the network later drops it (the drop is counted by reason). A
    destination host must be an IP literal, as for ``UdpEndpoint`` (ValueError). Received
    datagrams are pushed by the network task straight into ``dispatch`` (see ``run``), and
    its timers (``timer``) are fired by that task too: a simulated node's protocol timers
    cost no trio task.
    """

    def __init__(self, host: Host, port: int) -> None:
        self.host = host
        self.port = port
        self.stats = EndpointStats()
        self._dispatch: DispatchFn | None = None
        self._pending: list[Datagram] = []
        self._timers: list[NetworkTimer] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"<VirtualEndpoint {self.host.name} {self.host.ip}:{self.port}>"

    @property
    def local_address(self) -> Address:
        return (self.host.ip, self.port)

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, data: bytes, addr: Address) -> bool:
        if addr[0] not in _IP_HOSTS:
            _check_host(addr[0])
        if self._closed:
            return False
        stats = self.stats
        stats.datagrams_sent += 1
        stats.bytes_sent += len(data)
        self.host.network.send(self.host, self.port, data, addr)
        return True

    def send_batch(self, datagrams: Sequence[Datagram]) -> int:
        for _data, addr in datagrams:  # every host checked before anything is sent
            if addr[0] not in _IP_HOSTS:
                _check_host(addr[0])
        if self._closed:
            return 0
        host, port = self.host, self.port
        network = host.network  # network.send(...) is a native call; a bound method is not
        nbytes = 0
        for data, addr in datagrams:
            nbytes += len(data)
            network.send(host, port, data, addr)
        stats = self.stats  # counted once per batch: an attrs object, not compiled
        stats.datagrams_sent += len(datagrams)
        stats.bytes_sent += nbytes
        return len(datagrams)

    def timer(self, callback: TimerCallback) -> NetworkTimer:
        """A :class:`p2pkit.timers.Timer` fired by the network task; closed with the
        endpoint."""
        timer = self.host.network.timer(callback)
        if self._closed:
            timer.close()
        else:
            self._timers.append(timer)
        return timer

    async def wait_writable(self) -> None:
        """Returns at once: the virtual socket never refuses a send (queue overflow is a
        network drop). ClosedResourceError once the endpoint is closed, as for
        ``UdpEndpoint``: a writer waiting for room would otherwise loop on it for ever, and
        the virtual clock, which moves only when every task waits, would stand still."""
        if self._closed:
            raise trio.ClosedResourceError("endpoint is closed")
        await trio.lowlevel.checkpoint()

    async def run(
        self, dispatch: DispatchFn, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self._closed:
            raise trio.ClosedResourceError("endpoint is closed")
        if self._dispatch is not None:
            raise trio.BusyResourceError("endpoint is already running")
        self._dispatch = dispatch
        try:
            task_status.started()
            if self._pending:
                pending, self._pending = self._pending, []
                dispatch(pending, trio.current_time())
            await trio.sleep_forever()
        finally:
            self._dispatch = None

    def _deliver(self, batch: list[Datagram], now: float, nbytes: int) -> None:
        """Called by the network task at a delivery instant."""
        stats = self.stats
        host = self.host
        dispatch = self._dispatch
        if dispatch is None:
            room = RECEIVE_BUFFER_DATAGRAMS - len(self._pending)
            if room < len(batch):
                for _ in range(len(batch) - max(room, 0)):
                    host._drop("rcvbuf")
                batch = batch[: max(room, 0)]
                nbytes = sum(len(d) for d, _a in batch)
            self._pending.extend(batch)
        stats.datagrams_received += len(batch)
        stats.bytes_received += nbytes
        host.datagrams_received += len(batch)
        host.bytes_received += nbytes
        if dispatch is not None:
            dispatch(batch, now)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending = []
        for timer in self._timers:
            timer.close()
        self._timers = []
        if self.host.endpoints.get(self.port) is self:
            del self.host.endpoints[self.port]
