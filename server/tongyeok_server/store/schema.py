"""The record's tables as they are at the newest migration (SQLAlchemy Core).

The migrations under ``migrations/versions`` create and change these tables
explicitly; this module describes the result for the queries, and a test
checks that the two agree. Every row belongs to one session and goes with
it (``ON DELETE CASCADE``): deleting the ``sessions`` row deletes the whole
record, audio included.

Write idempotency lives in the primary keys: a session by its id, an
utterance by (session, utterance id), a translation by (session, utterance
id, language), an audio block by (session, sequence number). A write that is
retried after an ambiguous failure inserts nothing twice; spoken speech by
(session, utterance id, language), as its translation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
)
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so values are
    stored as naive UTC (ISO text, which sorts and compares correctly) and
    come back aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the record store; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("caller_id", String(200), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
    Column("outcome", String(40), nullable=False, server_default=""),
    Column("config", Text, nullable=False),  # the effective InterpretConfig, proto3 JSON
    Column("source_languages", String(200), nullable=False),  # comma-separated, in the config's order
    Column("target_languages", String(200), nullable=False),
    Column("recognizer", String(200), nullable=False, server_default=""),
    Column("translator", String(200), nullable=False, server_default=""),
    Column("audio_duration_ms", BigInteger),
    Column("incomplete_reason", Text, nullable=False, server_default=""),
    Column("audio_stored", Boolean, nullable=False, server_default=false()),
    Index("ix_sessions_caller_started", "caller_id", "started_at", "id"),
    Index("ix_sessions_started", "started_at", "id"),
)

# One row per language of a session, for the language filter of ListSessions.
session_languages = Table(
    "session_languages",
    metadata,
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("language_code", String(35), primary_key=True),  # normalised BCP-47, e.g. en-US
    Column("primary_language", String(8), nullable=False),  # e.g. en
    Index("ix_session_languages_primary", "primary_language"),
    Index("ix_session_languages_code", "language_code"),
)

utterances = Table(
    "utterances",
    metadata,
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("utterance_id", BigInteger, primary_key=True, autoincrement=False),
    Column("text", Text, nullable=False),
    Column("language_code", String(35), nullable=False),
    Column("confidence", Float, nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("final_at", UtcDateTime, nullable=False),
    Column("target_languages", String(200), nullable=False),
)

translations = Table(
    "translations",
    metadata,
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("utterance_id", BigInteger, primary_key=True, autoincrement=False),
    Column("language_code", String(35), primary_key=True),
    Column("source_language", String(35), nullable=False),
    Column("text", Text, nullable=False),
    Column("failed", Boolean, nullable=False),
    Column("failure_message", Text, nullable=False, server_default=""),
    Column("created_at", UtcDateTime, nullable=False),
)

# The caller's audio, as sent, in blocks of a few seconds (``--store-audio``).
audio_blocks = Table(
    "audio_blocks",
    metadata,
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# The speech output's metadata: one row per translation spoken to its last chunk (the audio itself is
# not kept). ``duration_ms`` is null for encodings whose length is not in their size (Ogg Opus);
# ``first_audio_after_final_ms`` is from the utterance's final to the first chunk of its speech.
speech = Table(
    "speech",
    metadata,
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("utterance_id", BigInteger, primary_key=True, autoincrement=False),
    Column("language_code", String(35), primary_key=True),
    Column("voice", String(200), nullable=False),
    Column("encoding", String(20), nullable=False),
    Column("sample_rate_hz", Integer, nullable=False),
    Column("audio_bytes", BigInteger, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("duration_ms", BigInteger),
    Column("first_audio_after_final_ms", BigInteger),
    Column("created_at", UtcDateTime, nullable=False),
)

# Expenses read from receipts (migration 0004; the Expenses service, ``expenses/``). Amounts are decimal
# strings in the currency's major unit (no float rounding, the same on SQLite and PostgreSQL); the date
# is ISO 8601 text (sorts as it should). ``line_items`` and ``confidence`` are JSON. ``request_id``
# makes a retried scan return the first one's expense (unique per caller).
expenses = Table(
    "expenses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("caller_id", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("request_id", String(64)),
    Column("merchant", Text, nullable=False, server_default=""),
    Column("expense_date", String(10)),
    Column("total", String(40)),
    Column("currency", String(3), nullable=False, server_default=""),
    Column("tax", String(40)),
    Column("subtotal", String(40)),
    Column("payment", String(20), nullable=False, server_default=""),
    Column("category", String(20), nullable=False, server_default=""),
    Column("line_items", Text, nullable=False, server_default="[]"),
    Column("confidence", Text, nullable=False, server_default="{}"),
    Column("corrected", Text, nullable=False, server_default=""),
    Column("raw_text", Text, nullable=False, server_default=""),
    Column("engine", String(200), nullable=False, server_default=""),
    Column("engine_detail", String(300), nullable=False, server_default=""),
    Column("language", String(35), nullable=False, server_default=""),
    Column("trip", String(200), nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),
    Column("image_media_type", String(40), nullable=False, server_default=""),
    Column("image_bytes", BigInteger, nullable=False, server_default="0"),
    Index("ix_expenses_caller_date", "caller_id", "expense_date", "id"),
    Index("ix_expenses_caller_trip", "caller_id", "trip"),
    Index("ux_expenses_caller_request", "caller_id", "request_id", unique=True),
)

# The receipt's file as the caller sent it, apart from the expense so that listings never read it; it goes
# with its expense (cascade) and, after --retention-days, alone (the expense stays).
receipt_images = Table(
    "receipt_images",
    metadata,
    Column("expense_id", String(64), ForeignKey("expenses.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Index("ix_receipt_images_created", "created_at"),
)

# Store-wide values, e.g. the key that signs page tokens (shared by every replica).
store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

__all__ = [
    "UtcDateTime",
    "audio_blocks",
    "expenses",
    "metadata",
    "receipt_images",
    "session_languages",
    "sessions",
    "speech",
    "store_meta",
    "translations",
    "utterances",
]
