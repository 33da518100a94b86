"""The record store on SQLite and on a real PostgreSQL: writes, reads, paging, deletion, retention, migrations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from tests.support.records import BACKENDS, T0, meeting_ops, open_record, row_counts, store_url
from tongyeok_server.store import migrate, ops, queries, schema
from tongyeok_server.store.database import StoreUrlError, database_url, open_engine, write
from tongyeok_server.store.records import RecordState


@pytest.fixture(params=BACKENDS)
def store(request):
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    with store_url(request.param, postgres) as url:
        yield url


def apply(record, batch) -> None:
    with write(record.engine) as conn:
        ops.apply(conn, batch)


def test_a_meeting_reads_back_whole_and_in_order(store) -> None:
    with open_record(store) as record:
        apply(record, meeting_ops("s1", sources=("en-US", "ko-KR"), targets=("ko-KR", "en-US"), utterances=4))
        got = queries.get_session(record.engine, "s1", None)
    assert got is not None
    assert got.state is RecordState.COMPLETE and got.outcome == "ok"
    assert got.started_at == T0 and got.duration_s == 300
    assert [u.utterance_id for u in got.utterances] == [1, 2, 3, 4]
    assert [u.language_code for u in got.utterances] == ["en-US", "ko-KR", "en-US", "ko-KR"]
    # Two-way: each sentence is translated into the other language only.
    assert [[t.language_code for t in u.translations] for u in got.utterances] == [["ko-KR"], ["en-US"]] * 2
    assert got.utterances[1].start_s == 4.0 and got.utterances[1].end_s == 5.5
    assert got.utterance_count == 4 and got.audio_duration_s == 300


def test_writes_applied_twice_store_nothing_twice(store) -> None:
    batch = meeting_ops("s1", utterances=3)
    with open_record(store) as record:
        apply(record, batch)
        apply(record, batch)  # e.g. a COMMIT whose answer was lost, retried
        apply(record, batch[:4])
        counts = row_counts(record.engine, "s1")
    assert counts == {
        "sessions": 1,
        "session_languages": 2,
        "utterances": 3,
        "translations": 3,
        "audio_blocks": 0,
        "speech": 3,
    }


def test_a_session_of_another_caller_is_invisible(store) -> None:
    with open_record(store) as record:
        apply(record, meeting_ops("s1", caller="alice"))
        assert queries.get_session(record.engine, "s1", "alice") is not None
        assert queries.get_session(record.engine, "s1", "bob") is None
        assert queries.get_session(record.engine, "s1", None) is not None  # admin
        assert not queries.delete_session(record.engine, "s1", "bob")
        assert queries.get_session(record.engine, "s1", "alice") is not None
        assert queries.delete_session(record.engine, "s1", "alice")
        assert queries.get_session(record.engine, "s1", None) is None


def test_listing_is_newest_first_filtered_and_paged(store) -> None:
    with open_record(store) as record:
        for i in range(7):
            langs = ("es",) if i % 2 else ("fr",)
            apply(record, meeting_ops(f"s{i}", caller="alice", started_at=T0 + timedelta(hours=i), targets=langs))
        # Two sessions in the same microsecond: the id breaks the tie, so paging neither skips nor repeats.
        apply(record, meeting_ops("t-a", caller="alice", started_at=T0 + timedelta(hours=3)))
        apply(record, meeting_ops("bob1", caller="bob", started_at=T0))
        engine = record.engine
        everything = queries.list_sessions(engine, "alice", queries.SessionFilter(), None, 100)
        assert [s.session_id for s in everything] == ["s6", "s5", "s4", "t-a", "s3", "s2", "s1", "s0"]
        assert all(s.utterances == () and s.utterance_count == 3 for s in everything)
        paged, after = [], None
        while True:
            page = queries.list_sessions(engine, "alice", queries.SessionFilter(), after, 3)
            paged += [s.session_id for s in page]
            if len(page) < 3:
                break
            after = queries.PagePosition(page[-1].started_at, page[-1].session_id)
        assert paged == [s.session_id for s in everything]
        window = queries.SessionFilter(T0 + timedelta(hours=2), T0 + timedelta(hours=5))
        assert [s.session_id for s in queries.list_sessions(engine, "alice", window, None, 100)] == [
            "s4",
            "t-a",
            "s3",
            "s2",
        ]
        spanish = queries.list_sessions(engine, "alice", queries.SessionFilter(language_code="es"), None, 100)
        assert [s.session_id for s in spanish] == ["s5", "t-a", "s3", "s1"]
        us = queries.list_sessions(engine, "alice", queries.SessionFilter(language_code="en-US"), None, 100)
        assert len(us) == 8
        assert queries.list_sessions(engine, "alice", queries.SessionFilter(language_code="en-GB"), None, 100) == []
        assert len(queries.list_sessions(engine, None, queries.SessionFilter(), None, 100)) == 9


def test_deletion_and_retention_remove_every_row(store) -> None:
    with open_record(store, retention_days=30) as record:
        apply(record, meeting_ops("old", started_at=T0 - timedelta(days=40)))
        apply(record, meeting_ops("open-old", started_at=T0 - timedelta(days=40), ended=False))
        apply(record, meeting_ops("recent", started_at=T0 - timedelta(days=10)))
        apply(record, [ops.AddAudio("old", 0, 0, b"\x00\x01" * 100), ops.AddAudio("recent", 0, 0, b"\x02" * 10)])
        assert row_counts(record.engine, "old")["audio_blocks"] == 1
        assert record.purge_expired(now=T0) == 2
        assert set(row_counts(record.engine, "old").values()) == {0}
        assert set(row_counts(record.engine, "open-old").values()) == {0}
        assert row_counts(record.engine, "recent")["audio_blocks"] == 1
        assert queries.delete_session(record.engine, "recent", None)
        assert set(row_counts(record.engine, "recent").values()) == {0}


def test_migrating_a_first_revision_database_keeps_its_rows(store) -> None:
    url = database_url(store, "/nonexistent")
    assert url is not None
    migrate.upgrade(url, "0001")
    engine = open_engine(url)
    with engine.begin() as conn:  # rows as the first release wrote them (its schema, not today's)
        conn.execute(
            text(
                "INSERT INTO sessions (id, caller_id, started_at, ended_at, outcome, config, source_languages, "
                "target_languages, recognizer, translator, audio_duration_ms, incomplete_reason) VALUES "
                "('s-old', 'key:a', :t, :t, 'ok', '{}', 'en-US', 'es', 'pocketsphinx', 'apertium', 1500, '')"
            ),
            {"t": T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0},
        )
        conn.execute(text("INSERT INTO session_languages VALUES ('s-old', 'en-US', 'en'), ('s-old', 'es', 'es')"))
        conn.execute(
            text("INSERT INTO utterances VALUES ('s-old', 1, 'Good morning.', 'en-US', 0.8, 100, 1400, :t, 'es')"),
            {"t": T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0},
        )
        conn.execute(
            text("INSERT INTO translations VALUES ('s-old', 1, 'es', 'en-US', 'Buenos días.', false, '', :t)"),
            {"t": T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0},
        )
    engine.dispose()
    with open_record(store) as record:  # the server's start migrates to the newest revision
        assert migrate.current(url) == migrate.head()
        got = queries.get_session(record.engine, "s-old", "key:a")
    assert got is not None and got.started_at == T0 and not got.audio_stored
    assert [(u.text, u.translations[0].text) for u in got.utterances] == [("Good morning.", "Buenos días.")]
    assert got.state is RecordState.COMPLETE


def test_the_migrations_build_exactly_the_schema_the_code_uses(store) -> None:
    with open_record(store) as record, record.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), schema.metadata)
    assert diff == []


def test_store_urls_are_checked_and_passwords_refused(tmp_path) -> None:
    assert database_url("none", str(tmp_path)) is None
    sqlite = database_url("sqlite", str(tmp_path))
    assert sqlite is not None and sqlite.database == str(tmp_path / "tongyeok.db")
    pg = database_url("postgresql://rec@db.internal:5433/meetings", str(tmp_path))
    assert pg is not None and pg.drivername == "postgresql+psycopg"
    for bad, words in [
        ("postgresql://rec:hunter2@db/meetings", "PGPASSWORD"),
        ("mysql://x@y/z", "supported are sqlite and postgresql"),
        ("sqlite://", "needs a file"),
        ("not a url", "not a database URL"),
    ]:
        with pytest.raises(StoreUrlError, match=words) as info:
            database_url(bad, str(tmp_path))
        assert "hunter2" not in str(info.value)


def _write_from_a_process(store: str, prefix: str, sessions: int) -> None:
    """One server process's share: its own engine, migration at start and writer on the shared file."""
    with open_record(store) as record:
        for i in range(sessions):
            entry = record.writer.track(f"{prefix}{i}", lambda _e: None)
            for op in meeting_ops(f"{prefix}{i}", utterances=5):
                record.writer.submit(entry, op)
        assert record.writer.wait_idle(60)
        assert record.writer.stats.lost == 0


def test_several_processes_share_one_sqlite_file(tmp_path) -> None:
    import multiprocessing

    store = f"sqlite:///{tmp_path}/shared.db"  # as --processes N with the default store: one file, N writers
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_from_a_process, args=(store, f"p{n}-", 40)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with open_record(store) as record:
        listed = queries.list_sessions(record.engine, None, queries.SessionFilter(), None, 1000)
        assert len(listed) == 120 and {s.utterance_count for s in listed} == {5}
        assert all(s.state is RecordState.COMPLETE for s in listed)
