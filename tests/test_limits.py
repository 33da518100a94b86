"""Per-caller limits, the idle timeout and the maximum stream duration, each shown on a real server."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.conftest import stub_for
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.speech import Speech
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.auth.api_keys import hash_key, new_key


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def write_keys(path: Path, **lines: tuple[str, str]) -> Path:
    """id=(key, extra fields)."""
    path.write_text("".join(f"{i} {hash_key(k)} interpret,translate {extra}\n" for i, (k, extra) in lines.items()))
    return path


def hold_open(stub, metadata) -> tuple[Any, threading.Event]:
    """An Interpret stream that sends its config and silence until released."""
    release = threading.Event()

    def requests() -> Iterator[pb.InterpretRequest]:
        yield config()
        while not release.wait(0.1):
            yield pb.InterpretRequest(audio=b"\x00" * 3200)

    call = stub.Interpret(requests(), timeout=60, metadata=metadata)
    responses = iter(call)
    assert next(responses).WhichOneof("event") == "session_started"
    return call, release


def refused(stub, metadata) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        events_of(stub.Interpret(iter([config()]), timeout=30, metadata=metadata))
    return info.value


def test_concurrent_streams_per_caller_with_a_per_key_override(server_factory, tmp_path) -> None:
    small, big = new_key(), new_key()
    path = write_keys(tmp_path / "keys.txt", small=(small, ""), big=(big, "streams=2"))
    server = server_factory(api_keys=str(path), caller_max_streams=1, offline_streams_per_worker=4)
    channel, stub = stub_for(server)
    with channel:
        call, release = hold_open(stub, bearer(small))
        error = refused(stub, bearer(small))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "key:small has 1 streams open, its limit of 1 concurrent streams" in str(error.details())
        # Another caller is not affected, and its key allows two.
        big_calls = [hold_open(stub, bearer(big)) for _ in range(2)]
        assert "limit of 2 concurrent" in str(refused(stub, bearer(big)).details())
        for c, r in [(call, release), *big_calls]:
            r.set()
            list(c)
        # The slot is free again once the stream has ended.
        assert of_kind(
            events_of(stub.Interpret(iter([config()]), timeout=30, metadata=bearer(small))), "session_started"
        )


def test_a_stream_counts_from_its_first_byte_and_ends_without_a_first_message(server_factory, tmp_path) -> None:
    # Issue 24: a stream that never sent its first message was neither timed out nor counted: a key limited
    # to 2 streams held 200. Now it holds one of the caller's opening places (as many as its streams) and
    # waits --first-message-timeout for that message.
    key = new_key()
    path = write_keys(tmp_path / "keys.txt", crm=(key, "streams=2"))
    server = server_factory(api_keys=str(path), first_message_timeout_s=1.5)
    channel, stub = stub_for(server)
    release = threading.Event()

    def nothing() -> Iterator[pb.InterpretRequest]:
        release.wait(30)
        return
        yield  # a generator that sends nothing until released

    with channel:
        start = time.monotonic()
        calls = [stub.Interpret(nothing(), timeout=30, metadata=bearer(key)) for _ in range(5)]
        outcomes = sorted((call.code().name, str(call.details())) for call in calls)
        took_s = time.monotonic() - start
        release.set()
        assert [code for code, _ in outcomes] == ["OUT_OF_RANGE"] * 2 + ["RESOURCE_EXHAUSTED"] * 3, outcomes
        assert "key:crm has 2 streams open that have not sent their first message, its limit of 2" in outcomes[2][1]
        assert "no first message arrived within 1.5 s of the stream opening" in outcomes[0][1]
        assert took_s < 20
        # The places are free again, and a stream that says what it is goes on as usual.
        assert of_kind(events_of(stub.Interpret(iter([config()]), timeout=30, metadata=bearer(key))), "session_started")


def test_a_caller_at_its_limit_can_still_resume_its_session(server_factory, tmp_path) -> None:
    # Why opening places are not the concurrent count: this caller's one session holds its one slot while
    # detached, and the resume is known to be one only once its first message is read.
    key = new_key()
    server = server_factory(api_keys=str(write_keys(tmp_path / "keys.txt", crm=(key, "streams=1"))))
    channel, stub = stub_for(server)
    request = config(interim=False)
    request.config.resumption.enabled = True
    stop = threading.Event()

    def config_then_wait() -> Iterator[pb.InterpretRequest]:
        yield request
        stop.wait(30)

    with channel:
        call = stub.Interpret(config_then_wait(), timeout=30, metadata=bearer(key))
        token = next(call).session_started.resume_token
        call.cancel()  # the network breaks; the session waits, holding the caller's one slot
        stop.set()
        assert "limit of 1 concurrent streams" in str(refused(stub, bearer(key)).details())
        resume = pb.InterpretRequest(resume=pb.ResumeRequest(resume_token=token, last_sequence_number=1))
        events = events_of(
            stub.Interpret(iter([resume, pb.InterpretRequest(end=pb.EndOfAudio())]), timeout=30, metadata=bearer(key))
        )
    assert of_kind(events, "session_resumed")


def test_new_streams_per_minute(server_factory, tmp_path) -> None:
    key = new_key()
    server = server_factory(api_keys=str(write_keys(tmp_path / "k", crm=(key, "per_minute=2"))))
    channel, stub = stub_for(server)
    with channel:
        for _ in range(2):
            events_of(stub.Interpret(iter([config()]), timeout=30, metadata=bearer(key)))
        error = refused(stub, bearer(key))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "opened 2 streams in the last minute, its limit of 2 new streams per minute; retry in" in str(
        error.details()
    )


def test_audio_per_day_ends_the_stream_after_the_sentence_and_refuses_the_next(
    server_factory, tmp_path, speech: Speech
) -> None:
    key = new_key()
    # 0.001 h = 3.6 s of audio a day; the speech is about 14 s.
    server = server_factory(api_keys=str(write_keys(tmp_path / "k", crm=(key, "hours_per_day=0.001"))))
    channel, stub = stub_for(server)
    with channel:
        with pytest.raises(grpc.RpcError) as ended:
            events = []
            for response in stub.Interpret(
                itertools.chain([config()], audio_requests(speech.pcm(), 3200)), timeout=60, metadata=bearer(key)
            ):
                events.append((response.WhichOneof("event"), response))
        assert ended.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "its limit of 0.001 h per day; the window resets in" in str(ended.value.details())
        # What was said before the limit is not lost: the first sentence came through.
        finals = [e.final_transcript for k, e in events if k == "final_transcript"]
        assert finals and finals[0].audio_end_offset.seconds < 5
        assert "0.001 h per day" in str(refused(stub, bearer(key)).details())


def test_the_anonymous_caller_is_not_limited(server_factory) -> None:
    # Limits of one stream, one a minute: three anonymous streams at once are each served to their end,
    # and none is counted (one bucket for everyone would be a limit for everyone).
    from tongyeok_server.auth.caller import ANONYMOUS

    server = server_factory(caller_max_streams=1, caller_streams_per_minute=1, offline_streams_per_worker=4)
    channel, stub = stub_for(server)
    with channel:
        held = [hold_open(stub, None) for _ in range(3)]
        assert server.servicer.interpret.open_streams == 3
        assert server.security.limits.open_streams(ANONYMOUS) == 0
        for call, release in held:
            release.set()
            list(call)
        assert [call.code() for call, _ in held] == [grpc.StatusCode.OK] * 3


def test_an_idle_stream_ends_with_out_of_range_and_frees_its_slot(server_factory) -> None:
    server = server_factory(idle_timeout_s=0.6, offline_workers=1, offline_streams_per_worker=1)
    channel, stub = stub_for(server)
    stop = threading.Event()

    def config_then_nothing() -> Iterator[pb.InterpretRequest]:
        yield config()
        stop.wait(30)  # a client that went quiet without closing

    with channel:
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as idle:
            list(stub.Interpret(config_then_nothing(), timeout=30))
        stop.set()
        assert idle.value.code() == grpc.StatusCode.OUT_OF_RANGE
        assert "no audio arrived for 0.6 s (--idle-timeout)" in str(idle.value.details())
        assert time.monotonic() - start < 20
        # The one offline slot is free for the next caller.
        assert of_kind(events_of(stub.Interpret(iter([config()]), timeout=30)), "session_started")


def test_a_stream_that_keeps_sending_is_not_idle(server_factory, speech: Speech) -> None:
    # A chunk every 0.3 s for six times the 0.6 s timeout: a timeout counted from the stream's start, or from
    # anything but the last chunk, would end it OUT_OF_RANGE; it must end OK when the caller ends it.
    server = server_factory(idle_timeout_s=0.6)
    channel, stub = stub_for(server)
    with channel:
        start = time.monotonic()
        call = stub.Interpret(itertools.chain([config()], audio_requests(speech.pcm()[: 12 * 3200], 3200, 0.3)))
        events = events_of(call)
        lasted_s = time.monotonic() - start
    assert call.code() == grpc.StatusCode.OK, call.details()
    assert of_kind(events, "session_started") and lasted_s >= 6 * 0.6


def test_the_maximum_duration_finishes_the_sentence_then_ends_with_out_of_range(server_factory, speech: Speech) -> None:
    server = server_factory(max_stream_duration_s=4.0)
    channel, stub = stub_for(server)
    events = []
    with channel, pytest.raises(grpc.RpcError) as ended:
        for response in stub.Interpret(
            itertools.chain([config()], audio_requests(speech.pcm(), 3200, pace_s=0.1)), timeout=60
        ):
            events.append(response.WhichOneof("event"))
    assert ended.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert "maximum duration of 4 s (--max-stream-duration)" in str(ended.value.details())
    assert "final_transcript" in events
    assert events[-1] in {"translation_complete", "final_transcript", "notice"}
