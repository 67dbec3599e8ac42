"""The per-peer outgoing queues (plugins/swarm/_state.py ``Link``)."""

from __future__ import annotations

from typing import Any, cast

from p2pkit.plugins.swarm import _messages as msg
from p2pkit.plugins.swarm._state import IN_TRANSPORT, MAX_CONTROL_MESSAGES, Link

RID = "ab" * 32


class Queued:
    """A transport's QueuedMessage that is still waiting (or not)."""

    def __init__(self, waiting: bool = True) -> None:
        self.waiting = waiting
        self.withdrawn = False

    def withdraw(self) -> bool:
        if not self.waiting:
            return False
        self.waiting = False
        self.withdrawn = True
        return True


def request(offset: int) -> msg.Request:
    return msg.Request(bytes.fromhex(RID), 3, offset, 16384)


def link() -> Link:
    peer: Any = object()  # the Link only keeps it for its writer task
    return Link(peer)


def test_a_cancelled_upload_still_in_the_transport_is_withdrawn_once() -> None:
    lk = link()
    queued = Queued()
    lk.handed_over(RID, request(0), queued)
    assert lk.withdraw_upload(RID, request(16384)) is False  # another block
    assert lk.withdraw_upload(RID, request(0)) is True and queued.withdrawn
    assert lk.withdraw_upload(RID, request(0)) is False  # forgotten once used


def test_an_upload_that_already_left_is_not_withdrawn() -> None:
    lk = link()
    lk.handed_over(RID, request(0), Queued(waiting=False))
    assert lk.withdraw_upload(RID, request(0)) is False


def test_only_the_last_few_uploads_are_remembered() -> None:
    """The writer hands a session a block or two ahead; older handles are dropped so a
    long upload does not keep one per block."""
    lk = link()
    handles = [Queued() for _ in range(IN_TRANSPORT + 5)]
    for i, q in enumerate(handles):
        lk.handed_over(RID, request(i * 16384), q)
    assert len(lk.in_transport) == IN_TRANSPORT
    assert lk.withdraw_upload(RID, request(0)) is False
    assert lk.withdraw_upload(RID, request((IN_TRANSPORT + 4) * 16384)) is True


def test_a_transport_without_withdraw_is_fine() -> None:
    lk = link()
    lk.handed_over(RID, request(0), None)
    assert not lk.in_transport
    assert lk.withdraw_upload(RID, request(0)) is False


def test_closing_forgets_the_handles() -> None:
    lk = link()
    lk.handed_over(RID, request(0), Queued())
    lk.close()
    assert lk.withdraw_upload(RID, request(0)) is False


def test_the_link_counts_the_bytes_its_queued_uploads_ask_for() -> None:
    """What a node's upload backlog is measured in (a full one rejects new requests)."""
    lk = link()
    for i in range(3):
        lk.queue_upload(RID, request(i * 16384))
    lk.queue_upload("cd" * 32, request(0))
    assert lk.upload_bytes == 4 * 16384
    assert lk.next_upload() == (RID, request(0))
    assert lk.upload_bytes == 3 * 16384
    lk.cancel_upload(RID, request(16384))
    assert lk.upload_bytes == 2 * 16384
    lk.cancel_upload(RID)
    assert lk.upload_bytes == 16384 and len(lk.uploads) == 1
    lk.close()
    assert lk.upload_bytes == 0


def test_a_block_already_coming_to_the_peer_is_known_as_such() -> None:
    """A greedy peer keeping eight requests out for one block took two thirds of a
    seeder's uplink: a request for a block queued for it or handed to the transport
    lately is not served again."""
    lk = link()
    lk.queue_upload(RID, request(0))
    lk.queue_upload(RID, request(16384))
    assert lk.is_coming(RID, request(0)) and not lk.is_coming(RID, request(32768))
    lk.cancel_upload(RID, request(16384))
    assert not lk.is_coming(RID, request(16384))
    assert lk.next_upload() == (RID, request(0))
    lk.handed_over(RID, request(0), cast(Any, Queued()))  # in the transport: still coming
    assert lk.is_coming(RID, request(0))
    for i in range(1, IN_TRANSPORT + 1):  # long gone: may be asked for again
        lk.handed_over(RID, request(i * 16384), cast(Any, Queued()))
    assert not lk.is_coming(RID, request(0))
    lk.queue_upload(RID, request(0))
    lk.close()
    assert not lk.queued


class ClosablePeer:
    def __init__(self) -> None:
        self.closed_because: str | None = None

    def close(self, reason: str) -> None:
        self.closed_because = reason


def test_a_repeated_manifest_request_is_answered_by_the_copy_already_queued() -> None:
    # 40 000 ManifestRequests (38 bytes each) once queued 63 MB of manifest copies
    peer = ClosablePeer()
    lk = Link(cast(Any, peer))
    rid = bytes.fromhex(RID)
    for _ in range(40_000):
        lk.send(msg.ManifestResponse(rid, b"m" * 2000))
    assert len(lk.control) == 1 and peer.closed_because is None
    assert isinstance(lk.next_control(), msg.ManifestResponse) and lk.control_bytes == 0
    lk.send(msg.ManifestResponse(rid, b"m" * 2000))  # sent: the next request is answered
    assert len(lk.control) == 1


def test_a_peer_that_leaves_its_replies_unread_is_dropped() -> None:
    peer = ClosablePeer()
    lk = Link(cast(Any, peer))
    rid = bytes.fromhex(RID)
    for i in range(MAX_CONTROL_MESSAGES):
        lk.send(msg.Reject(rid, 0, 0, 16384 - i % 2))
    assert not lk.closed and peer.closed_because is None
    lk.send(msg.Reject(rid, 0, 0, 16384))
    assert lk.closed and lk.overrun and not lk.control and lk.control_bytes == 0
    assert peer.closed_because is not None and "unread" in peer.closed_because
    lk.send(msg.Have(rid, 1))  # a closed link takes nothing more
    assert not lk.control
