"""PostgreSQL stopped in the middle of a meeting: the meeting goes on, the caller is told, the record catches up."""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from tests.conftest import stub_for
from tests.support.calls import config, events_of, of_kind
from tests.support.metrics import free_port, scrape
from tests.support.records import row_counts
from tests.support.speech import Speech
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import transcripts_pb2 as tpb
from tongyeok_client.proto import transcripts_pb2_grpc as tpb_grpc

pytestmark = pytest.mark.speech

CHUNK = 3200  # 100 ms of 16 kHz mono


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_meeting_goes_on_while_postgres_is_down_and_its_record_is_whole(
    server_factory, postgres, speech: Speech
) -> None:
    server = server_factory(store=postgres.create_database(), metrics_port=free_port())
    record = server.record
    assert record is not None
    pcm = speech.pcm()
    cut1 = int((speech.sentence_end_s[1] + 0.4) * 16000) * 2  # after sentence 2 and part of its pause
    cut2 = int((speech.sentence_end_s[2] + 0.6) * 16000) * 2  # sentence 3 while the store is down
    phases: list[str] = []
    outage_s: list[float] = []

    def requests() -> Iterator[pb.InterpretRequest]:
        yield config()
        for start, end, then in [(0, cut1, "stop"), (cut1, cut2, "restart"), (cut2, len(pcm), "")]:
            for i in range(start, end, CHUNK):
                yield pb.InterpretRequest(audio=pcm[i : min(i + CHUNK, end)])
            if then == "stop":
                wait_for(lambda: record.writer.pending == 0)  # sentences 1-2 are stored
                postgres.stop()
                phases.append("stopped")
            elif then == "restart":
                wait_for(lambda: record.writer.down)  # sentence 3's final could not be written
                down_at = time.monotonic()
                postgres.start()
                phases.append("started")
                outage_s.append(time.monotonic() - down_at)
                wait_for(lambda: not record.writer.down and record.writer.pending == 0)

    channel, stub = stub_for(server)
    try:
        with channel:
            events = events_of(stub.Interpret(requests(), timeout=180))
            assert record.writer.wait_idle(30)
            name = "sessions/" + of_kind(events, "session_started")[0].session_id
            stored = tpb_grpc.TranscriptsStub(channel).GetSession(tpb.GetSessionRequest(name=name), timeout=30)  # type: ignore[no-untyped-call]
    finally:
        if phases == ["stopped"]:
            postgres.start()
    assert phases == ["stopped", "started"]
    # The meeting went on: every sentence recognised and translated, and the stream ended OK.
    finals = of_kind(events, "final_transcript")
    completes = of_kind(events, "translation_complete")
    assert len(finals) == len(speech.sentences) and len(completes) == len(finals)
    notices = [(n.code, n.message) for n in of_kind(events, "notice")]
    assert [code for code, _ in notices] == [pb.NOTICE_CODE_RECORD_INCOMPLETE, pb.NOTICE_CODE_RECORD_RESTORED]
    assert "unreachable" in notices[0][1] and "the meeting goes on" in notices[0][1]
    # ... and the record is complete: nothing lost, nothing twice.
    assert stored.record_state == tpb.RECORD_STATE_COMPLETE
    assert [(u.utterance_id, u.text) for u in stored.utterances] == [(f.utterance_id, f.text) for f in finals]
    by_id = {c.utterance_id: c.text for c in completes}
    assert [[t.text for t in u.translations] for u in stored.utterances] == [[by_id[f.utterance_id]] for f in finals]
    counts = row_counts(record.engine, stored.session_id)
    assert counts["utterances"] == len(finals) and counts["translations"] == len(finals) and counts["sessions"] == 1
    assert record.writer.stats.failures >= 1 and record.writer.stats.lost == 0
    # The metrics tell the operator the same: every write's lag, the held writes of the outage among them.
    m = scrape(server.observability.metrics_port)
    assert m.value("tongyeok_store_write_lag_seconds_count") == record.writer.stats.written
    # Sentence 3's final was held at least from the failed write until the store was back.
    assert m.value("tongyeok_store_write_lag_seconds_sum") >= outage_s[0] > 0
    assert m.value("tongyeok_store_write_errors_total", reason="unreachable") >= record.writer.stats.failures
    assert m.value("tongyeok_store_write_errors_total", reason="buffer_full") == 0


def test_a_store_that_cannot_be_reached_at_start_stops_the_server_with_a_reason(postgres) -> None:

    from tongyeok_server.app import TongyeokServer
    from tongyeok_server.errors import StartError
    from tongyeok_server.settings import Settings

    url = postgres.url("no_such_database")
    with pytest.raises(StartError) as info:
        TongyeokServer(Settings.of(store=url, port=0))
    message = str(info.value)
    assert "cannot open the meeting record" in message and "no_such_database" in message and "--store none" in message


def test_grpc_status_of_a_transcripts_call_while_the_store_is_down(server_factory, postgres) -> None:
    server = server_factory(store=postgres.create_database())
    channel, _ = stub_for(server)
    with channel:
        transcripts = tpb_grpc.TranscriptsStub(channel)  # type: ignore[no-untyped-call]
        assert list(transcripts.ListSessions(tpb.ListSessionsRequest(), timeout=30).sessions) == []
        postgres.stop()
        try:
            with pytest.raises(grpc.RpcError) as info:
                transcripts.ListSessions(tpb.ListSessionsRequest(), timeout=60)
        finally:
            postgres.start()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "cannot be reached right now" in (info.value.details() or "")
        assert list(transcripts.ListSessions(tpb.ListSessionsRequest(), timeout=30).sessions) == []
