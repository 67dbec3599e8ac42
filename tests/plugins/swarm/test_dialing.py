"""Addresses members tell us of: a dead one waits before it is dialled again, and a member
whose suggestions keep failing cannot fill the dial slots."""

from __future__ import annotations

from p2pkit.plugins.swarm._dialing import DOUBTED_AFTER, REMEMBERED, RETRY_AFTER_S, DialPolicy

A = ("192.0.2.1", 7000)


def test_a_failed_address_waits_longer_each_time() -> None:
    dials = DialPolicy()
    now = 0.0
    waits = []
    for _ in range(4):
        assert dials.may_dial(A, "liar", now)
        dials.started(A, "liar")
        assert not dials.may_dial(A, "other", now)  # one dial of an address at a time
        dials.finished(A, False, now)
        assert not dials.may_dial(A, "other", now + RETRY_AFTER_S / 2)
        wait = RETRY_AFTER_S
        while not dials.may_dial(A, "other", now + wait):
            wait *= 2
        waits.append(wait)
        now += wait
    assert waits == [RETRY_AFTER_S, 2 * RETRY_AFTER_S, 4 * RETRY_AFTER_S, 8 * RETRY_AFTER_S]


def test_a_member_whose_suggestions_fail_gets_one_dial_at_a_time() -> None:
    dials = DialPolicy()
    for i in range(DOUBTED_AFTER):
        addr = ("192.0.2.1", 7000 + i)
        dials.started(addr, "liar")
        dials.finished(addr, False, 0.0)
    fresh = [("192.0.2.2", 7000 + i) for i in range(3)]
    assert dials.may_dial(fresh[0], "liar", 0.0)
    dials.started(fresh[0], "liar")
    assert not dials.may_dial(fresh[1], "liar", 0.0)  # its one slot is taken
    assert dials.may_dial(fresh[1], "honest", 0.0)  # others' suggestions are not held up
    dials.finished(fresh[0], True, 1.0)  # a suggestion that worked earns some trust back
    assert dials.may_dial(fresh[1], "liar", 1.0)
    dials.started(fresh[1], "liar")
    assert dials.may_dial(fresh[2], "liar", 1.0)


def test_success_clears_an_address_and_memory_is_bounded() -> None:
    dials = DialPolicy()
    dials.started(A, "x")
    dials.finished(A, False, 0.0)
    dials.started(A, "x")
    dials.finished(A, True, 100.0)
    assert dials.may_dial(A, "x", 100.0)
    for i in range(REMEMBERED + 10):
        addr = ("198.51.100.1", i)
        dials.started(addr, f"m{i}")
        dials.finished(addr, False, 0.0)
    assert len(dials._retry) == REMEMBERED
    assert dials.may_dial(("198.51.100.1", 0), "y", 1.0)  # the oldest was forgotten
    assert not dials.may_dial(("198.51.100.1", REMEMBERED + 9), "y", 1.0)
