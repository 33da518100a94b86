"""The meeting record: every session's transcripts and translations in a database, exported and deleted.

- ``database``: which database (``--store``), connections that behave alike on SQLite and PostgreSQL.
- ``schema`` and ``migrations/``: the tables, and Alembic revisions that create and change them.
- ``ops`` and ``writer``: idempotent writes, and the thread that applies them from a bounded buffer.
- ``extension``: the ``SessionExtension`` through which sessions are recorded.
- ``queries`` and ``page_token``: reads, deletion, the retention purge, ListSessions paging.
- ``records``, ``messages`` and ``export/``: the record as data, as ``tongyeok.v1.Session``, as files.
"""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from tongyeok_server.errors import StartError
from tongyeok_server.settings import StoreSettings
from tongyeok_server.store.database import StoreUrlError, database_url, describe
from tongyeok_server.store.extension import RecordExtension
from tongyeok_server.store.recorder import MeetingRecord, RecordOptions
from tongyeok_server.store.writer import WriterObserver


def record_extension(settings: StoreSettings, observer: WriterObserver | None = None) -> RecordExtension:
    """The record as ``settings`` configure it (migrated and writing), or a disabled one for ``--store none``.

    ``observer`` (the server's metrics, when on) is told of the writes' lag and failures.

    Raises:
        StartError: with what to fix, when the store is misconfigured or cannot be reached at start.

    """
    options = RecordOptions(
        transcripts_default=settings.store_transcripts_default,
        retention_days=settings.retention_days,
        store_audio=settings.store_audio,
        buffer=settings.store_buffer,
    )
    try:
        url = database_url(settings.store, settings.data_dir)
    except StoreUrlError as error:
        raise StartError(str(error)) from None
    if url is None:
        return RecordExtension(None, options)
    try:
        return RecordExtension(MeetingRecord.open(url, options, observer))
    except (SQLAlchemyError, OSError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise StartError(
            f"cannot open the meeting record in {describe(url)}: {first_line}; "
            "check --store and --data-dir, or run with --store none"
        ) from None


__all__ = ["MeetingRecord", "RecordExtension", "RecordOptions", "WriterObserver", "record_extension"]
