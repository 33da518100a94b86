"""A session's events, numbered and kept for a while, so that a resumed stream can be sent what it missed.

Every event a session produces gets the next sequence number here, on the
server's event loop, and is kept in a ring bounded by count, bytes and age
(the newest are always kept). A stream reads the log from a sequence number
on (``read``); at most one stream reads at a time, but the log does not
care: a reader is only a cursor. The session goes on appending while no
stream reads (its caller's connection broke), which is what makes a resume
lossless: the events produced meanwhile wait here.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from tongyeok_server.session import events as ev

#: Bounds of what is kept for replay (the newest event is always kept).
MAX_EVENTS = 20_000
MAX_BYTES = 16 << 20
MIN_AGE_S = 300.0  # events younger than this are kept even past the bounds above


class EventsNoLongerKept(Exception):
    """A reader asked for events that were dropped; ``oldest`` is the first one still kept."""

    def __init__(self, oldest: int) -> None:
        super().__init__(f"events before {oldest} are no longer kept")
        self.oldest = oldest


@dataclass(frozen=True)
class Entry:
    """One numbered event."""

    sequence_number: int
    event: ev.SessionEvent
    at: float  # monotonic time it was appended
    size: int


def _size(event: ev.SessionEvent) -> int:
    # Only audio is big; everything else is a few hundred bytes at most.
    return 256 + (len(event.audio) if isinstance(event, ev.Audio) else 0)


class EventLog:
    """Numbered events of one session (see the module docstring); use on the event loop only."""

    def __init__(self, next_sequence_number: int = 1, max_age_s: float = MIN_AGE_S) -> None:
        """``next_sequence_number`` above 1: the session moved here, the numbers before it were another server's."""
        self._entries: deque[Entry] = deque()
        self._next = next_sequence_number
        # Numbers taken for events sent without being kept (``reserve``): a reader may skip them, as
        # opposed to numbers before the log's first (another server's) or dropped ones.
        self._reserved: set[int] = set()
        self._bytes = 0
        self._min_age_s = max_age_s
        self._changed = asyncio.Event()
        self.ended = False

    @property
    def next_sequence_number(self) -> int:
        """The number the next event will get."""
        return self._next

    @property
    def last_sequence_number(self) -> int:
        """The number of the newest event (0 before the first)."""
        return self._next - 1

    @property
    def oldest_kept(self) -> int:
        """The number of the oldest event still kept (``next_sequence_number`` when none is)."""
        return self._entries[0].sequence_number if self._entries else self._next

    def append(self, event: ev.SessionEvent) -> int:
        """Number and keep ``event``; returns its number. ``End`` is the last event a log takes."""
        if self.ended:
            raise RuntimeError("the session's log has ended")
        number = self._next
        self._next += 1
        entry = Entry(number, event, time.monotonic(), _size(event))
        self._entries.append(entry)
        self._bytes += entry.size
        if isinstance(event, ev.End):
            self.ended = True
        self._trim(entry.at)
        self._changed.set()
        return number

    def reserve(self) -> int:
        """Take a number for an event that is not kept here (``session_started``, sent by the stream itself).

        Only before the first event is appended: kept events are numbered
        consecutively, which is what lets a reader find its place by index.
        """
        if self._entries or self.ended:
            raise RuntimeError("a number can be reserved only before the log's first event")
        number = self._next
        self._reserved.add(number)
        self._next += 1
        return number

    def _trim(self, now: float) -> None:
        while len(self._entries) > 1 and (len(self._entries) > MAX_EVENTS or self._bytes > MAX_BYTES):
            if now - self._entries[0].at < self._min_age_s:
                break
            self._bytes -= self._entries.popleft().size

    def wake(self) -> None:
        """Wake readers (one whose ``stop`` was set returns)."""
        self._changed.set()

    def check_readable(self, after: int) -> int:
        """Where a reader of the events after ``after`` starts; raises ``EventsNoLongerKept`` if it would miss any.

        Numbers before the oldest kept event are missing unless they were
        reserved (``session_started`` is never sent again, so reading after 0
        and after 1 is the same on a new session). Dropped events and a moved
        session's events from the server before are missing. ``after`` past
        the newest event is allowed: the reader then waits for newer ones.
        """
        oldest = self.oldest_kept
        if after + 1 >= oldest:
            return after
        skippable = sum(1 for number in self._reserved if after < number < oldest)
        if skippable < oldest - after - 1:
            raise EventsNoLongerKept(oldest)
        return oldest - 1

    async def read(self, after: int, stop: asyncio.Event | None = None) -> AsyncIterator[Entry]:
        """Every event numbered after ``after``, then each new one as it comes, until ``End`` or ``stop``.

        Raises ``EventsNoLongerKept`` if events after ``after`` were dropped
        (``check_readable``), also later if a reader falls behind the bounds.
        ``stop`` ends the reading between events (set it, then ``wake()``).

        Each turn of the loop yields one event (whose number is above the
        last one's: at most as many turns as events), returns, or waits for
        the log to change. No value of ``after`` can make it turn without
        one of the three: a number is the caller's to choose.
        """
        position = self.check_readable(after)
        while True:
            if stop is not None and stop.is_set():
                return
            if self._entries:
                # Entries are numbered consecutively, so the one after ``position`` is at a known index.
                index = position + 1 - self._entries[0].sequence_number
                if index < 0:
                    raise EventsNoLongerKept(self._entries[0].sequence_number)  # dropped while we were away
                if index < len(self._entries):
                    entry = self._entries[index]
                    position = entry.sequence_number
                    yield entry
                    if isinstance(entry.event, ev.End):
                        return
                    continue
            if self.ended:
                return
            self._changed.clear()
            await self._changed.wait()
