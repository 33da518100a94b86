"""The Transcripts service over a real port: a meeting through the embedded engines, then read, exported, deleted.

Runs on SQLite and on a real PostgreSQL. Callers are real API keys
(tests/support/callers.py): alice holds the meeting, bob is another caller,
carol may only interpret, the auditor has ``transcripts:admin``.
"""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import srt
import webvtt
from google.protobuf import json_format
from sqlalchemy import update

from tests.conftest import running_server
from tests.support.callers import Callers
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.records import BACKENDS, meeting_ops, row_counts, store_url
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_client.proto import transcripts_pb2 as tpb
from tongyeok_client.proto import transcripts_pb2_grpc as tpb_grpc
from tongyeok_server.store import schema
from tongyeok_server.store.database import write

pytestmark = pytest.mark.speech


class Meeting:
    """A server with the record on, and one meeting alice held on it."""

    def __init__(self, server: Any, channel: grpc.Channel, events: list[tuple[str, Any]], callers: Callers) -> None:
        self.server = server
        self.callers = callers
        self.alice, self.bob, self.admin = callers["alice"], callers["bob"], callers["auditor"]
        self.channel = channel
        self.interpreter = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
        self.transcripts = tpb_grpc.TranscriptsStub(channel)  # type: ignore[no-untyped-call]
        self.events = events
        (self.started,) = of_kind(events, "session_started")
        self.name = "sessions/" + self.started.session_id
        self.finals = of_kind(events, "final_transcript")
        self.translations = {c.utterance_id: c.text for c in of_kind(events, "translation_complete")}

    def interpret(self, request_config: pb.InterpretRequest, pcm: bytes) -> list[tuple[str, Any]]:
        requests = itertools.chain([request_config], audio_requests(pcm, 3200))
        events = events_of(self.interpreter.Interpret(requests, timeout=120, metadata=self.alice))
        assert self.server.record is not None and self.server.record.writer.wait_idle(30)
        return events

    def export(self, fmt: Any, **fields: Any) -> Any:
        return self.transcripts.ExportSession(
            tpb.ExportSessionRequest(name=self.name, format=fmt, **fields), metadata=self.alice, timeout=30
        )


@pytest.fixture(scope="module", params=BACKENDS)
def meeting(request, speech, tmp_path_factory):
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    callers = Callers(tmp_path_factory.mktemp("keys") / "keys.txt")
    alice = callers.add("alice")
    for name in ("bob", "dave"):
        callers.add(name)
    callers.add("carol", "interpret")
    callers.add("auditor", "transcripts", "transcripts:admin")
    with (
        store_url(request.param, postgres) as url,
        running_server(store=url, store_audio=True, api_keys=str(callers.path)) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
        requests = itertools.chain([config()], audio_requests(speech.pcm(), 3200))
        events = events_of(stub.Interpret(requests, timeout=120, metadata=alice))
        assert server.record is not None and server.record.writer.wait_idle(30)
        yield Meeting(server, channel, events, callers)


def code_of(call, *args, **kwargs) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, timeout=30, **kwargs)
    return info.value.code(), info.value.details() or ""


def seconds(duration) -> float:
    return float(duration.ToTimedelta().total_seconds())


def test_the_caller_is_told_the_record_is_kept(meeting: Meeting) -> None:
    assert meeting.started.transcript_stored
    assert meeting.started.effective_config.store_transcript
    assert len(meeting.finals) >= 3 and set(meeting.translations) == {f.utterance_id for f in meeting.finals}


def test_the_record_holds_every_final_and_translation_the_caller_got(meeting: Meeting) -> None:
    record = meeting.transcripts.GetSession(
        tpb.GetSessionRequest(name=meeting.name), metadata=meeting.alice, timeout=30
    )
    assert record.caller_id == "key:alice" and record.outcome == "ok"
    assert record.record_state == tpb.RECORD_STATE_COMPLETE
    assert record.recognizer.name == "pocketsphinx" and record.translator.name == "apertium"
    assert list(record.source_language_codes) == ["en-US"] and list(record.target_language_codes) == ["es"]
    assert record.config == meeting.started.effective_config
    assert record.audio_stored and abs(seconds(record.audio_duration) - 12.3) < 1.0
    assert [(u.utterance_id, u.text, u.language_code) for u in record.utterances] == [
        (f.utterance_id, f.text, f.language_code) for f in meeting.finals
    ]
    for u, f in zip(record.utterances, meeting.finals, strict=True):
        assert u.audio_start_offset == f.audio_start_offset and u.audio_end_offset == f.audio_end_offset
        assert abs(u.confidence - f.confidence) < 1e-6
        assert [(t.language_code, t.text) for t in u.translations] == [("es", meeting.translations[u.utterance_id])]
    basic = meeting.transcripts.GetSession(
        tpb.GetSessionRequest(name=meeting.name, view=tpb.SESSION_VIEW_BASIC), metadata=meeting.alice, timeout=30
    )
    assert not basic.utterances and basic.utterance_count == len(meeting.finals)


def test_srt_and_webvtt_cues_match_the_finals(meeting: Meeting) -> None:
    source = list(srt.parse(meeting.export(tpb.EXPORT_FORMAT_SRT).content))
    assert [c.content for c in source] == [f.text for f in meeting.finals]
    for cue, final in zip(source, meeting.finals, strict=True):
        assert cue.start.total_seconds() == pytest.approx(seconds(final.audio_start_offset), abs=0.001)
        assert cue.end.total_seconds() == pytest.approx(seconds(final.audio_end_offset), abs=0.001)
    spanish = list(srt.parse(meeting.export(tpb.EXPORT_FORMAT_SRT, language_code="es").content))
    assert [c.content for c in spanish] == [meeting.translations[f.utterance_id] for f in meeting.finals]
    out = meeting.export(tpb.EXPORT_FORMAT_WEBVTT, subtitle_text=tpb.SUBTITLE_TEXT_BOTH)
    assert out.media_type == "text/vtt" and out.file_name == meeting.started.session_id + ".vtt"
    captions = webvtt.from_buffer(io.StringIO(out.content)).captions
    assert [c.identifier for c in captions] == [str(f.utterance_id) for f in meeting.finals]
    for caption, final in zip(captions, meeting.finals, strict=True):
        assert caption.lines == [final.text, meeting.translations[final.utterance_id]]
        start = datetime.strptime(caption.start, "%H:%M:%S.%f") - datetime(1900, 1, 1)
        assert start.total_seconds() == pytest.approx(seconds(final.audio_start_offset), abs=0.001)


def test_markdown_and_text_hold_every_final_and_translation(meeting: Meeting) -> None:
    md = meeting.export(tpb.EXPORT_FORMAT_MARKDOWN).content
    txt = meeting.export(tpb.EXPORT_FORMAT_TEXT).content
    assert "| Time | Speaker | en-US | es |" in md and "| Spoken | en-US |" in md
    for final in meeting.finals:
        row = f"| {final.text} | {meeting.translations[final.utterance_id]} |"
        assert row in md, (row, md)
        assert f"en-US: {final.text}" in txt and f"es: {meeting.translations[final.utterance_id]}" in txt


def test_json_round_trips(meeting: Meeting) -> None:
    exported = meeting.export(tpb.EXPORT_FORMAT_JSON)
    parsed = json_format.Parse(exported.content, tpb.Session())
    assert parsed == meeting.transcripts.GetSession(tpb.GetSessionRequest(name=meeting.name), metadata=meeting.alice)
    assert json_format.Parse(json_format.MessageToJson(parsed), tpb.Session()) == parsed


def test_another_callers_session_is_not_found_and_an_admin_sees_all(meeting: Meeting) -> None:
    t = meeting.transcripts
    missing = "sessions/s20000101-000000-0000000000"
    for name in (meeting.name, missing):
        assert code_of(t.GetSession, tpb.GetSessionRequest(name=name), metadata=meeting.bob) == (
            grpc.StatusCode.NOT_FOUND,
            f"no meeting record {name} for this caller",
        )
        assert code_of(
            t.ExportSession, tpb.ExportSessionRequest(name=name, format=tpb.EXPORT_FORMAT_SRT), metadata=meeting.bob
        )[0] == (grpc.StatusCode.NOT_FOUND)
        assert code_of(t.DeleteSession, tpb.DeleteSessionRequest(name=name), metadata=meeting.bob)[0] == (
            grpc.StatusCode.NOT_FOUND
        )
    assert meeting.name not in [
        s.name for s in t.ListSessions(tpb.ListSessionsRequest(), metadata=meeting.bob).sessions
    ]
    assert meeting.name in [s.name for s in t.ListSessions(tpb.ListSessionsRequest(), metadata=meeting.alice).sessions]
    assert meeting.name in [s.name for s in t.ListSessions(tpb.ListSessionsRequest(), metadata=meeting.admin).sessions]
    assert t.GetSession(tpb.GetSessionRequest(name=meeting.name), metadata=meeting.admin).caller_id == "key:alice"


def test_every_rpc_needs_the_transcripts_scope(meeting: Meeting) -> None:
    interpreter_only = meeting.callers["carol"]
    t = meeting.transcripts
    for call, request in [
        (t.GetSession, tpb.GetSessionRequest(name=meeting.name)),
        (t.ListSessions, tpb.ListSessionsRequest()),
        (t.ExportSession, tpb.ExportSessionRequest(name=meeting.name, format=tpb.EXPORT_FORMAT_SRT)),
        (t.DeleteSession, tpb.DeleteSessionRequest(name=meeting.name)),
    ]:
        code, details = code_of(call, request, metadata=interpreter_only)
        assert code == grpc.StatusCode.PERMISSION_DENIED and "`transcripts`" in details, details


def test_listing_pages_with_tokens_that_cannot_be_forged(meeting: Meeting) -> None:
    writer = meeting.server.record.writer
    base = datetime.now(UTC) - timedelta(days=1)
    for i in range(5):
        targets = ("fr",) if i == 2 else ("es",)
        entry = writer.track(f"dave-{i}", lambda _e: None)
        for op in meeting_ops(f"dave-{i}", caller="key:dave", started_at=base + timedelta(minutes=i), targets=targets):
            writer.submit(entry, op)
    assert writer.wait_idle(30)
    t, dave = meeting.transcripts, meeting.callers["dave"]
    names, token, pages = [], "", 0
    while True:
        page = t.ListSessions(tpb.ListSessionsRequest(page_size=2, page_token=token), metadata=dave)
        names += [s.session_id for s in page.sessions]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert names == [f"dave-{i}" for i in (4, 3, 2, 1, 0)] and pages == 3
    first = t.ListSessions(tpb.ListSessionsRequest(page_size=2), metadata=dave)
    forged = first.next_page_token[:-2] + ("A" if first.next_page_token[-2] != "A" else "B") + first.next_page_token[-1]
    for request, words in [
        (tpb.ListSessionsRequest(page_token=forged), "not a token this server made"),
        (tpb.ListSessionsRequest(page_token="garbage!"), "not a token this server made"),
        (tpb.ListSessionsRequest(page_token=first.next_page_token, language_code="es"), "other filters"),
        (tpb.ListSessionsRequest(page_size=-1), "page_size is -1"),
        (tpb.ListSessionsRequest(language_code="e s"), "not a BCP-47"),
    ]:
        code, details = code_of(t.ListSessions, request, metadata=dave)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and words in details, details
    code, _ = code_of(t.ListSessions, tpb.ListSessionsRequest(page_token=first.next_page_token), metadata=meeting.alice)
    assert code == grpc.StatusCode.INVALID_ARGUMENT  # a token is bound to its caller too
    french = t.ListSessions(tpb.ListSessionsRequest(language_code="fr"), metadata=dave)
    assert [s.session_id for s in french.sessions] == ["dave-2"]
    window = tpb.ListSessionsRequest()
    window.start_time_after.FromDatetime(base + timedelta(minutes=1))
    window.start_time_before.FromDatetime(base + timedelta(minutes=3))
    assert [s.session_id for s in t.ListSessions(window, metadata=dave).sessions] == ["dave-2", "dave-1"]


def test_bad_names_and_formats_are_explained(meeting: Meeting) -> None:
    t = meeting.transcripts
    code, details = code_of(
        t.GetSession, tpb.GetSessionRequest(name=meeting.started.session_id), metadata=meeting.alice
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "expected sessions/{session_id}" in details
    code, details = code_of(t.ExportSession, tpb.ExportSessionRequest(name=meeting.name), metadata=meeting.alice)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "EXPORT_FORMAT_UNSPECIFIED" in details
    code, details = code_of(
        t.ExportSession,
        tpb.ExportSessionRequest(name=meeting.name, format=tpb.EXPORT_FORMAT_SRT, language_code="--"),
        metadata=meeting.alice,
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "language_code" in details


def test_listing_times_a_timestamp_cannot_hold_are_invalid_argument_naming_the_field(meeting: Meeting) -> None:
    # Issue 24: an out-of-range Timestamp was UNKNOWN with a traceback (protobuf's ValueError).
    from google.protobuf.timestamp_pb2 import Timestamp

    t = meeting.transcripts
    cases = {
        "start_time_after": Timestamp(seconds=253_402_300_800),  # 10000-01-01
        "start_time_before": Timestamp(seconds=-62_135_596_801),  # before 0001-01-01
    }
    for field, stamp in [*cases.items(), ("start_time_after", Timestamp(seconds=0, nanos=-1))]:
        request = tpb.ListSessionsRequest()
        getattr(request, field).CopyFrom(stamp)
        code, details = code_of(t.ListSessions, request, metadata=meeting.alice)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert details.startswith(f"{field} is ") and "not a time a Timestamp may hold" in details
    # The extremes a Timestamp may hold are times like any other: every session is in between.
    widest = tpb.ListSessionsRequest(
        start_time_after=Timestamp(seconds=-62_135_596_800), start_time_before=Timestamp(seconds=253_402_300_799)
    )
    listed = t.ListSessions(widest, metadata=meeting.alice, timeout=30).sessions
    assert meeting.name in [s.name for s in listed]


def test_a_session_that_asked_for_no_record_leaves_none(meeting: Meeting, speech) -> None:
    request = config()
    request.config.store_transcript = False
    events = meeting.interpret(request, speech.pcm()[: 16000 * 2 * 3])
    (started,) = of_kind(events, "session_started")
    assert not started.transcript_stored and not started.effective_config.store_transcript
    code, _ = code_of(
        meeting.transcripts.GetSession,
        tpb.GetSessionRequest(name="sessions/" + started.session_id),
        metadata=meeting.alice,
    )
    assert code == grpc.StatusCode.NOT_FOUND
    assert set(row_counts(meeting.server.record.engine, started.session_id).values()) == {0}


def test_deletion_removes_everything_of_the_session_audio_included(meeting: Meeting, speech) -> None:
    events = meeting.interpret(config(), speech.pcm()[: 16000 * 2 * 7])
    name = "sessions/" + of_kind(events, "session_started")[0].session_id
    session_id = name.removeprefix("sessions/")
    engine = meeting.server.record.engine
    before = row_counts(engine, session_id)
    assert before["utterances"] >= 1 and before["translations"] >= 1 and before["audio_blocks"] == 2  # 7 s, 5 s blocks
    meeting.transcripts.DeleteSession(tpb.DeleteSessionRequest(name=name), metadata=meeting.alice, timeout=30)
    assert set(row_counts(engine, session_id).values()) == {0}
    code, _ = code_of(meeting.transcripts.GetSession, tpb.GetSessionRequest(name=name), metadata=meeting.alice)
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = code_of(meeting.transcripts.DeleteSession, tpb.DeleteSessionRequest(name=name), metadata=meeting.alice)
    assert code == grpc.StatusCode.NOT_FOUND


def test_retention_purges_expired_sessions_whole(meeting: Meeting, speech) -> None:
    events = meeting.interpret(config(), speech.pcm()[: 16000 * 2 * 6])
    session_id = of_kind(events, "session_started")[0].session_id
    record = meeting.server.record
    assert row_counts(record.engine, session_id)["audio_blocks"] == 2
    days = meeting.server.settings.store.retention_days
    assert record.purge_expired() == 0
    # Make it a meeting of a day past the retention period.
    past = datetime.now(UTC) - timedelta(days=days, hours=1)
    with write(record.engine) as conn:
        conn.execute(
            update(schema.sessions).where(schema.sessions.c.id == session_id).values(started_at=past, ended_at=past)
        )
    assert record.purge_expired() == 1
    assert set(row_counts(record.engine, session_id).values()) == {0}
    assert row_counts(record.engine, meeting.started.session_id)["utterances"] == len(meeting.finals)


def test_a_server_without_a_store_says_so(server_factory, speech) -> None:
    server = server_factory(store="none")
    assert server.record is None
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        request = config()
        request.config.store_transcript = True
        requests = itertools.chain([request], audio_requests(speech.pcm()[:32000], 3200))
        events = events_of(pb_grpc.InterpreterStub(channel).Interpret(requests, timeout=60))  # type: ignore[no-untyped-call]
        (started,) = of_kind(events, "session_started")
        assert not started.transcript_stored
        assert "store_transcript: this server keeps no meeting records (--store none)" in started.ignored_options
        t = tpb_grpc.TranscriptsStub(channel)  # type: ignore[no-untyped-call]
        code, details = code_of(t.ListSessions, tpb.ListSessionsRequest())
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "--store none" in details
