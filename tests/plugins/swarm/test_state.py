"""The per-peer outgoing queues (plugins/swarm/_state.py ``Link``)."""

from __future__ import annotations

from typing import Any

from p2pkit.plugins.swarm import _messages as msg
from p2pkit.plugins.swarm._state import IN_TRANSPORT, Link

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
