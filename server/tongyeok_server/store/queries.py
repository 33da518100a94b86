"""Reading, deleting and purging records (blocking calls: the servicer runs them off the event loop).

Every read and delete takes ``owner``: the caller id whose sessions are
visible, or None for an admin who sees all. A session of another caller is
indistinguishable from one that does not exist.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Row, and_, delete, exists, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from tongyeok_server import languages
from tongyeok_server.store import schema
from tongyeok_server.store.database import write
from tongyeok_server.store.records import SessionRecord, SpeechRecord, TranslationRecord, UtteranceRecord

_S = schema.sessions
_U = schema.utterances
_T = schema.translations
_SP = schema.speech
_PAGE_KEY = "page_token_key"


@dataclass(frozen=True)
class SessionFilter:
    """What ListSessions narrows to; every field optional."""

    started_after: datetime | None = None  # inclusive
    started_before: datetime | None = None  # exclusive
    language_code: str = ""


@dataclass(frozen=True)
class PagePosition:
    """The last session of the previous page (newest-first order is (started_at, id) descending)."""

    started_at: datetime
    session_id: str


def get_session(engine: Engine, session_id: str, owner: str | None, *, full: bool = True) -> SessionRecord | None:
    """One record, with its utterances and translations if ``full``."""
    with engine.connect() as conn:
        row = conn.execute(_sessions_query(owner).where(_S.c.id == session_id)).first()
        if row is None:
            return None
        utterances: tuple[UtteranceRecord, ...] = ()
        if full:
            u_rows = conn.execute(select(_U).where(_U.c.session_id == session_id).order_by(_U.c.utterance_id)).all()
            t_rows = conn.execute(select(_T).where(_T.c.session_id == session_id)).all()
            s_rows = conn.execute(select(_SP).where(_SP.c.session_id == session_id)).all()
            utterances = _utterances(u_rows, t_rows, s_rows)
    return _record(row, utterances)


def list_sessions(
    engine: Engine, owner: str | None, flt: SessionFilter, after: PagePosition | None, limit: int
) -> list[SessionRecord]:
    """Up to ``limit`` records (BASIC view), newest first, after ``after``."""
    query = _sessions_query(owner)
    if flt.started_after is not None:
        query = query.where(_S.c.started_at >= flt.started_after)
    if flt.started_before is not None:
        query = query.where(_S.c.started_at < flt.started_before)
    if flt.language_code:
        code = languages.normalize(flt.language_code)
        L = schema.session_languages
        match = L.c.language_code == code if "-" in code else L.c.primary_language == code
        query = query.where(exists().where(and_(L.c.session_id == _S.c.id, match)))
    if after is not None:
        query = query.where(
            or_(
                _S.c.started_at < after.started_at,
                and_(_S.c.started_at == after.started_at, _S.c.id < after.session_id),
            )
        )
    query = query.order_by(_S.c.started_at.desc(), _S.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [_record(row, ()) for row in conn.execute(query).all()]


def delete_session(engine: Engine, session_id: str, owner: str | None) -> bool:
    """Delete one record and everything of it (the rows cascade); False if there is none for ``owner``."""
    condition = _S.c.id == session_id
    if owner is not None:
        condition = and_(condition, _S.c.caller_id == owner)
    with write(engine) as conn:
        return conn.execute(delete(_S).where(condition)).rowcount > 0


def purge(engine: Engine, before: datetime) -> int:
    """Delete every record of a session that ended (or, never ended, started) before ``before``."""
    with write(engine) as conn:
        return conn.execute(delete(_S).where(func.coalesce(_S.c.ended_at, _S.c.started_at) < before)).rowcount


def page_token_key(engine: Engine) -> bytes:
    """The store's page-token signing key, made once and shared by every server on the store."""
    meta = schema.store_meta
    with engine.connect() as conn:
        value = conn.execute(select(meta.c.value).where(meta.c.key == _PAGE_KEY)).scalar()
    if value is None:
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        with write(engine) as conn:
            conn.execute(
                dialect.insert(meta).on_conflict_do_nothing(), {"key": _PAGE_KEY, "value": secrets.token_hex(32)}
            )
            value = conn.execute(select(meta.c.value).where(meta.c.key == _PAGE_KEY)).scalar_one()
    return bytes.fromhex(value)


def _sessions_query(owner: str | None) -> Any:
    count = select(func.count()).where(_U.c.session_id == _S.c.id).scalar_subquery().label("utterance_count")
    query = select(_S, count)
    if owner is not None:
        query = query.where(_S.c.caller_id == owner)
    return query


def _split(codes: str) -> tuple[str, ...]:
    return tuple(c for c in codes.split(",") if c)


def _record(row: Row[Any], utterances: tuple[UtteranceRecord, ...]) -> SessionRecord:
    m = row._mapping
    duration_ms = m["audio_duration_ms"]
    return SessionRecord(
        session_id=m["id"],
        caller_id=m["caller_id"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        outcome=m["outcome"],
        config_json=m["config"],
        source_languages=_split(m["source_languages"]),
        target_languages=_split(m["target_languages"]),
        recognizer=m["recognizer"],
        translator=m["translator"],
        incomplete_reason=m["incomplete_reason"],
        audio_duration_s=None if duration_ms is None else duration_ms / 1000,
        audio_stored=bool(m["audio_stored"]),
        utterance_count=int(m["utterance_count"]),
        utterances=utterances,
    )


def _utterances(
    u_rows: Sequence[Row[Any]], t_rows: Sequence[Row[Any]], s_rows: Sequence[Row[Any]] = ()
) -> tuple[UtteranceRecord, ...]:
    spoken = {(s.utterance_id, s.language_code): _speech(s) for s in s_rows}
    by_utterance: dict[int, list[Any]] = {}
    for t in t_rows:
        by_utterance.setdefault(t.utterance_id, []).append(t)
    out = []
    for u in u_rows:
        order = _split(u.target_languages)
        found = sorted(
            by_utterance.get(u.utterance_id, []),
            key=lambda t: order.index(t.language_code) if t.language_code in order else len(order),
        )
        out.append(
            UtteranceRecord(
                utterance_id=u.utterance_id,
                text=u.text,
                language_code=u.language_code,
                confidence=u.confidence,
                start_s=u.start_ms / 1000,
                end_s=u.end_ms / 1000,
                final_at=u.final_at,
                translations=tuple(
                    TranslationRecord(
                        t.language_code,
                        t.text,
                        t.failed,
                        t.failure_message,
                        spoken.get((u.utterance_id, t.language_code)),
                    )
                    for t in found
                ),
            )
        )
    return tuple(out)


def _speech(row: Row[Any]) -> SpeechRecord:
    return SpeechRecord(
        voice=row.voice,
        encoding=row.encoding,
        sample_rate_hz=row.sample_rate_hz,
        audio_bytes=row.audio_bytes,
        chunks=row.chunks,
        duration_s=None if row.duration_ms is None else row.duration_ms / 1000,
        first_audio_after_final_s=None
        if row.first_audio_after_final_ms is None
        else row.first_audio_after_final_ms / 1000,
    )
