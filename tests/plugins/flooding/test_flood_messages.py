"""Hostile input: the decoder and the core reject garbage with RemoteProtocolError only."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2pkit.plugins.flooding import Announce, AnnounceBody, Entry, FloodCore, Hits, Query
from p2pkit.plugins.flooding._messages import (
    MAX_ENTRIES,
    MAX_TTL,
    LanBeacon,
    decode,
    decode_beacon,
    encode,
    encode_beacon,
)

from p2pkit import Identity, RemoteProtocolError

IDENT = Identity.from_seed(b"\x05" * 32)
RID = hashlib.sha256(b"x").hexdigest()

# msgpack-shaped values: what a hostile peer can send that still parses as msgpack
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=20)
    | st.binary(max_size=80),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=25,
)
tagged = st.fixed_dictionaries(
    {"t": st.sampled_from(["ann", "q", "hits", "pex", "zzz"])},
    optional={k: values for k in ("public_key", "body", "signature", "ttl", "host", "qid", "text",
                                  "provider", "entries", "peers")},
)


def _core() -> FloodCore:
    return FloodCore(IDENT.node_id, IDENT.public_key, IDENT.sign)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_escape_as_anything_but_a_remote_error(data: bytes) -> None:
    core = _core()
    try:
        core.receive("a" * 64, "h", data, 0.0, ["b" * 64])
    except RemoteProtocolError:
        pass


@settings(max_examples=400, deadline=None)
@given(tagged)
def test_structured_garbage_is_rejected_or_handled(message: dict[str, object]) -> None:
    core = _core()
    try:
        core.receive("a" * 64, "h", msgspec.msgpack.encode(message), 0.0, ["b" * 64])
    except RemoteProtocolError:
        pass


def _valid_messages() -> list[bytes]:
    sender = Identity.from_seed(b"\x07" * 32)
    core = FloodCore(sender.node_id, sender.public_key, sender.sign)
    core.set_local([Entry(rid=RID, name="x.mp4", size=10, title="X", description="d")])
    return [
        encode(core.make_announce()),
        encode(Query(qid=b"q" * 16, ttl=2, text="cat")),
        encode(Hits(qid=b"q" * 16, provider=IDENT.node_id, entries=[Entry(rid=RID, name="x", size=1)])),
    ]


VALID = _valid_messages()


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                        min_size=1, max_size=4))
def test_corrupted_valid_messages_are_rejected_or_handled(
    data: bytes, flips: list[tuple[int, int]],
) -> None:
    mutated = bytearray(data)
    for position, value in flips:
        mutated[position % len(mutated)] = value
    try:
        _core().receive("a" * 64, "h", bytes(mutated), 0.0, ["b" * 64])
    except RemoteProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_beacons_are_ignored(data: bytes) -> None:
    beacon = decode_beacon(b"\x46" + data)
    assert beacon is None or isinstance(beacon, LanBeacon)


def test_beacon_round_trip() -> None:
    beacon = LanBeacon(id=IDENT.node_id, port=7700)
    assert decode_beacon(encode_beacon(beacon)) == beacon
    assert decode_beacon(b"") is None and decode_beacon(b"\x47" + encode_beacon(beacon)[1:]) is None


def test_every_message_round_trips() -> None:
    messages = [
        Announce(public_key=b"k" * 32, body=b"b", signature=b"s" * 64, ttl=3, host="10.0.0.1"),
        Query(qid=b"q" * 16, ttl=2, text="cat"),
        Hits(qid=b"q" * 16, provider=IDENT.node_id, entries=[Entry(rid=RID, name="x.mp4", size=1)]),
    ]
    for message in messages:
        assert decode(encode(message)) == message


@pytest.mark.parametrize("bad", [
    {"t": "q", "qid": b"short", "ttl": 1, "text": "x"},
    {"t": "q", "qid": b"q" * 16, "ttl": MAX_TTL + 1, "text": "x"},
    {"t": "q", "qid": b"q" * 16, "ttl": -1, "text": "x"},
    {"t": "q", "qid": b"q" * 16, "ttl": 1, "text": ""},
    {"t": "q", "qid": b"q" * 16, "ttl": 1, "text": "x" * 257},
    {"t": "hits", "qid": b"q" * 16, "provider": "nothex", "entries": []},
    {"t": "hits", "qid": b"q" * 16, "provider": "a" * 64,
     "entries": [{"rid": RID, "name": "", "size": 1}]},
    {"t": "hits", "qid": b"q" * 16, "provider": "a" * 64,
     "entries": [{"rid": RID, "name": "x", "size": -1}]},
    {"t": "pex", "peers": [["a" * 64, "h", 0]]},
    {"t": "pex", "peers": [["a" * 64, "h", 1]] * 65},
    {"t": "ann", "public_key": b"k" * 31, "body": b"", "signature": b"s" * 64, "ttl": 1},
    {"t": "nope"},
])
def test_out_of_bounds_fields_are_remote_errors(bad: dict[str, object]) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(msgspec.msgpack.encode(bad))


def _signed(body: dict[str, object]) -> bytes:
    raw = msgspec.msgpack.encode(body)
    from p2pkit.plugins.flooding._core import SIGN_CONTEXT

    return encode(Announce(public_key=IDENT.public_key, body=raw,
                           signature=IDENT.sign(SIGN_CONTEXT + raw), ttl=1))


@pytest.mark.parametrize("body", [
    {"seq": 1, "port": 1, "entries": [{"rid": RID, "name": "x", "size": 1}] * 2},  # rid twice
    {"seq": 1, "port": 1, "entries": [{"rid": RID, "name": "x", "size": 1}] * (MAX_ENTRIES + 1)},
    {"seq": -1, "port": 1, "entries": []},
    {"seq": 1, "port": 70000, "entries": []},
    {"seq": 1, "port": 1},
])
def test_a_signed_but_malformed_body_is_a_remote_error(body: dict[str, object]) -> None:
    other = Identity.from_seed(b"\x06" * 32)
    core = FloodCore(other.node_id, other.public_key, other.sign)
    with pytest.raises(RemoteProtocolError):
        core.receive("a" * 64, "h", _signed(body), 0.0, [])


def test_a_valid_signed_body_is_accepted() -> None:
    other = Identity.from_seed(b"\x06" * 32)
    core = FloodCore(other.node_id, other.public_key, other.sign)
    good = AnnounceBody(seq=1, port=1, entries=[Entry(rid=RID, name="x", size=1)])
    out = core.receive("a" * 64, "h", _signed(msgspec.to_builtins(good)), 0.0, [])
    assert out.added == {RID}
