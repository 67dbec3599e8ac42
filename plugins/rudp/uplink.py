"""Finding the node's upload limit by itself: keep the uplink's queue short, sans-IO.

Every session paces at its own estimate, but a node's dozen sessions overfill the access
link's queue together (drops, retransmissions, and every ACK and control message waiting
behind ~100 ms of uploads). A configured limit a little under the link's rate cures
that (docs/plugins/swarm-benchmark-log.md), but a node does not know its link's rate. It can see its
link's queue, though: an ACK carries the peer's clock and our timestamp echoed (plus the
peer's hold time), so their difference is the clock offset plus the one-way delay of our
datagram; above its minimum it is the time our datagram queued on the way
(``Connection.fwd_delay``). The least of what the node's sessions saw over a few ticks
is our own uplink's queue: a peer's congested downlink shows in its session only, and
the bursts of our own pacing in some datagrams only.

The controller (a delay target, like LEDBAT's, RFC 6817):

* Queue above the target: the limit is above the link's rate; it is set just below that
  rate, by more the longer the queue (so it drains), then held while the samples catch
  up with the cut (they are a one-way delay plus an ACK hold old) — longer, up to twice
  as long, while the node has lately put less on the link than it carries: the queue
  the samples show is draining by itself. (Only after a cut: a node just out of an idle
  spell has sent little too, and its first cut must not wait.)
* The link's rate is what it delivered while a queue stood (a link with a queue never
  idles): the data the node's sessions got acknowledged plus the node's own ACKs, each
  datagram with its IP/UDP header, over the ticks whose samples all showed a queue.
  Unlike what was *sent*, this leaves out what the queue dropped; unlike a plain
  average, the time the link idled.
* Queue under a third of the target while the node sends at its limit and sessions wait
  for it: raised at once to just under the link's measured rate if it is below that (a
  cut made while the queue drained), then slowly (0.25 % a tick, ~13 %/s; faster the
  longer no queue is seen, as the measurement may have been low) until the queue says it
  is above the link again. A node that sends below its limit does not
  raise it: the limit must stay near what the link carries, not drift up while the node
  is idle and then let a burst overfill the queue.
* Until the link's rate has been measured there is no limit; a node that sends little
  never queues and is never limited.

The samples come from peers: one that lies can only lower the least delay (switching the
control off, as before it existed) or raise its own session's, which the least over all
sessions ignores; it cannot throttle a node that has other sessions.

On a slow link one datagram's serialisation is milliseconds (5.7 ms at 2 Mbit/s): the
target and what counts as a queue are never less than a few datagrams' worth (the
target six, 34 ms at 2 Mbit/s, above a turn of the limit's round robin).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Final

TICK_S: Final = 0.02
FILTER_S: Final = 0.06  # the queue is the least sample over this long (a few ticks)
WINDOW_S: Final = 0.3  # the node's send rate is measured over this much of the recent past
BUSY_S: Final = 0.002  # samples all showing this much queue (or 1.5 datagrams): link busy
BUSY_DATAGRAMS: Final = 1.5
# The target is never below this many datagrams' time: the limit's own bursts (a turn of
# 4 datagrams, shaper.py) queue briefly, and must not read as a link that is too slow.
TARGET_DATAGRAMS: Final = 6.0
BUSY_WINDOW_S: Final = 0.5  # the link's rate: over the last this much busy time
BUSY_MIN_S: Final = 0.1  # ... once there is that much of it
DRAIN_S: Final = 0.5  # a queue of q is drained in about this long (margin q / DRAIN_S)
MIN_MARGIN: Final = 0.03
MAX_MARGIN: Final = 0.3
HOLD_S: Final = 0.2  # after a cut, samples this old still show the queue before it
# ... and up to HOLD_MAX_S while the node has put less on the link than it carries over
# the last RECENT_S: the queue the samples show is draining by itself
HOLD_MAX_S: Final = 0.4
RECENT_S: Final = 0.1
GROWTH: Final = 0.0025  # per tick, above the link's measured rate (probing for more) ...
MAX_GROWTH: Final = 0.02  # ... faster the longer no queue is seen, up to this
CALM_S: Final = 0.5  # ... one GROWTH more per this long without a queue
BUSY_SHARE: Final = 0.9  # sending at least this share of the limit counts as at the limit
MIN_RATE: Final = 8 * 1024.0  # bytes/s: never below (heartbeats, ACKs, control)


class UplinkControl:
    """The limit (bytes/s on the wire, 0 = none yet) that holds the uplink's queue short."""

    def __init__(self, target_s: float, *, datagram: float = 1428.0) -> None:
        if target_s <= 0:
            raise ValueError(f"target delay must be > 0, got {target_s}")
        self.target_s = target_s
        self.datagram = datagram  # bytes on the wire of a full datagram
        self.rate = 0.0
        self.next_tick = -math.inf
        self.cuts = 0
        self.queue = -1.0  # the last queueing delay seen (s; negative: none yet)
        self.link_rate = 0.0  # what the link delivered while it had a queue (bytes/s)
        self._samples: deque[tuple[float, float]] = deque()  # (time, least delay that tick)
        self._sent: deque[tuple[float, float]] = deque()  # (time, bytes sent so far)
        self._busy: deque[tuple[float, float]] = deque()  # (seconds, bytes delivered) while queued
        self._busy_time = 0.0
        self._busy_bytes = 0.0
        self._last = (-math.inf, 0.0)  # (time, delivered) of the last tick
        self._hold_until = -math.inf
        self._cut_at = -math.inf
        self._queue_seen = -math.inf  # the last tick whose queue was not short

    def _datagram_time(self) -> float:
        rate = self.link_rate or self.rate
        return self.datagram / rate if rate > 0 else 0.0

    def update(self, now: float, least: float, delivered: float, sent: float,
               waiting: bool) -> float:
        """One tick. ``least``: the least queueing delay (s) the sessions' samples showed
        since the last tick (negative: none arrived); ``delivered``: every byte the link is
        known to have carried so far; ``sent``: every byte the node put on it; ``waiting``:
        sessions are held back by the limit. Returns the new limit."""
        last_time, last_delivered = self._last
        self._last = (now, delivered)
        self.next_tick = now + TICK_S
        sent_history = self._sent
        sent_history.append((now, sent))
        while len(sent_history) > 2 and sent_history[1][0] <= now - WINDOW_S:
            sent_history.popleft()
        if least < 0:
            return self.rate
        one = self._datagram_time()
        if least >= max(BUSY_S, BUSY_DATAGRAMS * one) and now < last_time + WINDOW_S:
            self._note_busy(now - last_time, delivered - last_delivered)
        samples = self._samples
        samples.append((now, least))
        while samples[0][0] <= now - FILTER_S:
            samples.popleft()
        queue = self.queue = min(q for _, q in samples)
        target = max(self.target_s, TARGET_DATAGRAMS * one)
        if queue >= target / 3:
            self._queue_seen = now
        if queue > target:
            if now >= self._hold_until and not (now < self._cut_at + HOLD_MAX_S
                                                and self._draining(now, sent)):
                self._cut(now, queue)
        elif queue < target / 3 and waiting and self.rate > 0:
            recent = self._send_rate(now, sent, WINDOW_S)
            if recent is not None and recent >= BUSY_SHARE * self.rate:
                # the longer no queue was seen, the faster (the last measurement may
                # have been low): 0.25 % a tick at first, 0.5 % after CALM_S, ...
                calm = (now - self._queue_seen) / CALM_S
                growth = min(MAX_GROWTH, GROWTH * (1 + max(0.0, calm)))
                self.rate = max(self.rate * (1 + growth), self.link_rate * (1 - MIN_MARGIN))
        return self.rate

    def _draining(self, now: float, sent: float) -> bool:
        """The node has lately put less on the link than the link carries: the queue the
        samples show (they are a one-way delay and an ACK hold old) is shrinking by itself,
        and a cut now would only hold back the next burst of work while the link idles."""
        if self.link_rate <= 0:
            return False
        recent = self._send_rate(now, sent, RECENT_S)
        return recent is not None and recent < self.link_rate

    def _send_rate(self, now: float, sent: float, over: float) -> float | None:
        """What the node put on the link per second since the last tick at least ``over``
        seconds ago (or the oldest kept: WINDOW_S back at most); None if that tick is now."""
        start, start_sent = self._sent[0]
        for t, s in self._sent:
            if t > now - over:
                break
            start, start_sent = t, s
        return (sent - start_sent) / (now - start) if now > start else None

    def _note_busy(self, seconds: float, delivered: float) -> None:
        busy = self._busy
        busy.append((seconds, delivered))
        self._busy_time += seconds
        self._busy_bytes += delivered
        while self._busy_time - busy[0][0] >= BUSY_WINDOW_S:
            old_seconds, old_bytes = busy.popleft()
            self._busy_time -= old_seconds
            self._busy_bytes -= old_bytes
        if self._busy_time >= BUSY_MIN_S:
            self.link_rate = self._busy_bytes / self._busy_time

    def _cut(self, now: float, queue: float) -> None:
        link = self.link_rate
        if link <= 0:
            return  # not measured yet: the link must have been busy BUSY_MIN_S first
        margin = min(MAX_MARGIN, max(MIN_MARGIN, queue / DRAIN_S))
        rate = link * (1 - margin)
        if self.rate > 0:
            rate = max(min(rate, self.rate), self.rate / 2)
        self.rate = max(MIN_RATE, rate)
        self.cuts += 1
        self._cut_at = now
        self._hold_until = now + HOLD_S


__all__ = ["TICK_S", "UplinkControl"]
