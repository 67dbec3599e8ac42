"""Wire messages of the ``flood`` protocol: typed msgspec structs, validated on decode.

Every message is msgpack with a ``t`` tag. Input is hostile: sizes, counts and TTLs are
bounded by the schema, and :func:`decode` turns anything malformed into a
RemoteProtocolError (the kernel then drops that peer).

    Announce  a node's complete list of shared content, signed by the node (Ed25519), so a
              relay can neither forge nor alter it; flooded with a TTL. A newer ``seq``
              replaces the older list: an unshare is simply an announce without the rid.
    Query     a flooded search with a random id and a TTL.
    Hits      answers to a query from one provider, routed back along the reverse path,
              signed by the provider over (context, qid, provider id, entries), so a relay
              can neither forge answers for another node nor alter them.
    PeerList  peer exchange: the listen addresses of a neighbour's peers (one hop).
    Digest    the lists a node holds, as (origin, seq) pairs: what a new neighbour gets
              instead of the lists themselves; each side then sends the lists the other
              lacks or holds older.
    Done      "query qid went no further than me, or everyone I sent it on to said Done":
              sent back along the reverse path after any answers, so the asker knows
              when the flood is over (a search nobody answered took search_timeout).

    LanBeacon a UDP datagram (first byte 0x46, not a session message) a node broadcasts on
              the LAN so others can connect to it.
"""

from __future__ import annotations

import functools
from typing import Annotated, TypeVar

import msgspec

from p2pkit import RemoteProtocolError
from p2pkit.addresses import is_peer_address
from p2pkit.filenames import name_problem

# The message protocol's name, negotiated in the peers' hello. Version 2: hits are signed;
# version 3: a new neighbour gets a digest of the lists we hold, not every list, and a
# search learns when its flood is over (Done). A node of
# an older version does not list "flood/3", so the two never exchange flood messages
# (neither can take the other's for garbage and drop it); they are simply not each
# other's discovery peers.
PROTOCOL = "flood/3"

MAX_TTL = 16
MAX_ENTRIES = 512  # shares in one announce
MAX_HITS = 100
MAX_PEERS_LISTED = 64
MAX_BODY = 1 << 20  # signed announce body
MAX_HITS_BODY = 1 << 20  # signed hits body (100 entries of long UTF-8 text can exceed it)
MAX_QUERY = 256
LAN_BEACON_BYTE = 0x46  # "F"
MAX_DIGEST = 8192  # (origin, seq) pairs: every list and tombstone a node may hold

Hex64 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
QueryId = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]
Ttl = Annotated[int, msgspec.Meta(ge=0, le=MAX_TTL)]
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]


class Entry(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """One shared file as the network sees it (no piece hashes: the swarm fetches those)."""

    rid: Hex64
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    size: Annotated[int, msgspec.Meta(ge=0, le=1 << 40)]
    mime: Annotated[str, msgspec.Meta(max_length=100)] = "application/octet-stream"
    category: Annotated[str, msgspec.Meta(max_length=16)] = ""
    title: Annotated[str, msgspec.Meta(max_length=512)] = ""
    description: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    duration: Annotated[float, msgspec.Meta(ge=0, le=1e8)] | None = None


class AnnounceBody(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The signed part of an announce."""

    seq: Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
    port: Port  # the origin's listen port (its host is filled in by the first hop)
    entries: Annotated[list[Entry], msgspec.Meta(max_length=MAX_ENTRIES)]

    def __post_init__(self) -> None:
        if len({e.rid for e in self.entries}) != len(self.entries):
            raise ValueError("an announce lists a rid twice")


class Announce(msgspec.Struct, frozen=True, tag="ann", tag_field="t"):
    public_key: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
    body: Annotated[bytes, msgspec.Meta(max_length=MAX_BODY)]
    signature: Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
    ttl: Ttl
    host: Annotated[str, msgspec.Meta(max_length=255)] = ""  # unsigned hint, see AnnounceBody.port
    age: Annotated[float, msgspec.Meta(ge=0, le=1e7)] = 0.0  # s since the origin sent it (sync)

    def __post_init__(self) -> None:
        if self.host:
            _check_peer_host(self.host)


class Query(msgspec.Struct, frozen=True, tag="q", tag_field="t"):
    qid: QueryId
    ttl: Ttl
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_QUERY)]


class HitsBody(msgspec.Struct, frozen=True, forbid_unknown_fields=False):
    """The signed part of a hits message: which query it answers, who answers, with what."""

    qid: QueryId
    provider: Hex64
    entries: Annotated[list[Entry], msgspec.Meta(max_length=MAX_HITS)]


class Hits(msgspec.Struct, frozen=True, tag="hits", tag_field="t"):
    """A provider's signed answer. ``qid`` and ``provider`` are repeated outside the body
    so a relay routes without decoding it; a receiver checks that they equal the signed
    ones and that ``provider`` is the node id of ``public_key``.

    The signature covers the body *bytes* as sent (like an announce), not a re-encoding of
    decoded structs: a receiver never has to reproduce the sender's encoding exactly."""

    qid: QueryId
    provider: Hex64
    public_key: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
    body: Annotated[bytes, msgspec.Meta(max_length=MAX_HITS_BODY)]
    signature: Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]


class PeerInfo(msgspec.Struct, frozen=True, array_like=True):
    id: Hex64
    host: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]

    def __post_init__(self) -> None:
        _check_peer_host(self.host)


class PeerList(msgspec.Struct, frozen=True, tag="pex", tag_field="t"):
    peers: Annotated[list[PeerInfo], msgspec.Meta(max_length=MAX_PEERS_LISTED)]


class Done(msgspec.Struct, frozen=True, tag="done", tag_field="t"):
    qid: QueryId


class Held(msgspec.Struct, frozen=True, array_like=True):
    origin: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]  # its node id
    seq: Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]
    gone: bool = False  # a tombstone: its list under this seq expired here


class Digest(msgspec.Struct, frozen=True, tag="dig", tag_field="t"):
    held: Annotated[list[Held], msgspec.Meta(max_length=MAX_DIGEST)]


class LanBeacon(msgspec.Struct, frozen=True, array_like=True):
    id: Hex64
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]


Message = Announce | Query | Hits | PeerList | Digest | Done


def _check_peer_host(host: str) -> None:
    # We dial what peers tell us: unicast IP literals only. A name would be looked up (blocking)
    # at every datagram, and a NUL byte or a label IDNA cannot encode made sendto raise.
    if not _peer_address(host):
        raise ValueError(f"peer address {host[:64]!r} is not a unicast IP address")


# The same few hosts come in every announce (and a stored one is checked again at each
# msgspec.structs.replace): parsing them with ipaddress each time was 6 % of a 200-node
# simulation's CPU time. Bounded, so made-up hosts only cost misses.
_peer_address = functools.lru_cache(maxsize=1024)(is_peer_address)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)
_body_decoder = msgspec.msgpack.Decoder(AnnounceBody)
_hits_body_decoder = msgspec.msgpack.Decoder(HitsBody)
_beacon_decoder = msgspec.msgpack.Decoder(LanBeacon)


def encode(message: Message | AnnounceBody | HitsBody) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes) -> Message:
    """A message from a peer; RemoteProtocolError if it is malformed in any way."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, ValueError) as exc:  # ValidationError is a DecodeError
        raise RemoteProtocolError(f"malformed flood message: {exc}") from None


def decode_body(data: bytes) -> AnnounceBody:
    try:
        body = _body_decoder.decode(data)
    except (msgspec.DecodeError, ValueError) as exc:
        raise RemoteProtocolError(f"malformed announce body: {exc}") from None
    return _without_unsafe_names(body)


def decode_hits_body(data: bytes) -> HitsBody:
    try:
        body = _hits_body_decoder.decode(data)
    except (msgspec.DecodeError, ValueError) as exc:
        raise RemoteProtocolError(f"malformed hits body: {exc}") from None
    return _without_unsafe_names(body)


_Body = TypeVar("_Body", AnnounceBody, HitsBody)


def _without_unsafe_names(body: _Body) -> _Body:
    """``body`` without the entries whose names no manifest may carry (name_problem): such
    a file would be listed (escape sequences and all) and never be downloadable. Left out
    rather than refused: the rest of the list is good, and the node that relayed it (or
    shares it, running code that allowed such names) is no liar."""
    if all(name_problem(entry.name) is None for entry in body.entries):
        return body
    kept = [entry for entry in body.entries if name_problem(entry.name) is None]
    return msgspec.structs.replace(body, entries=kept)


def encode_beacon(beacon: LanBeacon) -> bytes:
    return bytes((LAN_BEACON_BYTE,)) + _encoder.encode(beacon)


def decode_beacon(data: bytes) -> LanBeacon | None:
    """A LAN beacon, or None if the datagram is not a valid one (datagrams are not peers)."""
    if not data or data[0] != LAN_BEACON_BYTE:
        return None
    try:
        return _beacon_decoder.decode(data[1:])
    except (msgspec.DecodeError, ValueError):
        return None
