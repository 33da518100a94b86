"""The record's writer: a bounded buffer filled on the event loop, emptied by one thread into the database.

Sessions never wait for the database. ``submit`` (on the loop) appends to
the buffer and returns; the writer thread takes what has gathered, at most
every ``LINGER_S``, and applies it in one transaction (a few transactions a
second at hundreds of streams). What it could not write stays at the front
of the buffer and is written again, idempotently, when the store answers.

What callers are told, as notices on their stream:

- ``RECORD_INCOMPLETE`` when the store fails a write (every open session is
  told once), or when a session's writes have waited ``lag_notice_s`` (a
  slow store). The record is then behind, not lost.
- ``RECORD_RESTORED`` once everything of that session is written.
- ``RECORD_INCOMPLETE`` again, with different words, when the buffer is full
  and a session's event is dropped: its record is incomplete for good and
  marked so (the mark itself, like the session's start and end, is never
  dropped; it is a few bytes per session).
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from tongyeok_client.backoff import Backoff
from tongyeok_server.session import events as ev
from tongyeok_server.store import ops
from tongyeok_server.store.database import write

log = logging.getLogger(__name__)

LINGER_S = 0.2  # a record a fraction of a second behind costs nothing; fewer wakeups cost the loop less GIL
MAX_BATCH = 500
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0
# A store that is down is tried again at these waits (the one policy, tongyeok_client.backoff).
RETRY_BACKOFF = Backoff(RETRY_MIN_S, RETRY_MAX_S)
_ESSENTIAL = (ops.OpenSession, ops.EndSession, ops.MarkIncomplete)
_DATA_ERRORS = (IntegrityError, DataError)  # this write is wrong (e.g. its session was deleted); others may be fine


class WriterObserver(Protocol):
    """Who wants the writer's figures (the server's metrics).

    Called on the writer thread; ``failed("buffer_full", ...)`` on the thread
    that submitted the write that did not fit.
    """

    def written(self, lags_s: list[float]) -> None:
        """Writes committed, each with its time from ``submit`` to the commit."""

    def failed(self, reason: str, count: int) -> None:
        """``count`` writes failed: ``unreachable`` (retried), ``invalid`` or ``buffer_full`` (lost)."""


@dataclass(eq=False)
class SessionLog:
    """What the writer knows of one session: where its notices go and how much of it is pending."""

    session_id: str
    emit: Callable[[ev.SessionEvent], None]
    open: bool = True
    pending: int = 0
    notified: bool = False  # told RECORD_INCOMPLETE (behind), not yet RECORD_RESTORED
    lost: int = 0
    deleted: bool = False  # deleted on request while it ran: write nothing more


@dataclass
class _Item:
    log: SessionLog
    op: ops.Op
    queued_at: float
    audio_bytes: int = 0


@dataclass
class WriterStats:
    """Counts since start (for tests, logs and the bench)."""

    written: int = 0
    lost: int = 0
    batches: int = 0
    failures: int = 0
    dropped_invalid: int = 0
    max_pending: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class RecordWriter:
    """One per server process; thread-safe ``submit``, one writer thread."""

    def __init__(
        self,
        engine: Engine,
        *,
        capacity: int,
        max_audio_bytes: int = 256 << 20,
        lag_notice_s: float = 15.0,
        observer: WriterObserver | None = None,
    ) -> None:
        self._engine = engine
        self._observer = observer
        self._capacity = capacity
        self._max_audio_bytes = max_audio_bytes
        self._lag_notice_s = lag_notice_s
        self._buffer: collections.deque[_Item] = collections.deque()
        self._audio_bytes = 0
        self._cond = threading.Condition()
        self._logs: set[SessionLog] = set()
        self._down = False
        self._writing = False
        self._waiting = False
        self._stopping = False
        self._stop_deadline = 0.0
        self.stats = WriterStats()
        self._thread = threading.Thread(target=self._run, name="record-writer", daemon=True)
        self._thread.start()

    # -- the event loop's side ---------------------------------------------------

    def track(self, session_id: str, emit: Callable[[ev.SessionEvent], None]) -> SessionLog:
        """Start following a session; it is told at once if the store is known to be down."""
        entry = SessionLog(session_id, emit)
        with self._cond:
            self._logs.add(entry)
            tell = self._down
            entry.notified = tell
        if tell:
            entry.emit(ev.Notice(ev.NoticeCode.RECORD_INCOMPLETE, self._down_message()))
        return entry

    def submit(self, entry: SessionLog, op: ops.Op) -> None:
        """Queue one write of ``entry``'s session; never blocks."""
        if entry.deleted:
            return
        now = time.monotonic()
        notice: ev.Notice | None = None
        size = len(op.data) if isinstance(op, ops.AddAudio) else 0
        with self._cond:
            if not isinstance(op, _ESSENTIAL) and (
                len(self._buffer) >= self._capacity or self._audio_bytes + size > self._max_audio_bytes
            ):
                entry.lost += 1
                self.stats.lost += 1
                if self._observer is not None:
                    self._observer.failed("buffer_full", 1)
                if entry.lost == 1:
                    reason = (
                        "events were lost: the record store was unavailable or slow for longer than this server "
                        f"can hold writes ({self._capacity})"
                    )
                    self._append(entry, ops.MarkIncomplete(entry.session_id, reason), now, 0)
                    entry.notified = False  # it will not be restored
                    log.error("record of session %s: buffer full, %s", entry.session_id, reason)
                    if entry.open:
                        notice = ev.Notice(
                            ev.NoticeCode.RECORD_INCOMPLETE,
                            f"the meeting record of this session is incomplete: {reason}; the meeting goes on",
                        )
            else:
                self._append(entry, op, now, size)
                lag = now - self._buffer[0].queued_at
                if lag > self._lag_notice_s and not entry.notified and not entry.lost and entry.open:
                    entry.notified = True
                    notice = ev.Notice(
                        ev.NoticeCode.RECORD_INCOMPLETE,
                        f"the meeting record is {lag:.0f} s behind (the record store is slow); the meeting goes on "
                        "and the record will catch up",
                    )
        if notice is not None:
            entry.emit(notice)

    def finish(self, entry: SessionLog) -> None:
        """The session is over (its end was submitted): no more notices for it."""
        with self._cond:
            entry.open = False
            if entry.pending == 0:
                self._logs.discard(entry)

    def _append(self, entry: SessionLog, op: ops.Op, now: float, size: int) -> None:
        self._buffer.append(_Item(entry, op, now, size))
        self._audio_bytes += size
        entry.pending += 1
        self.stats.max_pending = max(self.stats.max_pending, len(self._buffer))
        if self._waiting:
            self._cond.notify()

    # -- state, for the extension and tests ---------------------------------------

    @property
    def down(self) -> bool:
        """Whether the last write failed for want of a store."""
        return self._down

    @property
    def pending(self) -> int:
        """Writes not yet in the database."""
        return len(self._buffer)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything submitted so far is written (or dropped); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._buffer and not self._writing, timeout)

    def forget(self, session_id: str) -> None:
        """Drop the pending writes of a session that was deleted meanwhile."""
        with self._cond:
            for entry in self._logs:
                if entry.session_id == session_id:
                    entry.deleted = True
            kept = [item for item in self._buffer if item.op.session_id != session_id]
            for item in self._buffer:
                if item.op.session_id == session_id:
                    item.log.pending -= 1
                    self._audio_bytes -= item.audio_bytes
            self._buffer = collections.deque(kept)

    def close(self, timeout: float) -> None:
        """Write what is pending (for up to ``timeout`` s if the store is down), then stop the thread."""
        with self._cond:
            self._stopping = True
            self._stop_deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout + RETRY_MAX_S + 1)
        with self._cond:
            left = len(self._buffer)
            sessions = len({item.op.session_id for item in self._buffer})
        if left:
            log.error(
                "record store: %d writes of %d sessions could not be written before shutdown; those records lack them",
                left,
                sessions,
            )

    # -- the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while True:
            with self._cond:
                self._waiting = True
                while not self._buffer and not self._stopping:
                    self._cond.notify_all()  # wait_idle
                    self._cond.wait()
                self._waiting = False
                if not self._buffer:
                    self._cond.notify_all()
                    return
                batch = list(itertools.islice(self._buffer, MAX_BATCH))
                self._writing = True
            done = self._write(batch)
            self._on_written(batch[:done])
            if done < len(batch):
                self._on_outage()
                with self._cond:
                    if self._stopping and time.monotonic() >= self._stop_deadline:
                        return
                    failures += 1
                    self._cond.wait(RETRY_BACKOFF.delay_s(failures))
                continue
            failures = 0
            with self._cond:
                if not self._stopping:
                    # Let a batch gather: fewer, larger transactions cost the database and this process less.
                    self._cond.wait_for(lambda: self._stopping, LINGER_S)

    def _write(self, batch: list[_Item]) -> int:
        """Apply ``batch``; returns how many leading items are done with (written, or dropped for good)."""
        try:
            with write(self._engine) as conn:
                ops.apply(conn, [item.op for item in batch])
            return len(batch)
        except _DATA_ERRORS:
            pass
        except SQLAlchemyError as error:
            self._log_failure(error, len(batch))
            return 0
        except Exception:
            log.exception("record store: a batch of %d writes failed; writing them one by one", len(batch))
        # One bad write must not hold back the others: find it.
        for i, item in enumerate(batch):
            try:
                with write(self._engine) as conn:
                    ops.apply(conn, [item.op])
            except _DATA_ERRORS as error:
                # Mostly a session deleted while it ran (its rows are gone, foreign keys refuse new ones).
                log.info(
                    "record of session %s: %s dropped (%s)", item.op.session_id, type(item.op).__name__, error.orig
                )
                self._dropped_invalid()
            except SQLAlchemyError as error:
                self._log_failure(error, len(batch) - i)
                return i
            except Exception:
                log.exception("record of session %s: %s cannot be written", item.op.session_id, type(item.op).__name__)
                self._dropped_invalid()
        return len(batch)

    def _dropped_invalid(self) -> None:
        self.stats.dropped_invalid += 1
        if self._observer is not None:
            self._observer.failed("invalid", 1)

    def _log_failure(self, error: SQLAlchemyError, count: int) -> None:
        self.stats.failures += 1
        if self._observer is not None:
            self._observer.failed("unreachable", count)
        if not self._down:
            log.warning(
                "record store unreachable (%s); holding up to %d writes until it answers",
                str(error).splitlines()[0][:300],
                self._capacity,
            )

    def _on_written(self, items: list[_Item]) -> None:
        restored: list[SessionLog] = []
        with self._cond:
            self._writing = False
            if not items:
                return
            for item in items:
                self._buffer.popleft()
                self._audio_bytes -= item.audio_bytes
                item.log.pending -= 1
                kind = type(item.op).__name__
                self.stats.by_kind[kind] = self.stats.by_kind.get(kind, 0) + 1
            self.stats.written += len(items)
            self.stats.batches += 1
            was_down, self._down = self._down, False
            for entry in list(self._logs):
                if entry.pending == 0 and entry.notified:
                    entry.notified = False
                    if entry.open and not entry.lost:
                        restored.append(entry)
                if not entry.open and entry.pending == 0:
                    self._logs.discard(entry)
            self._cond.notify_all()
        if self._observer is not None:  # outside the lock, which the loop's submit takes
            now = time.monotonic()
            self._observer.written([now - item.queued_at for item in items])
        if was_down:
            log.info("record store answers again; %d writes still pending", self.pending)
        for entry in restored:
            entry.emit(
                ev.Notice(
                    ev.NoticeCode.RECORD_RESTORED, "the meeting record has caught up: everything said so far is stored"
                )
            )

    def _on_outage(self) -> None:
        with self._cond:
            self._down = True
            tell = [e for e in self._logs if e.open and not e.notified and not e.lost]
            for entry in tell:
                entry.notified = True
        for entry in tell:
            entry.emit(ev.Notice(ev.NoticeCode.RECORD_INCOMPLETE, self._down_message()))

    def _down_message(self) -> str:
        return (
            "the meeting record cannot be written now (the record store is unreachable); the meeting goes on, "
            f"and the record catches up when the store is back (up to {self._capacity} writes are held)"
        )
