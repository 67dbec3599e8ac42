"""Capability interfaces: what the kernel and other plugins may rely on.

Each capability has exactly one provider per node, chosen by ``[node] <capability> =
"plugin-name"`` in the config (or automatically when only one plugin offers it). The
interfaces are structural (``typing.Protocol``): a provider need not inherit anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .endpoint import Address

CAPABILITIES = ("transport", "discovery", "store", "swarm", "ai")

# Channel numbers of a session. Lower numbers are served first, so control messages are
# never stuck behind bulk data.
CHANNEL_CONTROL = 0
CHANNEL_BULK = 1

ProgressFn = Callable[[int, int], None]  # (done, total)


# ---------------------------------------------------------------------------- transport


@runtime_checkable
class QueuedMessage(Protocol):
    """A message a session has queued (what ``Session.send`` returns)."""

    def withdraw(self) -> bool:
        """Take the message back if none of it has been sent yet: True if it never will
        be (the peer never learns of it), False if it is (partly) on its way already."""
        ...


@runtime_checkable
class Session(Protocol):
    """A reliable, message-oriented session with one remote endpoint."""

    @property
    def remote_address(self) -> Address: ...

    @property
    def is_open(self) -> bool: ...

    async def send(self, message: bytes, *, channel: int = CHANNEL_BULK) -> QueuedMessage | None:
        """Queue a message; waits (backpressure) while the send buffer is full. Returns a
        handle to withdraw it while it waits, or None if this transport cannot."""
        ...

    def send_nowait(self, message: bytes, *, channel: int = CHANNEL_BULK) -> QueuedMessage | None:
        """Queue a message without waiting; raises ``trio.WouldBlock`` while the send buffer
        is full (nothing is queued then) and SessionClosed once the session has ended.
        Returns what :meth:`send` returns."""
        ...

    async def receive(self) -> tuple[int, bytes]:
        """Next message as (channel, bytes); raises SessionClosed when the session ends."""
        ...

    async def aclose(self) -> None:
        """Graceful close: queued data is delivered first."""
        ...

    def abort(self) -> None:
        """Close at once, telling the peer."""
        ...

    def hold_large_messages(self, held: bool) -> None:
        """While held, a message from the peer longer than the session's receive window
        gets no room beyond it: the peer waits, nothing is lost, and we buffer at most
        the window for it. The kernel holds a session until its peer has proved who it
        is, so a peer that never does cannot make the node buffer a large message."""
        ...

    def stats(self) -> Mapping[str, float | str]:
        """bytes/packets each way, rates, srtt, rttvar, cwnd, in-flight, loss, retransmits
        (numbers), and names such as the session's state and congestion controller."""
        ...


@runtime_checkable
class Transport(Protocol):
    """Reliable sessions multiplexed over the node's datagram endpoint."""

    async def connect(self, addr: Address) -> Session:
        """Open a session; raises SessionClosed (or trio.TooSlowError) if it fails."""
        ...

    async def accept(self) -> Session:
        """Wait for the next incoming session."""
        ...

    def stats(self) -> Mapping[str, float]:
        """Aggregate counters over all sessions."""
        ...


# ---------------------------------------------------------------------------- store


class SharedContent(Protocol):
    """What ``node.share`` returns: a content's manifest (the store's ``Manifest``)."""

    @property
    def rid(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mime(self) -> str: ...
    @property
    def category(self) -> str: ...  # "audio", "video" or "image"
    @property
    def title(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def duration(self) -> float | None: ...  # seconds, where it can be read
    @property
    def width(self) -> int | None: ...  # pixels (images, videos), where it can be read
    @property
    def height(self) -> int | None: ...
    @property
    def thumbnail(self) -> bytes | None: ...  # a small JPEG, where one can be made
    @property
    def piece_size(self) -> int: ...
    @property
    def num_pieces(self) -> int: ...


@runtime_checkable
class Store(Protocol):
    """FileStore (seed 004 §4.4) plus verified, piece-addressed content."""

    def create(self, sid: str) -> None: ...
    def append(self, sid: str, data: bytes) -> None: ...
    def read(self, sid: str, begin: int, end: int) -> bytes: ...
    def set_storage_limit(self, limit_bytes: int) -> None: ...
    def evict_until(self, bytes_needed: int) -> int: ...

    def import_file(
        self, path: Path, *, title: str | None = None, description: str = "",
        progress: ProgressFn | None = None,
    ) -> Any:
        """Hash a file into a manifest, store it pinned; returns the manifest."""
        ...

    async def import_file_async(
        self, path: Path, *, title: str | None = None, description: str = "",
        progress: ProgressFn | None = None,
    ) -> SharedContent:
        """``import_file`` without blocking the node (``node.share`` uses it)."""
        ...

    def manifest(self, rid: str) -> Any | None: ...
    def items(self) -> Sequence[Any]: ...
    def remove(self, rid: str) -> bool: ...


# ---------------------------------------------------------------------------- discovery


@runtime_checkable
class Discovery(Protocol):
    """Finding peers and content."""

    async def bootstrap(self, addresses: Sequence[Address]) -> int:
        """Contact these addresses; returns how many answered."""
        ...

    def network_files(self) -> Sequence[Mapping[str, Any]]:
        """Every file this node knows the network offers (with providers)."""
        ...

    async def search(self, query: str) -> Sequence[Mapping[str, Any]]:
        """Files whose title, description or name contain ``query`` (case-insensitive)."""
        ...

    async def find_providers(self, rid: str) -> Sequence[str]:
        """Peer ids known to hold ``rid``."""
        ...

    def address_of(self, peer_id: str) -> Address | None:
        """Where ``peer_id`` listens, if known (so a swarm can dial a provider it is not
        yet connected to); None if discovery has never heard of it."""
        ...


# ---------------------------------------------------------------------------- swarm


@runtime_checkable
class Swarm(Protocol):
    """Piece exchange between peers."""

    async def download(
        self, rid: str, dest: Path | str | None = None, *, progress: ProgressFn | None = None
    ) -> Path:
        """Fetch every piece of ``rid`` from peers (verified); returns the file's path.
        ``dest``: a file or a directory (as text, a trailing slash says: a directory)."""
        ...


# ---------------------------------------------------------------------------- ai


@runtime_checkable
class AI(Protocol):
    """Media analysis (DeepSeek when configured, local analysis otherwise)."""

    async def analyze(self, path: Path, tasks: Sequence[str]) -> Mapping[str, Any]: ...
