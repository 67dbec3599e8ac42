import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from p2pkit.plugins.swarm import _messages as m

from p2pkit._exceptions import RemoteProtocolError

RID = bytes.fromhex("ab" * 32)  # the wire carries the rid's 32 raw bytes


@pytest.mark.parametrize("msg", [
    m.ManifestRequest(RID), m.ManifestResponse(RID, b"x"), m.ManifestResponse(RID, None),
    m.Bitfield(RID, b"\xf0"), m.Have(RID, 3), m.Interested(RID), m.NotInterested(RID),
    m.Choke(RID), m.Unchoke(RID), m.Request(RID, 1, 0, 65536),
    m.Request(RID, 1, 0, 65536, leaves=False), m.Piece(RID, 1, 0, b"data"),
    m.Cancel(RID, 1, 0, 10), m.Reject(RID, 1, 0, 10), m.Peers(RID, [("127.0.0.1", 7700)]),
    m.Leaves(RID, 2, [b"\x01" * 32] * 16), m.Blocks(RID, [(2, b"\xc0\x00")]),
    m.Blocks(RID, [(2, b"\xc0\x00"), (7, b"\xff\xff")]), m.Lost(RID, 3), m.Leave(RID),
])
def test_round_trip(msg: m.Message) -> None:
    assert m.decode(m.encode(msg)) == msg


@pytest.mark.parametrize("bad", [
    m.Request(RID, 1, 0, m.MAX_BLOCK + 1),   # too long a request
    m.Request(RID, -1, 0, 10),               # negative piece
    m.Request(RID, 1, -5, 10),               # negative offset
    m.Request(RID, 1, 0, 0),                 # empty request
    m.Have(b"\xab" * 31, 1),                  # a rid is 32 bytes
    m.Have(b"\xab" * 33, 1),
    m.Piece(RID, 0, 0, b""),                 # empty block
    m.Peers(RID, [("10.0.0.1", 1)] * 51),    # too many addresses
    m.Peers(RID, [("10.0.0.1", 0)]),         # port 0
    m.Leaves(RID, 0, []),                    # no leaf hashes
    m.Leaves(RID, 0, [b"x" * 31]),           # a hash of the wrong size
    m.Leaves(RID, 0, [b"x" * 32] * 1025),    # more leaves than a 16 MiB piece has
    m.Blocks(RID, [(0, b"")]),               # empty mask
    m.Blocks(RID, [(0, b"\xff" * 129)]),     # a mask for more than 1 024 leaves
    m.Blocks(RID, []),                       # no piece at all
    m.Blocks(RID, [(0, b"\xff")] * (m.MAX_BLOCKS_PIECES + 1)),  # too many pieces
    m.Blocks(RID, [(-1, b"\xff")]),          # negative piece
    m.Lost(RID, -1),
])
def test_out_of_bounds_fields_are_rejected(bad: m.Message) -> None:
    data = msgspec.msgpack.encode(bad)  # the encoder does not validate; the decoder must
    with pytest.raises(RemoteProtocolError):
        m.decode(data)


@pytest.mark.parametrize("host", [
    "a\x00b",          # a NUL byte: socket.sendto raised TypeError and took the node down
    "\u00e9" * 60,     # a label IDNA cannot encode: UnicodeError from sendto
    "example.org",     # a name: looked up (blocking) at every datagram sent to it
    "10.0.0.1 ",       # not quite an address
    "255.255.255.255", "224.0.0.1", "ff02::1",  # a SYN to every host on the LAN
    "0.0.0.0",
])
def test_peer_addresses_must_be_ip_literals(host: str) -> None:
    data = msgspec.msgpack.encode(["px", RID, [["10.0.0.2", 7700], [host, 7700]]])
    with pytest.raises(RemoteProtocolError, match="not a unicast IP address"):
        m.decode(data)
    assert m.decode(msgspec.msgpack.encode(["px", RID, [["::1", 7700]]])) == m.Peers(RID, [("::1", 7700)])


def test_unknown_tag_and_garbage_are_rejected() -> None:
    for data in (b"", b"\xc1", msgspec.msgpack.encode(["zz", RID]), msgspec.msgpack.encode({"a": 1}),
                 msgspec.msgpack.encode(["hv", RID, 1, 2]),
                 msgspec.msgpack.encode(["hv", RID.hex(), 1])):  # the rid as hex text: refused
        with pytest.raises(RemoteProtocolError):
            m.decode(data)


def test_a_request_without_the_leaves_field_asks_for_the_leaf_hashes() -> None:
    # an older peer's request: [tag, rid, piece, offset, length]
    request = m.decode(msgspec.msgpack.encode(["rq", RID, 1, 0, 16384]))
    assert request == m.Request(RID, 1, 0, 16384) and request.leaves
    with pytest.raises(RemoteProtocolError):
        m.decode(msgspec.msgpack.encode(["rq", RID, 1, 0, 16384, 1]))  # not a bool


def test_control_messages_carry_the_rid_raw() -> None:
    # the rid is most of a control message: as 64 hex digits this Have took 73 bytes
    assert len(m.encode(m.Have(RID, 300))) == 41
    assert len(m.encode(m.Blocks(RID, [(30, b"\xff\xc0")]))) == 45
    # each further piece of an update costs 6 bytes, not a message of 45 (plus framing)
    assert len(m.encode(m.Blocks(RID, [(30, b"\xff\xc0"), (31, b"\xff\xc0")]))) == 51


@given(st.binary(max_size=300))
def test_decoder_never_crashes_on_garbage(data: bytes) -> None:
    try:
        m.decode(data)
    except RemoteProtocolError:
        pass


@given(st.lists(st.booleans(), min_size=1, max_size=100))
def test_bitfield_round_trip(bits: list[bool]) -> None:
    assert m.unpack_bits(m.pack_bits(bits), len(bits)) == bits


def test_bitfield_with_wrong_length_or_spare_bits_is_rejected() -> None:
    with pytest.raises(RemoteProtocolError):
        m.unpack_bits(b"\xff\xff", 3)
    with pytest.raises(RemoteProtocolError):
        m.unpack_bits(b"\xff", 3)  # claims pieces 3..7 which do not exist
    assert m.unpack_bits(b"\xe0", 3) == [True, True, True]
