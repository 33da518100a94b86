"""The meeting record of one server process: the database, its writer and the retention purge, together.

``MeetingRecord.open`` migrates the schema, then starts the writer thread and
(with ``--retention-days``) a purge thread that deletes expired records
every ``PURGE_INTERVAL_S``. Several processes or replicas may run it on the
same database: migrations are serialised, writes idempotent, purges too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from tongyeok_server.store import migrate, queries
from tongyeok_server.store.database import describe, open_engine
from tongyeok_server.store.writer import RecordWriter, WriterObserver

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 3600.0
WRITER_CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RecordOptions:
    """What the record keeps and for how long (from the server's settings)."""

    transcripts_default: bool = True
    retention_days: int = 30
    store_audio: bool = False
    buffer: int = 20000


class MeetingRecord:
    """The record store as the server uses it; ``close`` at shutdown."""

    def __init__(self, url: URL, engine: Engine, writer: RecordWriter, options: RecordOptions) -> None:
        self.url = url
        self.engine = engine
        self.writer = writer
        self.options = options
        self._page_key: bytes | None = None
        self._purges: list[Callable[[datetime | None], int]] = []
        self._stop = threading.Event()
        self._purger: threading.Thread | None = None
        if options.retention_days > 0:
            self._purger = threading.Thread(target=self._purge_periodically, name="record-purge", daemon=True)
            self._purger.start()

    @classmethod
    def open(cls, url: URL, options: RecordOptions, observer: WriterObserver | None = None) -> MeetingRecord:
        """Migrate the database at ``url`` to the newest schema and start writing to it.

        ``observer`` (the server's metrics) is told of every write's lag and every failed write.

        Raises:
            SQLAlchemyError: the database cannot be reached or migrated (the server does not start).

        """
        migrate.upgrade(url)
        engine = open_engine(url)
        writer = RecordWriter(engine, capacity=options.buffer, observer=observer)
        log.info(
            "meeting record in %s (transcripts kept by default: %s, retention %s, audio %s)",
            describe(url),
            "yes" if options.transcripts_default else "no",
            f"{options.retention_days} days" if options.retention_days > 0 else "forever",
            "kept" if options.store_audio else "not kept",
        )
        return cls(url, engine, writer, options)

    def page_token_key(self) -> bytes:
        """The key that signs ListSessions page tokens (blocking; cached)."""
        if self._page_key is None:
            self._page_key = queries.page_token_key(self.engine)
        return self._page_key

    def purge_expired(self, now: datetime | None = None) -> int:
        """Delete the records older than the retention period now (blocking); returns how many."""
        if self.options.retention_days <= 0:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.options.retention_days)
        deleted = queries.purge(self.engine, cutoff)
        if deleted:
            log.info("retention: deleted %d session records older than %s", deleted, cutoff.isoformat())
        for purge in self._purges:
            purge(now)
        return deleted

    def add_purge(self, purge: Callable[[datetime | None], int]) -> None:
        """Run ``purge(now)`` with every retention purge (the expenses' photos follow the same rule)."""
        self._purges.append(purge)

    def _purge_periodically(self) -> None:
        delay = 5.0  # the first purge shortly after start, off the start-up path
        while not self._stop.wait(delay):
            delay = PURGE_INTERVAL_S
            try:
                self.purge_expired()
            except SQLAlchemyError as error:
                log.warning("retention purge failed (%s); trying again later", str(error).splitlines()[0][:300])

    def close(self) -> None:
        """Write what is pending, stop the threads, release the connections."""
        self._stop.set()
        self.writer.close(WRITER_CLOSE_TIMEOUT_S)
        if self._purger is not None:
            self._purger.join(5.0)
        self.engine.dispose()
