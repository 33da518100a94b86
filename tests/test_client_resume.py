"""The client's reconnect logic, step by step, against a scripted server (grpcio-testing).

The test plays the server's side of each call on ``grpc_testing``'s channel:
what the client sends first (config, then ``resume`` with the token and the
last event number), which audio it resends after ``session_resumed``, which
events it yields (none twice), when it gives up. No sockets, no timers: the
client's backoff sleeps are recorded instead of slept.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import grpc_testing
import pytest

from tongyeok_client import FinalTranscript, Reconnecting, SessionResumed, SessionStarted, TongyeokError, config
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_client.resume import ResumingStream

METHOD = pb.DESCRIPTOR.services_by_name["Interpreter"].methods_by_name["Interpret"]
CHUNK = 3200


class Script:
    """The client side in a thread; the test drives the server side."""

    def __init__(self, chunks: list[bytes], release: threading.Event | None = None) -> None:
        self.channel = grpc_testing.channel(
            [pb.DESCRIPTOR.services_by_name["Interpreter"]], grpc_testing.strict_real_time()
        )
        stub = pb_grpc.InterpreterStub(self.channel)  # type: ignore[no-untyped-call]
        self.sleeps: list[float] = []

        def audio() -> Iterator[bytes]:
            yield from chunks[:2]
            if release is not None:
                release.wait(10)
            yield from chunks[2:]

        self.stream = ResumingStream(
            lambda requests, wait: stub.Interpret(requests),  # grpc_testing's calls take no wait_for_ready
            config(source="en-US", target="es"),
            audio(),
            sleep=self.sleeps.append,
        )
        self.events: list[Any] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for event in self.stream.events():
                self.events.append(event)
        except BaseException as e:
            self.error = e
        finally:
            self.done.set()

    def seen(self, n: int) -> None:
        """Wait until the client has yielded ``n`` events (grpc_testing ends a call at once, queue or not)."""
        deadline = time.monotonic() + 10
        while len(self.events) < n and not self.done.is_set():
            assert time.monotonic() < deadline, self.events
            time.sleep(0.005)

    def next_call(self) -> Any:
        _metadata, rpc = self.channel.take_stream_stream(METHOD)
        return rpc


def started(token: str = "tyr1.token", window_s: int = 60) -> pb.InterpretResponse:
    response = pb.InterpretResponse(sequence_number=1)
    response.session_started.session_id = "s1"
    response.session_started.resume_token = token
    response.session_started.resume_window.seconds = window_s
    return response


def final(seq: int, uid: int, text: str) -> pb.InterpretResponse:
    response = pb.InterpretResponse(sequence_number=seq)
    response.final_transcript.utterance_id = uid
    response.final_transcript.text = text
    return response


def chunks(n: int) -> list[bytes]:
    return [bytes([i]) * CHUNK for i in range(n)]


def test_reconnects_with_the_token_resends_unacknowledged_audio_and_skips_events_seen() -> None:
    audio = chunks(6)
    release = threading.Event()
    script = Script(audio, release)
    rpc = script.next_call()
    first = rpc.take_request()
    assert first.WhichOneof("request") == "config" and first.config.resumption.enabled
    assert [rpc.take_request().audio for _ in range(2)] == audio[:2]
    rpc.send_response(started())
    rpc.send_response(final(2, 1, "good morning"))
    # The server has taken the first chunk for good: the client may forget it.
    rpc.send_response(pb.InterpretResponse(audio_acknowledged=pb.AudioAcknowledged(acknowledged_bytes=CHUNK)))
    rpc.send_response(final(3, 2, "thank you"))
    script.seen(3)
    rpc.terminate((), grpc.StatusCode.UNAVAILABLE, "Socket closed")

    rpc = script.next_call()
    first = rpc.take_request()
    assert first.WhichOneof("request") == "resume"
    assert (first.resume.resume_token, first.resume.last_sequence_number) == ("tyr1.token", 3)
    resumed = pb.InterpretResponse()
    resumed.session_resumed.session_id = "s1"
    resumed.session_resumed.resend_from_byte = CHUNK  # the server had only the first chunk
    rpc.send_response(resumed)
    release.set()
    resent = [rpc.take_request().audio for _ in range(5)]
    assert resent == audio[1:]  # from byte 3200: the second chunk again, then the rest
    assert rpc.take_request().WhichOneof("request") == "end"
    rpc.send_response(final(3, 2, "thank you"))  # sent again by the server: skipped
    rpc.send_response(final(4, 3, "see you"))
    script.seen(6)
    rpc.terminate((), grpc.StatusCode.OK, "")
    assert script.done.wait(10)
    assert script.error is None
    kinds = [type(e) for e in script.events]
    assert kinds == [SessionStarted, FinalTranscript, FinalTranscript, Reconnecting, SessionResumed, FinalTranscript]
    assert [e.text for e in script.events if isinstance(e, FinalTranscript)] == ["good morning", "thank you", "see you"]
    assert len(script.sleeps) == 1 and 0.2 <= script.sleeps[0] <= 0.3  # 0.25 s +-20 % (tongyeok_client.backoff)


def test_backoff_grows_and_a_moving_token_replaces_the_old_one() -> None:
    script = Script(chunks(2))
    rpc = script.next_call()
    rpc.take_request()
    rpc.send_response(started("tyr1.old"))
    moving = pb.InterpretResponse(sequence_number=2)
    moving.resume_token_update.resume_token = "tyr1.moving"
    rpc.send_response(moving)
    script.seen(1)
    time.sleep(0.05)  # the token update is taken, not yielded
    rpc.terminate((), grpc.StatusCode.UNAVAILABLE, "the server is shutting down")
    for _ in range(3):  # the next server is not up yet
        rpc = script.next_call()
        request = rpc.take_request()
        assert request.resume.resume_token == "tyr1.moving"
        assert request.resume.last_sequence_number == 2
        rpc.terminate((), grpc.StatusCode.UNAVAILABLE, "connection refused")
    rpc = script.next_call()
    rpc.take_request()
    rpc.terminate((), grpc.StatusCode.OK, "")
    assert script.done.wait(10)
    bases = [min(4.0, 0.25 * 2**i) for i in range(len(script.sleeps))]
    for slept, base in zip(script.sleeps, bases, strict=True):
        assert base * 0.8 <= slept <= base * 1.2
    assert [e.attempt for e in script.events if isinstance(e, Reconnecting)] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT]
)
def test_an_answer_a_retry_cannot_change_ends_the_stream(code: grpc.StatusCode) -> None:
    script = Script(chunks(1))
    rpc = script.next_call()
    rpc.take_request()
    rpc.send_response(started())
    script.seen(1)
    rpc.terminate((), grpc.StatusCode.UNAVAILABLE, "reset")
    rpc = script.next_call()
    rpc.take_request()
    rpc.terminate((), code, "no such session")
    assert script.done.wait(10)
    assert isinstance(script.error, grpc.RpcError) and script.error.code() == code
    assert len([e for e in script.events if isinstance(e, Reconnecting)]) == 1


def test_gives_up_after_the_resume_window() -> None:
    script = Script(chunks(1))
    script.stream.window_s = 0.0  # (set before the first answer, which would set it again)
    rpc = script.next_call()
    rpc.take_request()
    rpc.send_response(started(window_s=0))
    script.seen(1)
    rpc.terminate((), grpc.StatusCode.UNAVAILABLE, "reset")
    rpc = script.next_call()
    rpc.take_request()
    rpc.terminate((), grpc.StatusCode.UNAVAILABLE, "still down")
    assert script.done.wait(10)
    assert isinstance(script.error, TongyeokError)
    assert "could not be restored within the session's resume window" in script.error.details


def test_without_resume_a_break_is_an_error() -> None:
    channel = grpc_testing.channel([pb.DESCRIPTOR.services_by_name["Interpreter"]], grpc_testing.strict_real_time())
    stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
    stream = ResumingStream(
        lambda r, wait: stub.Interpret(r), config(source="en-US", target="es"), iter([]), resume=False
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            list(stream.events())
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    _metadata, rpc = channel.take_stream_stream(METHOD)
    assert not rpc.take_request().config.resumption.enabled
    rpc.send_response(started(token=""))
    time.sleep(0.2)
    rpc.terminate((), grpc.StatusCode.UNAVAILABLE, "reset")
    thread.join(10)
    assert isinstance(errors[0], grpc.RpcError) and errors[0].code() == grpc.StatusCode.UNAVAILABLE
