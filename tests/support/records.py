"""Meeting records for store tests: real stores on SQLite and PostgreSQL, and the writes of made-up sessions."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from tests.support.postgres import PostgresServer
from tongyeok_server.store import ops, schema
from tongyeok_server.store.database import database_url
from tongyeok_server.store.recorder import MeetingRecord, RecordOptions

BACKENDS = ("sqlite", "postgresql")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@contextlib.contextmanager
def store_url(backend: str, postgres: PostgresServer | None) -> Iterator[str]:
    """A ``--store`` value for an empty database of ``backend`` (a fresh file or a fresh database)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="tongyeok-store-") as tmp:
            yield f"sqlite:///{tmp}/record.db"
    else:
        assert postgres is not None
        yield postgres.create_database()


@contextlib.contextmanager
def open_record(store: str, **options: object) -> Iterator[MeetingRecord]:
    """A migrated, writing ``MeetingRecord`` on ``store``."""
    url = database_url(store, "/nonexistent")
    assert url is not None
    record = MeetingRecord.open(url, RecordOptions(**options))  # type: ignore[arg-type]
    try:
        yield record
    finally:
        record.close()


def meeting_ops(
    session_id: str,
    *,
    caller: str = "anonymous",
    started_at: datetime = T0,
    sources: tuple[str, ...] = ("en-US",),
    targets: tuple[str, ...] = ("es",),
    utterances: int = 3,
    ended: bool = True,
) -> list[ops.Op]:
    """The writes of one session: its start, ``utterances`` finals each translated (and spoken) into every target, its end."""
    out: list[ops.Op] = [
        ops.OpenSession(
            session_id=session_id,
            caller_id=caller,
            started_at=started_at,
            config_json=json.dumps({"source_language_codes": list(sources), "target_language_codes": list(targets)}),
            source_languages=sources,
            target_languages=targets,
            recognizer="pocketsphinx (test)",
            translator="apertium",
            audio_stored=False,
        )
    ]
    for uid in range(1, utterances + 1):
        spoken = sources[(uid - 1) % len(sources)]
        into = tuple(t for t in targets if t.split("-")[0] != spoken.split("-")[0])
        out.append(
            ops.AddUtterance(
                session_id=session_id,
                utterance_id=uid,
                text=f"sentence {uid} of {session_id}",
                language_code=spoken,
                confidence=0.9,
                start_ms=uid * 2000,
                end_ms=uid * 2000 + 1500,
                final_at=started_at + timedelta(seconds=2 * uid),
                target_languages=into,
            )
        )
        out.extend(
            ops.AddTranslation(
                session_id=session_id,
                utterance_id=uid,
                language_code=t,
                source_language=spoken,
                text=f"frase {uid} ({t})",
                failed=False,
                failure_message="",
                created_at=started_at + timedelta(seconds=2 * uid + 1),
            )
            for t in into
        )
        out.extend(  # each translation spoken (speech output)
            ops.AddSpeech(
                session_id=session_id,
                utterance_id=uid,
                language_code=t,
                voice=t,
                encoding="LINEAR16",
                sample_rate_hz=16000,
                audio_bytes=48000,
                chunks=3,
                duration_ms=1500,
                first_audio_after_final_ms=400,
                created_at=started_at + timedelta(seconds=2 * uid + 2),
            )
            for t in into
        )
    if ended:
        out.append(ops.EndSession(session_id, started_at + timedelta(minutes=5), "ok", 300_000))
    return out


def row_counts(engine: Engine, session_id: str) -> dict[str, int]:
    """Rows of ``session_id`` in every table of the record."""
    counts = {}
    with engine.connect() as conn:
        for table in schema.metadata.sorted_tables:
            key = table.c.id if table.name == "sessions" else table.c.get("session_id")
            if key is None:
                continue
            counts[table.name] = conn.execute(select(func.count()).where(key == session_id)).scalar_one()
    return counts
