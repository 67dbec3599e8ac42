"""The "swarm" wire protocol: typed messages, validated on decode.

Every message names the content it is about (``rid``), so one peer session carries the
exchange of any number of files. On the wire the rid is its 32 raw bytes, not the 64 hex
digits the API uses (``Torrent.key``; ``bytes.hex()`` back): half the size of most
messages, and measured in the swarm benchmark (docs/plugins/swarm-benchmark-log.md,
*Smaller control messages*). Messages are msgpack arrays whose first element is a
short tag; msgspec checks every field's type and bounds while decoding, so a peer's
garbage becomes one :class:`RemoteProtocolError`, never a crash. Checks that need the
manifest (piece index in range, block inside its piece) are made by the receiver.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from p2pkit.plugins.store import MAX_LEAVES  # a 16 MiB piece (the largest) has 1 024 leaves

from p2pkit._exceptions import RemoteProtocolError
from p2pkit.addresses import is_peer_address

PROTOCOL = "swarm"
MAX_BLOCK = 256 * 1024  # largest request a peer may make (and we honour)
MAX_PIECES = 1 << 22  # 1 TiB of 256 KiB pieces: bounds bitfields and indices
MAX_MANIFEST_BYTES = 2 * 1024 * 1024  # 1 TiB of pieces would not fit; big files need bigger pieces
MAX_MESSAGE = MAX_BLOCK + 1024

Rid = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]  # SHA-256, raw
PieceIndex = Annotated[int, msgspec.Meta(ge=0, lt=MAX_PIECES)]
Offset = Annotated[int, msgspec.Meta(ge=0, lt=1 << 25)]  # inside a piece (16 MiB at most)
Length = Annotated[int, msgspec.Meta(ge=1, le=MAX_BLOCK)]


class _Msg(msgspec.Struct, array_like=True, frozen=True, tag_field="t", forbid_unknown_fields=True):
    rid: Rid


class ManifestRequest(_Msg, tag="mq", frozen=True):
    """Please send the manifest of ``rid``."""


class ManifestResponse(_Msg, tag="ms", frozen=True):
    """The manifest's canonical bytes (the receiver checks they hash to ``rid``), or
    ``None``: I do not have it."""

    manifest: Annotated[bytes, msgspec.Meta(max_length=MAX_MANIFEST_BYTES)] | None


class Bitfield(_Msg, tag="bf", frozen=True):
    """The pieces I have: bit ``i`` (MSB first) of byte ``i // 8`` is piece ``i``."""

    bits: Annotated[bytes, msgspec.Meta(max_length=MAX_PIECES // 8)]


class Have(_Msg, tag="hv", frozen=True):
    """I now have (and have verified) ``piece``."""

    piece: PieceIndex


class Interested(_Msg, tag="in", frozen=True):
    """You have pieces I want."""


class NotInterested(_Msg, tag="ni", frozen=True):
    """I want nothing from you (any more)."""


class Choke(_Msg, tag="ch", frozen=True):
    """I will not serve your requests; the outstanding ones are dropped."""


class Unchoke(_Msg, tag="uc", frozen=True):
    """You may request blocks."""


class Request(_Msg, tag="rq", frozen=True):
    """Send bytes ``[offset, offset + length)`` of ``piece``; with ``leaves`` the piece's
    leaf hashes first unless you sent them to me before. False: I hold them already (a
    piece's later sources are asked without them). A request without the field (an older
    peer's) asks for them."""

    piece: PieceIndex
    offset: Offset
    length: Length
    leaves: bool = True


class Piece(_Msg, tag="pc", frozen=True):
    """A block of ``piece`` starting at ``offset`` (sent on the bulk channel)."""

    piece: PieceIndex
    offset: Offset
    data: Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_BLOCK)]


class Cancel(_Msg, tag="cx", frozen=True):
    """Forget my request for this block (endgame: someone else sent it)."""

    piece: PieceIndex
    offset: Offset
    length: Length


class Reject(_Msg, tag="rj", frozen=True):
    """I will not send this block now: I choke you or my queue is full (ask again later)."""

    piece: PieceIndex
    offset: Offset
    length: Length


class Leave(_Msg, tag="lq", frozen=True):
    """I left this content's swarm (I removed the content, or it was evicted): forget my
    pieces and your requests to me. If I come back, my next bitfield is a first one."""


class Lost(_Msg, tag="ls", frozen=True):
    """I do not hold ``piece`` (any more: the shared file changed, the stored copy is
    damaged, a relayed piece failed its hash): every request of yours for it is refused;
    do not ask me for it again until I announce it (Have, Bitfield, Blocks)."""

    piece: PieceIndex


Sha256 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class Leaves(_Msg, tag="lv", frozen=True):
    """The leaf hashes of ``piece`` (SHA-256 of each 16 KiB of it), sent before the first
    block of a piece to each peer, so it can check every block on arrival: they must
    hash to the piece's block root in the manifest."""

    piece: PieceIndex
    hashes: Annotated[list[Sha256], msgspec.Meta(min_length=1, max_length=MAX_LEAVES)]


Mask = Annotated[bytes, msgspec.Meta(min_length=1, max_length=MAX_LEAVES // 8)]
MAX_BLOCKS_PIECES = 256  # pieces one Blocks message may speak of


class Blocks(_Msg, tag="bk", frozen=True):
    """For each ``(piece, mask)``: the leaves of ``piece`` I hold and have checked
    although the piece is not whole yet (bit ``j``, MSB first, is leaf ``j``): you may
    request those. Several pieces in one message: the updates that fall due together
    for one member (at N = 100, 261 000 one-piece messages were 153 000 members-ticks)."""

    pieces: Annotated[list[tuple[PieceIndex, Mask]],
                      msgspec.Meta(min_length=1, max_length=MAX_BLOCKS_PIECES)]


MAX_PEX = 50
Host = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class Peers(_Msg, tag="px", frozen=True):
    """Other members of this content's swarm (listen addresses), so leechers find each
    other and trade instead of all pulling from the seeders."""

    addresses: Annotated[list[tuple[Host, Port]], msgspec.Meta(max_length=MAX_PEX)]

    def __post_init__(self) -> None:
        # unicast IP literals only: we dial them; a name (or a NUL byte) would reach the
        # socket, a broadcast or multicast address every host on a LAN
        for host, _ in self.addresses:
            if not is_peer_address(host):
                raise ValueError(f"peer address {host[:64]!r} is not a unicast IP address")


Message = (
    ManifestRequest | ManifestResponse | Bitfield | Have | Interested | NotInterested
    | Choke | Unchoke | Request | Piece | Cancel | Reject | Peers | Leaves | Blocks | Lost | Leave
)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


def encode(message: Message) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> Message:
    """Decode hostile bytes; RemoteProtocolError says what is wrong."""
    if len(data) > MAX_MESSAGE + MAX_MANIFEST_BYTES:
        raise RemoteProtocolError(f"swarm message of {len(data)} bytes is too large")
    try:
        return _decoder.decode(data)
    # ValidationError is a DecodeError; msgspec lets invalid UTF-8 in a tagged union's
    # tag escape as UnicodeDecodeError (found by the fuzz test), so that is caught too.
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"bad swarm message: {exc}") from None


# ---------------------------------------------------------------------------- bitfields


def pack_bits(have: list[bool] | bytearray) -> bytes:
    """Bools → MSB-first bytes (BitTorrent's layout)."""
    out = bytearray((len(have) + 7) // 8)
    for i, bit in enumerate(have):
        if bit:
            out[i >> 3] |= 0x80 >> (i & 7)
    return bytes(out)


def unpack_bits(bits: bytes, count: int) -> list[bool]:
    """MSB-first bytes → ``count`` bools; RemoteProtocolError if the length or the spare
    bits are wrong (a peer claiming pieces that do not exist)."""
    if len(bits) != (count + 7) // 8:
        raise RemoteProtocolError(f"bitfield of {len(bits)} bytes for {count} pieces")
    if count & 7 and bits[-1] & (0xFF >> (count & 7)):
        raise RemoteProtocolError("bitfield sets bits past the last piece")
    return [bool(bits[i >> 3] & (0x80 >> (i & 7))) for i in range(count)]


__all__ = [
    "MAX_BLOCK", "PROTOCOL", "Bitfield", "Blocks", "Cancel", "Choke", "Have", "Interested",
    "Leaves", "ManifestRequest", "ManifestResponse", "Message", "NotInterested", "Peers", "Piece", "Reject",
    "Request", "Unchoke", "decode", "encode", "pack_bits", "unpack_bits",
]
