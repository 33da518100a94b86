"""The record writer against a real PostgreSQL that goes down, comes back, or is slow.

The session side is a list that collects what the writer would emit to the
caller; the meeting through the whole server is in test_store_outage.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest

from tests.support.records import T0, meeting_ops, open_record, row_counts
from tongyeok_server.session import events as ev
from tongyeok_server.store import ops, queries
from tongyeok_server.store.database import open_engine
from tongyeok_server.store.records import RecordState
from tongyeok_server.store.writer import RecordWriter


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def notices(emitted: list[ev.SessionEvent]) -> list[ev.Notice]:
    return [e for e in emitted if isinstance(e, ev.Notice)]


def notice_codes(emitted: list[ev.SessionEvent]) -> list[ev.NoticeCode]:
    return [e.code for e in notices(emitted)]


@pytest.fixture
def pg_store(postgres):
    """A fresh database; the tests that stop the server start it again in their ``finally``."""
    return postgres.create_database()


def test_an_outage_is_told_and_the_record_catches_up_without_loss_or_duplicates(postgres, pg_store) -> None:
    writes = meeting_ops("s1", utterances=6)
    before, during = writes[:5], writes[5:]
    emitted: list[ev.SessionEvent] = []
    with open_record(pg_store) as record:
        writer = record.writer
        entry = writer.track("s1", emitted.append)
        for op in before:
            writer.submit(entry, op)
        assert writer.wait_idle(30)
        postgres.stop()
        try:
            for op in during:
                writer.submit(entry, op)
            wait_for(lambda: writer.down)
            assert notice_codes(emitted) == [ev.NoticeCode.RECORD_INCOMPLETE]
            assert "unreachable" in notices(emitted)[0].message and "catches up" in notices(emitted)[0].message
            # A session that starts while the store is down is told at once.
            late: list[ev.SessionEvent] = []
            writer.track("s2", late.append)
            assert notice_codes(late) == [ev.NoticeCode.RECORD_INCOMPLETE]
        finally:
            postgres.start()
        assert writer.wait_idle(60)
        assert not writer.down
        assert notice_codes(emitted) == [ev.NoticeCode.RECORD_INCOMPLETE, ev.NoticeCode.RECORD_RESTORED]
        assert writer.stats.lost == 0 and writer.stats.failures >= 1
        got = queries.get_session(record.engine, "s1", None)
        counts = row_counts(record.engine, "s1")
    assert got is not None and got.state is RecordState.COMPLETE
    assert [u.utterance_id for u in got.utterances] == [1, 2, 3, 4, 5, 6]
    assert counts["utterances"] == 6 and counts["translations"] == 6


def test_a_full_buffer_loses_events_says_so_and_marks_the_record(postgres, pg_store) -> None:
    emitted: list[ev.SessionEvent] = []
    with open_record(pg_store, buffer=4) as record:
        writer = record.writer
        entry = writer.track("s1", emitted.append)
        writes = meeting_ops("s1", utterances=5)  # start, 5 x (final, translation, speech), end
        writer.submit(entry, writes[0])
        assert writer.wait_idle(30)
        postgres.stop()
        try:
            for op in writes[1:]:
                writer.submit(entry, op)
            assert writer.stats.lost == 11  # 4 held; the rest dropped; the end and the mark are never dropped
            wait_for(lambda: writer.down)
        finally:
            postgres.start()
        assert writer.wait_idle(60)
        got = queries.get_session(record.engine, "s1", None)
    # Told once, that the record is incomplete for good; never that it was restored.
    assert notice_codes(emitted) == [ev.NoticeCode.RECORD_INCOMPLETE], emitted
    assert "incomplete" in notices(emitted)[0].message and "lost" in notices(emitted)[0].message
    assert got is not None and got.state is RecordState.INCOMPLETE and "lost" in got.incomplete_reason
    assert got.ended_at is not None  # the end was kept
    assert [u.utterance_id for u in got.utterances] == [1, 2]


def test_a_slow_store_is_told_and_restored(postgres, pg_store) -> None:
    with open_record(pg_store) as record:
        writer = RecordWriter(open_engine(record.url), capacity=100, lag_notice_s=0.5)
        emitted: list[ev.SessionEvent] = []
        entry = writer.track("s1", emitted.append)
        writes = meeting_ops("s1", utterances=3)
        writer.submit(entry, writes[0])
        assert writer.wait_idle(30)
        locked = threading.Event()
        release = threading.Event()

        def hold_lock() -> None:
            # Another client holds the table: the writer's INSERT waits, as on an overloaded database.
            with psycopg.connect(
                host="127.0.0.1", port=postgres.port, user="tongyeok", dbname=record.url.database
            ) as c:
                c.execute("LOCK TABLE utterances IN ACCESS EXCLUSIVE MODE")
                locked.set()
                release.wait(60)

        holder = threading.Thread(target=hold_lock)
        holder.start()
        try:
            assert locked.wait(30)
            for op in writes[1:4]:
                writer.submit(entry, op)
                time.sleep(0.4)
            assert notice_codes(emitted) == [ev.NoticeCode.RECORD_INCOMPLETE]
            assert "behind" in notices(emitted)[0].message
        finally:
            release.set()
            holder.join()
        for op in writes[4:]:
            writer.submit(entry, op)
        assert writer.wait_idle(30)
        writer.close(5)
        assert notice_codes(emitted) == [ev.NoticeCode.RECORD_INCOMPLETE, ev.NoticeCode.RECORD_RESTORED]
        assert row_counts(record.engine, "s1")["utterances"] == 3


def test_writes_of_a_session_deleted_while_it_runs_are_dropped_not_retried(postgres, pg_store) -> None:
    with open_record(pg_store) as record:
        writer = record.writer
        entry = writer.track("s1", lambda _e: None)
        writes = meeting_ops("s1", utterances=2)
        for op in writes[:3]:
            writer.submit(entry, op)
        assert writer.wait_idle(30)
        assert queries.delete_session(record.engine, "s1", None)
        # Another process deleted it: this writer still submits; the database refuses (foreign key), once.
        writer.submit(entry, ops.AddUtterance("s1", 9, "late", "en-US", 0.5, 0, 1, T0 + timedelta(seconds=1), ("es",)))
        assert writer.wait_idle(30)
        assert writer.stats.dropped_invalid == 1 and not writer.down
        writer.forget("s1")  # this process deleted it: nothing more is even queued
        writer.submit(entry, writes[-1])
        assert writer.pending == 0
        assert set(row_counts(record.engine, "s1").values()) == {0}
