"""Hostile input: the decoder and the core reject garbage with RemoteProtocolError only."""

from __future__ import annotations

import hashlib

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2pkit.plugins.flooding import Announce, AnnounceBody, Entry, FloodCore, Hits, Query
from p2pkit.plugins.flooding._core import HITS_CONTEXT
from p2pkit.plugins.flooding._messages import (
    MAX_ENTRIES,
    MAX_HITS,
    MAX_HITS_BODY,
    MAX_TTL,
    Digest,
    Done,
    Held,
    HitsBody,
    LanBeacon,
    Message,
    PeerInfo,
    PeerList,
    decode,
    decode_beacon,
    decode_hits_body,
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
    {"t": st.sampled_from(["ann", "q", "hits", "pex", "dig", "done", "zzz"])},
    optional={k: values for k in ("public_key", "body", "signature", "ttl", "host", "qid", "text",
                                  "provider", "entries", "peers", "held")},
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


SENDER = Identity.from_seed(b"\x07" * 32)


def _valid_messages() -> list[bytes]:
    core = FloodCore(SENDER.node_id, SENDER.public_key, SENDER.sign)
    core.set_local([Entry(rid=RID, name="x.mp4", size=10, title="X", description="d")])
    return [
        encode(core.make_announce()),
        encode(Query(qid=b"q" * 16, ttl=2, text="cat")),
        encode(core.make_hits(b"q" * 16, [Entry(rid=RID, name="x", size=1)])),
        encode(Digest(held=[Held(bytes.fromhex(RID), 5), Held(b"\x01" * 32, 2**40)])),
        encode(Done(qid=b"q" * 16)),
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
    messages: list[Message] = [
        Announce(public_key=b"k" * 32, body=b"b", signature=b"s" * 64, ttl=3, host="10.0.0.1"),
        Query(qid=b"q" * 16, ttl=2, text="cat"),
        _core().make_hits(b"q" * 16, [Entry(rid=RID, name="x.mp4", size=1)]),
    ]
    for message in messages:
        assert decode(encode(message)) == message
    body = HitsBody(qid=b"q" * 16, provider=IDENT.node_id, entries=[Entry(rid=RID, name="x", size=1)])
    assert decode_hits_body(encode(body)) == body


HITS = {"t": "hits", "qid": b"q" * 16, "provider": "a" * 64, "public_key": b"k" * 32,
        "body": b"", "signature": b"s" * 64}


def test_a_well_formed_hits_template_decodes() -> None:
    """The template the cases below break is itself valid, so each case tests its field."""
    assert isinstance(decode(msgspec.msgpack.encode(HITS)), Hits)


@pytest.mark.parametrize("bad", [
    {"t": "q", "qid": b"short", "ttl": 1, "text": "x"},
    {"t": "q", "qid": b"q" * 16, "ttl": MAX_TTL + 1, "text": "x"},
    {"t": "q", "qid": b"q" * 16, "ttl": -1, "text": "x"},
    {"t": "q", "qid": b"q" * 16, "ttl": 1, "text": ""},
    {"t": "q", "qid": b"q" * 16, "ttl": 1, "text": "x" * 257},
    {**HITS, "provider": "nothex"},
    {**HITS, "qid": b"short"},
    {**HITS, "public_key": b"k" * 31},
    {**HITS, "signature": b"s" * 63},
    {**HITS, "body": b"b" * (MAX_HITS_BODY + 1)},
    {k: v for k, v in HITS.items() if k != "signature"},  # unsigned (a version-1 answer)
    {k: v for k, v in HITS.items() if k != "public_key"},
    {"t": "hits", "qid": b"q" * 16, "provider": "a" * 64, "entries": []},  # version 1
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


# ---------------------------------------------------------------- signed hits


@pytest.mark.parametrize("body", [
    {"qid": b"q" * 16, "provider": "a" * 64, "entries": [{"rid": RID, "name": "", "size": 1}]},
    {"qid": b"q" * 16, "provider": "a" * 64, "entries": [{"rid": RID, "name": "x", "size": -1}]},
    {"qid": b"q" * 16, "provider": "a" * 64,
     "entries": [{"rid": RID, "name": "x", "size": 1}] * (MAX_HITS + 1)},
    {"qid": b"short", "provider": "a" * 64, "entries": []},
    {"qid": b"q" * 16, "provider": "nothex", "entries": []},
    {"qid": b"q" * 16, "entries": []},
    [1, 2, 3],
])
def test_malformed_hits_bodies_are_remote_errors(body: object) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_hits_body(msgspec.msgpack.encode(body))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | values.map(msgspec.msgpack.encode)
       | st.fixed_dictionaries({}, optional={k: values for k in ("qid", "provider", "entries")})
       .map(msgspec.msgpack.encode))
def test_the_hits_body_decoder_raises_only_remote_errors(data: bytes) -> None:
    try:
        body = decode_hits_body(data)
    except RemoteProtocolError:
        return
    assert isinstance(body, HitsBody) and len(body.entries) <= MAX_HITS


def _asking_core() -> tuple[FloodCore, bytes, set[str]]:
    """A core with a search in flight, and the rids its genuine answer (from SENDER) holds."""
    core = _core()
    qid, _ = core.start_query("x", 0.0, ["a" * 64])
    return core, qid, {RID}


def _genuine_answer(qid: bytes) -> bytes:
    provider = FloodCore(SENDER.node_id, SENDER.public_key, SENDER.sign)
    return encode(provider.make_hits(qid, [Entry(rid=RID, name="x.mp4", size=10, title="X")]))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_a_relay_that_alters_any_byte_of_an_answer_gains_nothing(
    flips: list[tuple[int, int]],
) -> None:
    """Whatever bytes a relay changes, the asker either rejects the answer (remote error)
    or drops it as not for its query; it never lists anything the provider did not sign."""
    core, qid, genuine_rids = _asking_core()
    genuine = _genuine_answer(qid)
    mutated = bytearray(genuine)
    for position, value in flips:
        mutated[position % len(mutated)] = value
    try:
        core.receive("a" * 64, "h", bytes(mutated), 0.0, ["a" * 64])
    except RemoteProtocolError:
        assert core.query_results(qid) == []
        return
    for row in core.query_results(qid):
        assert row["rid"] in genuine_rids and row["providers"] == [SENDER.node_id]
        assert row["name"] == "x.mp4" and row["size"] == 10


def test_a_signed_but_malformed_hits_body_is_forged_and_a_remote_error() -> None:
    core, qid, _ = _asking_core()
    raw = msgspec.msgpack.encode({"qid": qid, "provider": SENDER.node_id,
                                  "entries": [{"rid": RID, "name": "", "size": 1}]})
    hits = Hits(qid=qid, provider=SENDER.node_id, public_key=SENDER.public_key, body=raw,
                signature=SENDER.sign(HITS_CONTEXT + raw))
    with pytest.raises(RemoteProtocolError, match="malformed hits body"):
        core.receive("a" * 64, "h", encode(hits), 0.0, [])
    assert core.counters["hits_forged"] == 1


def test_undecodable_messages_are_counted() -> None:
    core = _core()
    with pytest.raises(RemoteProtocolError):
        core.receive("a" * 64, "h", msgspec.msgpack.encode({"t": "hits", "qid": b"q" * 16}), 0.0, [])
    assert core.counters["malformed"] == 1


@pytest.mark.parametrize("host", ["a\x00b", "\u00e9" * 60, "example.org", "10.0.0.1 ",
                                  "255.255.255.255", "224.0.0.1", "ff02::1", "0.0.0.0"])
def test_peer_addresses_must_be_ip_literals(host: str) -> None:
    # a NUL byte or a label IDNA cannot encode made the dial's sendto raise TypeError /
    # UnicodeError, which took the node down; a name would be looked up at every datagram
    listed = {"t": "pex", "peers": [["a" * 64, host, 7700]]}
    hinted = {"t": "ann", "public_key": b"k" * 32, "body": b"b", "signature": b"s" * 64,
              "ttl": 3, "host": host}
    for message in (listed, hinted):
        with pytest.raises(RemoteProtocolError, match="not a unicast IP address"):
            decode(msgspec.msgpack.encode(message))
    listed["peers"] = [["a" * 64, "fe80::1", 7700]]
    assert decode(msgspec.msgpack.encode(listed)) == PeerList(peers=[PeerInfo(id="a" * 64, host="fe80::1", port=7700)])
