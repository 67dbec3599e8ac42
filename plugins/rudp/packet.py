"""rudp wire format: one fixed header, then frames (see docs/plugins/rudp.md).

Every multi-byte field is big-endian. The 36-byte header::

     0  magic 0x52         the node's demux routes first byte 0x52 to rudp
     1  version            1; anything else is dropped (counted)
     2  type               SYN, SYN_ACK, ACK, DATA, PING, FIN, FIN_ACK, RESET
     3  flags              bit 0 ENCRYPTED (reserved: dropped until encryption exists),
                           bit 1 UNKNOWN_CONNECTION (in RESET: conn_id is *your* peer id)
     4  conn_id  u32       the receiver's connection id (0 in a SYN)
     8  seq      u32       packet sequence number (retransmissions reuse it)
    12  ack      u32       cumulative ack: next sequence number expected
    16  ack_bits u32       bit i set = packet ack+1+i received (selective ack)
    20  max_data u64       flow control: total stream bytes the sender of this may receive
    28  ts       u32       sender's clock in µs (mod 2^32), for RTT
    32  ts_echo  u32       latest ``ts`` received from the peer, echoed back

Frames after the header (DATA and ACK packets)::

    STREAM 0x10  channel u8, offset u64, length u16, data   (a slice of a channel's stream)
    SACK   0x20  count u8, count x (start u32, end u32)     (received ranges beyond ack_bits)

SYN / SYN_ACK carry ``src_cid u32, max_datagram u16, reserved u16`` as payload.
"""

from __future__ import annotations

import enum
import struct
from typing import Final

from p2pkit._exceptions import RemoteProtocolError

# Final: compiled code (setup.py) inlines these instead of looking them up in the
# module's dict at every use, and indexes a header tuple with them natively.
MAGIC: Final = 0x52
VERSION: Final = 1


class PacketType(enum.IntEnum):
    SYN = 1  # open: seq = first data sequence number, payload = handshake fields
    SYN_ACK = 2  # accept: ack echoes the SYN's seq so a blind spoofer cannot complete it
    ACK = 3  # acknowledgements only (and window updates); not itself acknowledged
    DATA = 4  # stream frames; acknowledged and retransmitted
    PING = 5  # heartbeat / probe: asks for an immediate ACK, never retransmitted
    FIN = 6  # graceful close once everything sent has been acknowledged
    FIN_ACK = 7  # answer to FIN
    RESET = 8  # abortive close, or "I do not know this connection"


# PacketType's values, spelled out so that compiled code can inline them
# (tests/plugins/rudp/test_packet.py checks they agree)
SYN: Final = 1
SYN_ACK: Final = 2
ACK: Final = 3
DATA: Final = 4
PING: Final = 5
FIN: Final = 6
FIN_ACK: Final = 7
RESET: Final = 8
MAX_TYPE: Final = 8

FLAG_ENCRYPTED: Final = 0x01
FLAG_UNKNOWN_CONNECTION: Final = 0x02
KNOWN_FLAGS: Final = FLAG_ENCRYPTED | FLAG_UNKNOWN_CONNECTION

HEADER: Final = struct.Struct(">BBBBIIIIQII")
HEADER_SIZE: Final = HEADER.size  # 36

STREAM_FRAME: Final = 0x10
SACK_FRAME: Final = 0x20
STREAM_HEADER: Final = struct.Struct(">BBQH")
STREAM_HEADER_SIZE: Final = STREAM_HEADER.size  # 12
SACK_RANGE: Final = struct.Struct(">II")
MAX_SACK_RANGES: Final = 64
HANDSHAKE: Final = struct.Struct(">IHH")

SEQ_MASK: Final = 0xFFFFFFFF
SEQ_HALF: Final = 1 << 31
MIN_DATAGRAM: Final = 576  # smallest max_datagram a peer may announce


class MalformedPacket(RemoteProtocolError):
    """A datagram that claims to be rudp but cannot be parsed; it is dropped and counted."""


# Header tuple indices (HEADER.unpack_from order).
H_MAGIC: Final = 0
H_VERSION: Final = 1
H_TYPE: Final = 2
H_FLAGS: Final = 3
H_CID: Final = 4
H_SEQ: Final = 5
H_ACK: Final = 6
H_BITS: Final = 7
H_MAXDATA: Final = 8
H_TS: Final = 9
H_ECHO: Final = 10

Header = tuple[int, int, int, int, int, int, int, int, int, int, int]


def decode_header(data: bytes) -> Header:
    """Parse and validate the fixed header; raises MalformedPacket."""
    if len(data) < HEADER_SIZE:
        raise MalformedPacket(f"datagram of {len(data)} bytes is shorter than the header")
    h: Header = HEADER.unpack_from(data)
    if h[H_MAGIC] != MAGIC:
        raise MalformedPacket("not an rudp packet (first byte)")
    if h[H_VERSION] != VERSION:
        raise MalformedPacket(f"unsupported rudp version {h[H_VERSION]}")
    if not 1 <= h[H_TYPE] <= MAX_TYPE:
        raise MalformedPacket(f"unknown packet type {h[H_TYPE]}")
    if h[H_FLAGS] & FLAG_ENCRYPTED:
        raise MalformedPacket("encrypted packets are not supported by this version")
    return h


def encode_header(
    ptype: int, flags: int, cid: int, seq: int, ack: int, ack_bits: int, max_data: int,
    ts: int, ts_echo: int,
) -> bytes:
    return HEADER.pack(
        MAGIC, VERSION, ptype, flags, cid, seq & SEQ_MASK, ack & SEQ_MASK, ack_bits, max_data,
        ts, ts_echo,
    )


def unwrap(wire: int, reference: int) -> int:
    """The full sequence number closest to ``reference`` whose low 32 bits are ``wire``."""
    return reference + ((wire - reference + SEQ_HALF) & SEQ_MASK) - SEQ_HALF


StreamFrame = tuple[int, int, bytes]  # (channel, offset, data)


def decode_frames(payload: bytes, start: int = HEADER_SIZE) -> tuple[list[StreamFrame], list[tuple[int, int]]]:
    """Parse the frames of a DATA/ACK packet: (stream frames, SACK ranges on the wire).

    Raises MalformedPacket on any inconsistency (unknown frame, lengths past the end,
    empty stream frames, absurd SACK counts).
    """
    streams: list[StreamFrame] = []
    sacks: list[tuple[int, int]] = []
    end = len(payload)
    pos = start
    while pos < end:
        ftype = payload[pos]
        if ftype == STREAM_FRAME:
            if pos + STREAM_HEADER_SIZE > end:
                raise MalformedPacket("truncated stream frame header")
            _, channel, offset, length = STREAM_HEADER.unpack_from(payload, pos)
            pos += STREAM_HEADER_SIZE
            if length == 0 or pos + length > end:
                raise MalformedPacket("stream frame length does not match the datagram")
            streams.append((channel, offset, payload[pos : pos + length]))
            pos += length
        elif ftype == SACK_FRAME:
            if pos + 2 > end:
                raise MalformedPacket("truncated SACK frame")
            count = payload[pos + 1]
            pos += 2
            if count == 0 or count > MAX_SACK_RANGES or pos + count * SACK_RANGE.size > end:
                raise MalformedPacket("bad SACK range count")
            for _ in range(count):
                lo, hi = SACK_RANGE.unpack_from(payload, pos)
                pos += SACK_RANGE.size
                if not 0 < (hi - lo) & SEQ_MASK < SEQ_HALF:
                    raise MalformedPacket("empty or inverted SACK range")
                sacks.append((lo, hi))
        else:
            raise MalformedPacket(f"unknown frame type 0x{ftype:02x}")
    return streams, sacks


def encode_sack_frame(ranges: list[tuple[int, int]]) -> bytes:
    parts = [bytes((SACK_FRAME, len(ranges)))]
    parts.extend(SACK_RANGE.pack(lo & SEQ_MASK, hi & SEQ_MASK) for lo, hi in ranges)
    return b"".join(parts)


def encode_handshake(src_cid: int, max_datagram: int) -> bytes:
    return HANDSHAKE.pack(src_cid, max_datagram, 0)


def decode_handshake(data: bytes) -> tuple[int, int]:
    """(src_cid, max_datagram) of a SYN/SYN_ACK; raises MalformedPacket."""
    if len(data) != HEADER_SIZE + HANDSHAKE.size:
        raise MalformedPacket("handshake packet has the wrong size")
    src_cid, max_datagram, _reserved = HANDSHAKE.unpack_from(data, HEADER_SIZE)
    if src_cid == 0:
        raise MalformedPacket("connection id 0 is reserved")
    if max_datagram < MIN_DATAGRAM:
        raise MalformedPacket(f"max datagram {max_datagram} is below {MIN_DATAGRAM}")
    return src_cid, max_datagram
