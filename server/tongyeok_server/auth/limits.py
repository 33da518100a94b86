"""Per-caller limits: concurrent streams, new streams per minute, audio hours per day, receipt scans per minute.

Each limit has a server-wide default (flags) that a caller's API key may
override (``Quota``; 0 = unlimited). Over a limit is RESOURCE_EXHAUSTED with
a message naming the limit, the caller's use and when to retry.

The counting windows are the ``limits`` package's: a moving window (exact:
the last minute's streams, one timestamp each; the cheaper sliding-window
counter lets through up to twice the limit across a minute's boundary, which
a test caught) for new streams per minute, a fixed window of 24 hours (from the caller's
first audio of the window) for audio. Their storage is ``--limits-storage``:
``memory://`` (the default) counts per server process; a shared storage
such as ``redis://host:6379`` makes the per-minute and per-day limits hold
across processes and replicas (``limit_windows``: bounded calls, and
counted in this process while the storage is unreachable). Concurrent
streams are counted in the process that serves them (a stream lives in one
process), so with ``--processes N`` or replicas that limit is per process.

A stream counts from its first byte, not from its first message: until
that message (config or resume) comes, it holds one of the caller's
*opening places*, as many as its concurrent streams (``opening``), and it
waits for it at most ``--first-message-timeout``. So a caller cannot hold
streams that never say what they are (a key limited to 2 streams held 200
that way), and each such stream is gone within seconds. Why places of their
own rather than the concurrent count itself: a caller at its limit whose
network broke has every session detached and holding its slot, and its
resumes must get through; they are known to be resumes only once their
first message is read.

The anonymous caller (authentication off) is not limited: it is everyone.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerMinute

from tongyeok_server.auth.caller import Caller, CallerKind
from tongyeok_server.auth.limit_windows import LimitWindows
from tongyeok_server.auth.refusals import IGNORE, RefusalObserver
from tongyeok_server.errors import ServiceError

# Audio is counted in milliseconds and passed to the window at most this often per stream.
AUDIO_FLUSH_S = 1.0


@dataclass(frozen=True)
class LimitDefaults:
    """The server-wide defaults; 0 means unlimited."""

    max_streams: int = 0
    streams_per_minute: int = 0
    audio_hours_per_day: float = 0.0
    scans_per_minute: int = 0


def _in(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def _exhausted(message: str) -> ServiceError:
    return ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


class StreamAdmission:
    """One admitted stream: counts its audio against the caller's day, releases its slot at the end."""

    def __init__(self, limits: CallerLimits | None, caller: Caller, audio_item: RateLimitItem | None) -> None:
        self._limits = limits
        self._caller = caller
        self._audio_item = audio_item
        self._pending_ms = 0.0
        self._released = False
        self._exhausted = False  # the day's audio ran out during this stream (counted once)

    def add_audio(self, seconds: float) -> ServiceError | None:
        """Count ``seconds`` of audio received; the error to end the stream with once the day's audio is used up."""
        if self._limits is None or self._audio_item is None:
            return None
        self._pending_ms += seconds * 1000
        if self._pending_ms < AUDIO_FLUSH_S * 1000:
            return None
        return self._flush()

    def _flush(self) -> ServiceError | None:
        assert self._limits is not None and self._audio_item is not None
        cost, self._pending_ms = int(self._pending_ms), self._pending_ms - int(self._pending_ms)
        if cost and not self._limits.windows.hit_fixed(self._audio_item, self._caller.id, cost=cost):
            if not self._exhausted:
                self._exhausted = True
                self._limits.refusals.limit_refused("audio_per_day", self._caller)
            return self._limits.audio_exhausted(self._caller, self._audio_item)
        return None

    def release(self) -> None:
        """The stream is over: count what is left of its audio and free its slot. Idempotent."""
        if self._released:
            return
        self._released = True
        if self._limits is not None:
            if self._audio_item is not None and self._pending_ms >= 1:
                self._flush()
            self._limits.release(self._caller)


class CallerLimits:
    """The limits of every caller of one server process (see the module docstring)."""

    def __init__(
        self, defaults: LimitDefaults, storage_uri: str = "memory://", refusals: RefusalObserver = IGNORE
    ) -> None:
        """``storage_uri`` is a ``limits`` storage URI (``memory://``, ``redis://...``); ``refusals`` counts refusals."""
        self.defaults = defaults
        self.refusals = refusals
        #: The counting windows: in ``storage_uri``, or in this process while it cannot be reached.
        self.windows = LimitWindows(storage_uri)
        self._open: dict[str, int] = {}
        self._opening: dict[str, int] = {}
        self._lock = threading.Lock()

    def _max_streams(self, caller: Caller) -> int:
        return self.defaults.max_streams if caller.quota.max_streams is None else caller.quota.max_streams

    @contextlib.contextmanager
    def opening(self, caller: Caller) -> Iterator[None]:
        """Hold one of ``caller``'s opening places while its stream waits for its first message.

        Raises RESOURCE_EXHAUSTED when the caller has as many streams waiting
        for their first message as its limit of concurrent streams.
        """
        limit = 0 if caller.kind is CallerKind.ANONYMOUS else self._max_streams(caller)
        if not limit:
            yield
            return
        with self._lock:
            waiting = self._opening.get(caller.id, 0)
            if waiting >= limit:
                self.refusals.limit_refused("opening", caller)
                raise _exhausted(
                    f"{caller.id} has {waiting} streams open that have not sent their first message, its limit of "
                    f"{limit}; send `config` (or `resume`) as each stream's first message as soon as it opens"
                )
            self._opening[caller.id] = waiting + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._opening.pop(caller.id) - 1
                if left:
                    self._opening[caller.id] = left

    def admit(self, caller: Caller) -> StreamAdmission:
        """Admit a new stream of ``caller``, or raise RESOURCE_EXHAUSTED saying which limit and when to retry."""
        if caller.kind is CallerKind.ANONYMOUS:
            return StreamAdmission(None, caller, None)
        quota, d = caller.quota, self.defaults
        max_streams = self._max_streams(caller)
        per_minute = d.streams_per_minute if quota.streams_per_minute is None else quota.streams_per_minute
        hours = d.audio_hours_per_day if quota.audio_hours_per_day is None else quota.audio_hours_per_day
        audio_item = RateLimitItemPerDay(max(1, round(hours * 3_600_000))) if hours > 0 else None
        if audio_item is not None:
            stats = self.windows.fixed_stats(audio_item, caller.id)
            if stats.remaining <= 0:
                self.refusals.limit_refused("audio_per_day", caller)
                raise self.audio_exhausted(caller, audio_item)
        with self._lock:
            open_now = self._open.get(caller.id, 0)
            if max_streams and open_now >= max_streams:
                self.refusals.limit_refused("concurrent", caller)
                raise _exhausted(
                    f"{caller.id} has {open_now} streams open, its limit of {max_streams} concurrent streams; "
                    "end one, or retry when one has ended"
                )
            if per_minute:
                item = RateLimitItemPerMinute(per_minute)
                if not self.windows.hit_moving(item, caller.id):
                    self.refusals.limit_refused("per_minute", caller)
                    reset = self.windows.moving_stats(item, caller.id).reset_time
                    raise _exhausted(
                        f"{caller.id} opened {per_minute} streams in the last minute, its limit of {per_minute} new "
                        f"streams per minute; retry in {_in(reset - time.time())}"
                    )
            self._open[caller.id] = open_now + 1
        return StreamAdmission(self, caller, audio_item)

    def admit_scan(self, caller: Caller) -> None:
        """Count one receipt scan of ``caller`` (Expenses.ScanReceipt), or raise RESOURCE_EXHAUSTED when over.

        Scans have a per-minute window of their own (``--caller-scans-per-minute``,
        an API key's ``scans_per_minute=``), in the same storage as the streams'.
        """
        if caller.kind is CallerKind.ANONYMOUS:
            return
        limit = (
            self.defaults.scans_per_minute if caller.quota.scans_per_minute is None else caller.quota.scans_per_minute
        )
        if not limit:
            return
        item = RateLimitItemPerMinute(limit, namespace="SCANS")
        if not self.windows.hit_moving(item, caller.id):
            self.refusals.limit_refused("scans_per_minute", caller)
            reset = self.windows.moving_stats(item, caller.id).reset_time
            raise _exhausted(
                f"{caller.id} scanned {limit} receipts in the last minute, its limit of {limit} scans per minute; "
                f"retry in {_in(reset - time.time())}"
            )

    def audio_exhausted(self, caller: Caller, item: RateLimitItem) -> ServiceError:
        """The error for a caller whose audio of the day is used up."""
        stats = self.windows.fixed_stats(item, caller.id)
        limit_h = item.amount / 3_600_000
        used_h = (item.amount - stats.remaining) / 3_600_000
        return _exhausted(
            f"{caller.id} has sent {used_h:.2f} h of audio in the current 24-hour window, its limit of "
            f"{limit_h:g} h per day; the window resets in {_in(stats.reset_time - time.time())}"
        )

    def release(self, caller: Caller) -> None:
        """One of ``caller``'s streams ended."""
        with self._lock:
            n = self._open.get(caller.id, 0) - 1
            if n > 0:
                self._open[caller.id] = n
            else:
                self._open.pop(caller.id, None)

    def open_streams(self, caller: Caller) -> int:
        """How many streams ``caller`` has open in this process."""
        with self._lock:
            return self._open.get(caller.id, 0)
