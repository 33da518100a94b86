"""The writes of a meeting record, and applying a batch of them in one transaction.

Every write is idempotent: inserts skip rows whose key exists
(``ON CONFLICT DO NOTHING``), updates set values rather than add to them. So
a batch that is applied again after a failure whose outcome was unknown (the
connection broke during COMMIT) stores nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, update
from sqlalchemy.dialects import postgresql, sqlite

from tongyeok_server import languages
from tongyeok_server.store import schema


@dataclass(frozen=True)
class OpenSession:
    """A session began; its header row and languages."""

    session_id: str
    caller_id: str
    started_at: datetime
    config_json: str
    source_languages: tuple[str, ...]
    target_languages: tuple[str, ...]
    recognizer: str
    translator: str
    audio_stored: bool


@dataclass(frozen=True)
class AddUtterance:
    """A final transcript."""

    session_id: str
    utterance_id: int
    text: str
    language_code: str
    confidence: float
    start_ms: int
    end_ms: int
    final_at: datetime
    target_languages: tuple[str, ...]


@dataclass(frozen=True)
class AddTranslation:
    """A finished (or failed) translation of one utterance into one language."""

    session_id: str
    utterance_id: int
    language_code: str
    source_language: str
    text: str
    failed: bool
    failure_message: str
    created_at: datetime


@dataclass(frozen=True)
class AddAudio:
    """A block of the caller's audio, as sent."""

    session_id: str
    seq: int
    start_ms: int
    data: bytes


@dataclass(frozen=True)
class AddSpeech:
    """A translation spoken to its last chunk: what the caller received, not the audio."""

    session_id: str
    utterance_id: int
    language_code: str
    voice: str
    encoding: str  # a ``SpeechEncoding`` value, e.g. "LINEAR16"
    sample_rate_hz: int
    audio_bytes: int
    chunks: int
    duration_ms: int | None
    first_audio_after_final_ms: int | None
    created_at: datetime


@dataclass(frozen=True)
class EndSession:
    """The session is over."""

    session_id: str
    ended_at: datetime
    outcome: str
    audio_duration_ms: int


@dataclass(frozen=True)
class MarkIncomplete:
    """Part of the session's record was lost; say why, for good."""

    session_id: str
    reason: str


Op = OpenSession | AddUtterance | AddTranslation | AddAudio | AddSpeech | EndSession | MarkIncomplete


def apply(conn: Connection, ops: Sequence[Op]) -> None:
    """Write ``ops`` on ``conn`` (inside the caller's transaction): inserts first, parents before children."""
    opened = [o for o in ops if isinstance(o, OpenSession)]
    _insert(conn, schema.sessions, [_session_row(o) for o in opened])
    _insert(conn, schema.session_languages, [row for o in opened for row in _language_rows(o)])
    _insert(conn, schema.utterances, [_row(o) for o in ops if isinstance(o, AddUtterance)])
    _insert(conn, schema.translations, [_row(o) for o in ops if isinstance(o, AddTranslation)])
    _insert(conn, schema.audio_blocks, [_row(o) for o in ops if isinstance(o, AddAudio)])
    _insert(conn, schema.speech, [_row(o) for o in ops if isinstance(o, AddSpeech)])
    for o in ops:
        if isinstance(o, EndSession):
            conn.execute(
                update(schema.sessions)
                .where(schema.sessions.c.id == o.session_id)
                .values(ended_at=o.ended_at, outcome=o.outcome, audio_duration_ms=o.audio_duration_ms)
            )
        elif isinstance(o, MarkIncomplete):
            conn.execute(
                update(schema.sessions).where(schema.sessions.c.id == o.session_id).values(incomplete_reason=o.reason)
            )


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(), rows)


def _row(op: AddUtterance | AddTranslation | AddAudio | AddSpeech) -> dict[str, Any]:
    row = dict(op.__dict__)
    if isinstance(op, AddUtterance):
        row["target_languages"] = ",".join(op.target_languages)
    return row


def _session_row(op: OpenSession) -> dict[str, Any]:
    return {
        "id": op.session_id,
        "caller_id": op.caller_id,
        "started_at": op.started_at,
        "config": op.config_json,
        "source_languages": ",".join(op.source_languages),
        "target_languages": ",".join(op.target_languages),
        "recognizer": op.recognizer,
        "translator": op.translator,
        "audio_stored": op.audio_stored,
    }


def _language_rows(op: OpenSession) -> list[dict[str, Any]]:
    codes = dict.fromkeys(languages.normalize(c) for c in (*op.source_languages, *op.target_languages))
    return [
        {"session_id": op.session_id, "language_code": code, "primary_language": languages.primary(code)}
        for code in codes
    ]
