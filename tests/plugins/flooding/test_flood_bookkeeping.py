"""The core's bookkeeping kept incrementally (for simulations of a few hundred nodes) says
what a full recount would: the next expiry, and which signatures verify."""

from __future__ import annotations

import random

from p2pkit.plugins.flooding._util import VerifiedSignatures

from p2pkit import Identity
from tests.plugins.flooding.test_flood_core import Net, entry


def _first_expiry(net: Net, index: int) -> float | None:
    records = net.core(index).records.values()
    return min((rec.expires_at for rec in records), default=None)


def test_the_next_expiry_is_the_earliest_of_the_records_through_churn() -> None:
    rng = random.Random(7)
    net = Net(8, expiry=30.0)
    for i in range(1, 8):  # a random tree, then a few shortcuts
        net.link(i, rng.randrange(i))
    for _ in range(4):
        a, b = rng.sample(range(8), 2)
        net.link(a, b)
    for step in range(400):
        net.now += rng.choice((0.0, 0.5, 2.0, 7.0))
        i = rng.randrange(8)
        node = net.ids[i]
        action = rng.random()
        if action < 0.4:  # a new list (or the same one under a new seq)
            net.share(i, *[entry(f"f{i}-{k}.mp4") for k in range(rng.randrange(3))])
        elif action < 0.6 and net.links[node]:  # a neighbour went down
            peer = rng.choice(sorted(net.links[node]))
            net.core(i).peer_down(peer, net.now, rng.choice((1.0, 10.0)))
        elif action < 0.8:  # a new session: sync both ways (a neighbour back gets its life back)
            j = rng.randrange(8)
            if j != i:
                net.connect(i, j)
        else:
            net.core(i).expire(net.now)
        for k in range(8):
            assert net.core(k).next_timer() == _first_expiry(net, k), f"step {step}, core {k}"
    assert any(net.core(k).counters["expired"] for k in range(8))  # expiries did happen


def test_a_signature_verified_once_verifies_only_the_bytes_it_signed() -> None:
    ident = Identity.from_seed(b"\x05" * 32)
    signature = ident.sign(b"the list")
    cache = VerifiedSignatures(capacity=2)
    assert cache.verify(ident.public_key, signature, b"the list")
    assert cache.verify(ident.public_key, signature, b"the list")  # from the cache
    assert not cache.verify(ident.public_key, signature, b"another list")
    assert not cache.verify(ident.public_key, bytes(64), b"the list")
    other = Identity.from_seed(b"\x06" * 32)
    assert not cache.verify(other.public_key, signature, b"the list")
    for n in range(3):  # the oldest goes past the capacity; it still verifies, checked again
        cache.verify(ident.public_key, ident.sign(b"%d" % n), b"%d" % n)
    assert cache.verify(ident.public_key, signature, b"the list")
    assert not cache.verify(ident.public_key, signature, b"another list")
