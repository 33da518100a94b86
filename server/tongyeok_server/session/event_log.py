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
        self._entries: deque[Entry] = deque()
        self._next = next_sequence_number
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
        """Take a number for an event that is not kept here (``session_started``, sent by the stream itself)."""
        number = self._next
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

    async def read(self, after: int, stop: asyncio.Event | None = None) -> AsyncIterator[Entry]:
        """Every event numbered after ``after``, then each new one as it comes, until ``End`` or ``stop``.

        Raises ``EventsNoLongerKept`` if events after ``after`` were dropped.
        ``stop`` ends the reading between events (set it, then ``wake()``).
        """
        position = after
        while True:
            if stop is not None and stop.is_set():
                return
            if self._entries and position + 1 < self._entries[0].sequence_number:
                raise EventsNoLongerKept(self._entries[0].sequence_number)
            # Entries are numbered consecutively, so the one after ``position`` is at a known index.
            start = position + 1 - self._entries[0].sequence_number if self._entries else 0
            pending = [self._entries[i] for i in range(max(0, start), len(self._entries))]
            for entry in pending:
                if stop is not None and stop.is_set():
                    return
                position = entry.sequence_number
                yield entry
                if isinstance(entry.event, ev.End):
                    return
            if self.ended and position >= self.last_sequence_number:
                return
            self._changed.clear()
            if position < self.last_sequence_number:
                continue  # appended while we were yielding
            await self._changed.wait()
