"""Channels: per-channel ordered byte streams carrying length-prefixed messages.

Sending: every message becomes ``u32 length + bytes`` appended to its channel's stream.
Packets are filled lowest channel first (so control, channel 0, overtakes bulk), and one
packet carries as many consecutive messages as fit (aggregation of small messages) while
a large message simply spans many packets (fragmentation) — both fall out of slicing a
stream. Receiving: each channel reassembles its own stream by offset, so a lost bulk
packet never holds back a control message on another channel.
"""

from __future__ import annotations

from bisect import insort
from collections import deque
from typing import Final

from p2pkit._exceptions import RemoteProtocolError

from .packet import STREAM_FRAME, STREAM_HEADER, STREAM_HEADER_SIZE

LENGTH_PREFIX: Final = 4
OOO_ENTRY_COST: Final = 100  # bytes charged per out-of-order entry (dict slot + bytes header)
MAX_OOO_ENTRIES: Final = 1 << 17  # more early fragments than any honest window produces


# The receive window of a held connection (see RecvStreams.hold_large_messages): a
# handshake's messages, a few KiB, with room to spare.
HELD_WINDOW: Final = 64 * 1024


class FlowControlError(RemoteProtocolError):
    """The peer sent more than our advertised window, or on a channel we do not allow."""


class _SendChannel:
    __slots__ = ("head", "id", "offset", "pieces", "queued")

    def __init__(self, channel: int) -> None:
        self.id = channel
        self.pieces: deque[memoryview] = deque()
        self.head = 0  # bytes of pieces[0] already sent
        self.offset = 0  # stream offset of the next byte to send
        self.queued = 0  # bytes queued, not yet sent


class SendStreams:
    """Queued outgoing messages of one connection, by channel."""

    def __init__(self) -> None:
        self._channels: dict[int, _SendChannel] = {}
        self._pending: list[int] = []  # channel ids with queued data, ascending
        self.queued_bytes = 0
        self.sent_bytes = 0  # stream bytes handed to packets (the flow-control counter)
        self.messages = 0
        self.chunk_channel = 0  # frame of the last bulk_chunks
        self.chunk_offset = 0

    def push(self, channel: int, message: bytes) -> memoryview:
        """Queue ``message``; returns its token for :meth:`withdraw`."""
        ch = self._channels.get(channel)
        if ch is None:
            ch = self._channels[channel] = _SendChannel(channel)
        size = len(message)
        token = memoryview(size.to_bytes(LENGTH_PREFIX, "big"))
        ch.pieces.append(token)
        if size:
            ch.pieces.append(memoryview(message).cast("B"))
        ch.queued += size + LENGTH_PREFIX
        self.queued_bytes += size + LENGTH_PREFIX
        self.messages += 1
        if ch.queued == size + LENGTH_PREFIX:
            insort(self._pending, channel)
        return token

    def withdraw(self, channel: int, token: memoryview) -> bool:
        """Take back the message ``token`` (from :meth:`push`) if none of its bytes has
        been handed to a packet yet. Stream offsets are given out as bytes leave, so the
        messages behind it simply move up; the receiver never learns it existed."""
        ch = self._channels.get(channel)
        if ch is None:
            return False
        pieces = ch.pieces
        index = next((i for i, piece in enumerate(pieces) if piece is token), None)
        if index is None:
            return False  # sent (at least its length prefix)
        if index == 0 and ch.head:
            return False  # its length prefix is partly sent
        size = int.from_bytes(token, "big")
        del pieces[index]
        if size:
            del pieces[index]  # the body, right behind its prefix
        taken = size + LENGTH_PREFIX
        ch.queued -= taken
        self.queued_bytes -= taken
        self.messages -= 1
        if ch.queued == 0:
            self._pending.remove(channel)
        return True

    def has_data(self) -> bool:
        return self.queued_bytes > 0

    def bulk_chunks(self, space: int, count: int) -> list[memoryview]:
        """The fast path of a bulk transfer: up to ``count`` slices of exactly ``space``
        bytes from the lowest pending channel's head piece, as long as that piece holds
        more (the piece's tail goes through :meth:`fill`). The first slice's channel and
        offset are left in ``chunk_channel``/``chunk_offset``; the rest follow on."""
        pending = self._pending
        if not pending or space <= 0 or count <= 0:
            return []
        ch = self._channels[pending[0]]
        head = ch.head
        piece = ch.pieces[0]
        n = min(count, (len(piece) - head - 1) // space)
        if n <= 0:
            return []
        self.chunk_channel = ch.id
        self.chunk_offset = ch.offset
        end = head + n * space
        taken = end - head
        ch.head = end
        ch.offset += taken
        ch.queued -= taken
        self.queued_bytes -= taken
        self.sent_bytes += taken
        return [piece[i : i + space] for i in range(head, end, space)]

    def fill(self, parts: list[bytes | memoryview], room: int, credit: int) -> int:
        """Append stream frames to ``parts`` using at most ``room`` bytes of packet and
        ``credit`` stream bytes (flow control); returns the stream bytes taken."""
        pending = self._pending
        if pending:
            # Fast path of bulk transfer: the head piece alone fills the packet.
            ch = self._channels[pending[0]]
            space = min(room - STREAM_HEADER_SIZE, credit)
            head = ch.head
            piece = ch.pieces[0]
            if 0 < space < len(piece) - head:
                parts.append(STREAM_HEADER.pack(STREAM_FRAME, ch.id, ch.offset, space))
                parts.append(piece[head : head + space])
                ch.head = head + space
                ch.offset += space
                ch.queued -= space
                self.queued_bytes -= space
                self.sent_bytes += space
                return space
        taken_total = 0
        drained = 0
        for channel in pending:
            space = min(room - STREAM_HEADER_SIZE, credit - taken_total)
            if space <= 0:
                break
            ch = self._channels[channel]
            take = ch.queued if ch.queued < space else space
            parts.append(STREAM_HEADER.pack(STREAM_FRAME, channel, ch.offset, take))
            room -= STREAM_HEADER_SIZE + take
            ch.offset += take
            ch.queued -= take
            taken_total += take
            pieces = ch.pieces
            head = ch.head
            while take:
                piece = pieces[0]
                avail = len(piece) - head
                if avail <= take:
                    parts.append(piece[head:] if head else piece)
                    pieces.popleft()
                    take -= avail
                    head = 0
                else:
                    parts.append(piece[head : head + take])
                    head += take
                    take = 0
            ch.head = head
            if ch.queued == 0:
                drained += 1
            else:
                break  # this channel still has data but the packet is full
        if drained:
            del pending[:drained]
        self.queued_bytes -= taken_total
        self.sent_bytes += taken_total
        return taken_total

    def clear(self) -> None:
        self._channels.clear()
        self._pending.clear()
        self.queued_bytes = 0


class _RecvChannel:
    __slots__ = ("chunks", "expected", "have", "highest", "need", "ooo", "prefix")

    def __init__(self) -> None:
        self.expected = 0  # next in-order stream offset
        self.highest = 0  # one past the highest offset seen (flow control)
        self.ooo: dict[int, bytes | memoryview] = {}  # offset -> data that arrived early
        self.prefix = b""  # bytes of a length prefix split across frames
        self.need = -1  # body length of the message being assembled, -1 = read the prefix
        self.chunks: list[bytes | memoryview] = []  # in-order pieces of that message's body
        self.have = 0  # bytes in ``chunks``


class RecvStreams:
    """Reassembly of incoming channels into whole messages, with flow-control accounting."""

    def __init__(self, window: int, max_message: int, max_channels: int, *,
                 held: bool = False) -> None:
        """``held``: start held (see hold_large_messages), so that the first advertisement
        already says HELD_WINDOW — room once advertised is never taken back."""
        self.full_window = window  # the configured one (``window`` is less while held)
        self.window = min(window, HELD_WINDOW) if held else window
        self.max_message = max_message
        self.max_channels = max_channels
        self._channels: dict[int, _RecvChannel] = {}
        self.inbox: dict[int, deque[bytes]] = {}
        self.inbox_count = 0
        self.inbox_bytes = 0  # stream bytes of complete messages not yet taken by the app
        self.in_order = 0  # stream bytes received in order, all channels
        self.partial = 0  # in-order bytes of incomplete messages
        self.partial_need = 0  # announced sizes of incomplete messages (credit for big ones)
        self.credit_limit = 0 if held else max_message  # of that credit (0 while held)
        self.ooo_bytes = 0
        self.ooo_entries = 0
        self.highest_total = 0  # sum of the channels' highest offsets
        self.max_data = self.window  # what we advertised (never decreases)
        self.advertised = self.window  # max_data carried by our last packet
        self.messages = 0

    def hold_large_messages(self, held: bool) -> None:
        """While held, the peer gets the room of HELD_WINDOW only, none beyond it for a
        large message: its sender waits (nothing is lost) and we hold at most that much
        for a peer not yet known (a handshake's messages are a few KiB). Released, the
        configured window and the room for large messages come back (advertised with the
        next packet). The room already advertised is never taken back."""
        if held:
            self.window = min(self.full_window, HELD_WINDOW)
            self.credit_limit = 0
        else:
            self.window = self.full_window
            self.credit_limit = self.max_message

    def update_max_data(self) -> int:
        released = self.in_order - self.partial - self.inbox_bytes
        extra = min(self.partial_need, self.credit_limit)
        value = released + self.window + extra
        if value > self.max_data:
            self.max_data = value
        return self.max_data

    def on_frame(self, channel: int, offset: int, data: bytes) -> bool:
        """Take one stream frame; True if whole messages became available."""
        ch = self._channels.get(channel)
        if ch is None:
            if channel >= self.max_channels:
                raise FlowControlError(f"channel {channel} exceeds the {self.max_channels} allowed")
            ch = self._channels[channel] = _RecvChannel()
        n = len(data)
        end = offset + n
        if end > ch.highest:
            self.highest_total += end - ch.highest
            ch.highest = end
            if self.highest_total > self.max_data:
                raise FlowControlError(
                    f"peer sent {self.highest_total - self.max_data} bytes beyond the window"
                )
        expected = ch.expected
        if offset == expected:
            ch.expected = end
            self.in_order += n
            self.partial += n
            # The usual bulk case: the frame only continues the body being assembled.
            need = ch.need
            if need >= 0 and ch.have + n < need:
                ch.chunks.append(data)
                ch.have += n
                found = False
            else:
                found = self._consume(channel, ch, data)
            ooo = ch.ooo
            while ooo:
                nxt = ooo.pop(ch.expected, None)
                if nxt is None:
                    break
                size = len(nxt)
                self.ooo_bytes -= size
                self.ooo_entries -= 1
                ch.expected += size
                self.in_order += size
                self.partial += size
                if self._consume(channel, ch, nxt):
                    found = True
            return found
        if offset > expected:
            if offset not in ch.ooo:
                # Each entry is charged its bookkeeping too, so a peer sending one-byte
                # frames cannot make the dictionary cost far more than the window.
                cost = self.ooo_bytes + n + (self.ooo_entries + 1) * OOO_ENTRY_COST
                if cost > 2 * self.window + self.max_message or self.ooo_entries >= MAX_OOO_ENTRIES:
                    raise FlowControlError("too much out-of-order data buffered")
                ch.ooo[offset] = data
                self.ooo_bytes += n
                self.ooo_entries += 1
            return False
        if end > expected:  # overlaps what we have (not produced by our sender): keep the rest
            return self.on_frame(channel, expected, data[expected - offset :])
        return False

    def _consume(self, channel: int, ch: _RecvChannel, data: bytes | memoryview) -> bool:
        """Take in-order stream bytes; True if whole messages became available.

        A message body is kept as the received pieces and joined once when complete: one
        copy per byte, where a growing buffer copied each byte several times.
        """
        pos = 0
        n = len(data)
        found = 0
        while pos < n or ch.need == 0:
            need = ch.need
            if need < 0:
                take = min(LENGTH_PREFIX - len(ch.prefix), n - pos)
                prefix = ch.prefix + bytes(data[pos : pos + take])
                pos += take
                if len(prefix) < LENGTH_PREFIX:
                    ch.prefix = prefix
                    break
                ch.prefix = b""
                need = int.from_bytes(prefix, "big")
                if need > self.max_message:
                    raise FlowControlError(f"message of {need} bytes exceeds the limit")
                ch.need = need
                self.partial_need += need
                continue
            take = min(need - ch.have, n - pos)
            if take:
                ch.chunks.append(data if take == n else data[pos : pos + take])
                ch.have += take
                pos += take
            if ch.have < need:
                break
            chunks = ch.chunks
            message = chunks[0] if len(chunks) == 1 and type(chunks[0]) is bytes else b"".join(chunks)
            chunks.clear()
            ch.have = 0
            ch.need = -1
            inbox = self.inbox.get(channel)
            if inbox is None:
                inbox = self.inbox[channel] = deque()
            inbox.append(message)  # type: ignore[arg-type]
            self.partial_need -= need
            self.partial -= need + LENGTH_PREFIX
            self.inbox_bytes += need + LENGTH_PREFIX
            found += 1
        if found:
            self.inbox_count += found
            self.messages += found
        return found > 0

    def pop(self) -> tuple[int, bytes] | None:
        """The next complete message, lowest channel first."""
        if not self.inbox_count:
            return None
        for channel in sorted(self.inbox):
            queue = self.inbox[channel]
            if queue:
                message = queue.popleft()
                self.inbox_count -= 1
                self.inbox_bytes -= len(message) + LENGTH_PREFIX
                return channel, message
        return None  # pragma: no cover - inbox_count says otherwise
