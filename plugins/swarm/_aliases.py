"""Short names for rids on one peer session's control channel (sans-IO).

Every swarm message names its rid, 34 of a control message's ~45 bytes. On one session
the same few rids come back in every message, so each side numbers the rids it has
named to the other: the first control message about a rid carries it whole, later ones
carry its number (a msgpack integer of 1–3 bytes) in the same place. The receiver
numbers the whole rids it hears in the same order, which works because the control
channel is reliable and ordered and one writer task per peer sends all of it. A Piece
travels on the bulk channel, which is ordered apart from it, so it always carries its
rid whole and never numbers one.

This is a transform of the encoded bytes, not of the messages: a message's layout is
``[tag, rid, ...]`` as a msgpack array, so the rid's 34 bytes (``c4 20`` + 32) sit at
offset 4. The decoder sees whole rids only.
"""

from __future__ import annotations

from p2pkit._exceptions import RemoteProtocolError

from . import _messages as msg

MAX_ALIASES = 1024  # rids numbered per session and direction; later ones travel whole
RID_AT = 4  # fixarray header, fixstr header, two-letter tag
WHOLE_RID = b"\xc4\x20"  # msgpack bin 8 of 32 bytes
RID_END = RID_AT + len(WHOLE_RID) + 32
BULK_TAG = b"pc"  # a Piece: on the bulk channel, never aliased


def _pack_number(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x100:
        return bytes((0xCC, n))
    return b"\xcd" + n.to_bytes(2, "big")


def _has_layout(data: bytes) -> bool:
    return len(data) >= RID_AT + 1 and 0x92 <= data[0] <= 0x9F and data[1] == 0xA2


class RidAliases:
    """The rids we have numbered for one peer (``sent``) and it for us (``heard``)."""

    def __init__(self) -> None:
        self.sent: dict[bytes, int] = {}
        self.heard: list[bytes] = []
        self.heard_index: set[bytes] = set()

    def encode(self, message: msg.Message) -> bytes:
        """``message`` as it goes on the wire to this peer. Only the peer's writer calls
        this, in the order the bytes are sent (a send that fails ends the session, and
        these tables with it)."""
        data = msg.encode(message)
        if isinstance(message, msg.Piece):
            return data
        number = self.sent.get(message.rid)
        if number is not None:
            return data[:RID_AT] + _pack_number(number) + data[RID_END:]
        if len(self.sent) < MAX_ALIASES:
            self.sent[message.rid] = len(self.sent)
        return data

    def expand(self, data: bytes) -> bytes:
        """A message from this peer with its rid whole again (and a whole rid heard for
        the first time numbered). RemoteProtocolError for a number it never gave."""
        if not _has_layout(data):
            return data  # not a message we know: the decoder says what is wrong
        first = data[RID_AT]
        if first == WHOLE_RID[0]:
            if (data[RID_AT:RID_AT + 2] == WHOLE_RID and len(data) >= RID_END
                    and data[2:4] != BULK_TAG and len(self.heard) < MAX_ALIASES):
                rid = data[RID_AT + 2:RID_END]
                if rid not in self.heard_index:
                    self.heard_index.add(rid)
                    self.heard.append(rid)
            return data
        if first < 0x80:
            number, size = first, 1
        elif first == 0xCC and len(data) >= RID_AT + 2:
            number, size = data[RID_AT + 1], 2
        elif first == 0xCD and len(data) >= RID_AT + 3:
            number, size = int.from_bytes(data[RID_AT + 1:RID_AT + 3], "big"), 3
        else:
            return data  # neither a rid nor a number: the decoder rejects it
        if data[2:4] == BULK_TAG or number >= len(self.heard):
            raise RemoteProtocolError(f"swarm message names rid #{number}, never given")
        return data[:RID_AT] + WHOLE_RID + self.heard[number] + data[RID_AT + size:]


__all__ = ["MAX_ALIASES", "RidAliases"]
