"""The resume path under hostile numbers and tokens: every answer is a status, and the server keeps serving.

The server runs as a process of its own (``tongyeok-server`` on the fake
Speech-to-Text), so a request that wedges its event loop fails the test
with a health check that is not answered, instead of hanging the test run.
After every resume the health service must answer within a second.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.calls import config
from tests.support.fake_speech import FakeSpeech
from tests.support.servers import ServerProcess
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc

CHUNK = 3200  # 100 ms at 16 kHz


@pytest.fixture(scope="module")
def speech_fake() -> Iterator[FakeSpeech]:
    with FakeSpeech() as fake:
        yield fake


def engine_flags(speech_fake: FakeSpeech, secret: Path) -> list[str]:
    return [
        "--recognizer", "google", "--google-endpoint", speech_fake.address, "--google-insecure",
        "--google-project", "test-project", "--translator", "apertium", "--synthesizer", "none",
        "--store", "none", "--resume-window", "60", "--offline-workers", "1", "--grace-period", "2",
        "--resume-secret", str(secret),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def secret(tmp_path_factory) -> Path:
    """One resume secret for the servers of this module: a session may move from one to the other."""
    path: Path = tmp_path_factory.mktemp("resume") / "secret"
    path.write_bytes(base64.b64encode(os.urandom(32)))
    return path


@pytest.fixture(scope="module")
def server(speech_fake: FakeSpeech, secret: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(engine_flags(speech_fake, secret), name="resume-fuzz")
    try:
        yield process.wait_ready()
    finally:
        process.stop()
        process.remove_log()


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[pb_grpc.InterpreterStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]


def assert_healthy(server: ServerProcess) -> None:
    """The health service answers within a second: the server's event loop is free."""
    with grpc.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
        try:
            status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status
        except grpc.RpcError as error:
            pytest.fail(f"the health check was not answered ({error.code().name}): the server is wedged")
    assert status == health_pb2.HealthCheckResponse.SERVING


def resumable_config() -> pb.InterpretRequest:
    """English to Spanish, no interim results: a session produces no event until its first final."""
    request = config(interim=False)
    request.config.resumption.enabled = True
    return request


class OpenStream:
    """A resumable session whose caller sends silence until told to stop."""

    def __init__(self, stub: pb_grpc.InterpreterStub) -> None:
        self._stop = threading.Event()
        self.call = stub.Interpret(self._requests(), timeout=60)
        first = next(self.call)
        assert first.WhichOneof("event") == "session_started" and first.sequence_number == 1
        self.token = first.session_started.resume_token

    def _requests(self) -> Iterator[pb.InterpretRequest]:
        yield resumable_config()
        while not self._stop.wait(0.1):
            yield pb.InterpretRequest(audio=bytes(CHUNK))

    def break_(self) -> None:
        """The network breaks: the call is cancelled without `end`; the session waits for a resume."""
        self.call.cancel()
        self._stop.set()


def resume(stub: pb_grpc.InterpreterStub, token: str, last: int) -> tuple[Any, grpc.RpcError | None]:
    """A resume; its first answer (None if refused) and the status it was refused with (None if resumed)."""
    stop = threading.Event()

    def requests() -> Iterator[pb.InterpretRequest]:
        yield pb.InterpretRequest(resume=pb.ResumeRequest(resume_token=token, last_sequence_number=last))
        stop.wait(10)

    call = stub.Interpret(requests(), timeout=10)
    try:
        return next(call), None
    except grpc.RpcError as error:
        return None, error
    finally:
        call.cancel()
        stop.set()


def test_a_resume_from_0_before_the_first_event_answers_and_the_server_keeps_serving(stub, server) -> None:
    # Issue 24, bug 1: the stream breaks in the first seconds (no event yet: interim results off), and the
    # resume says it has received nothing. The server's loop spun in EventLog.read: nothing answered again.
    stream = OpenStream(stub)
    stream.break_()
    first, error = resume(stub, stream.token, 0)
    assert_healthy(server)
    assert error is None, error
    assert first.WhichOneof("event") == "session_resumed"
    assert first.session_resumed.next_sequence_number == 2  # session_started (1) is not sent again


# -- the fuzz ---------------------------------------------------------------------------------------

SEED = 2024_12_06
INT64 = 2**63 - 1


def numbers(rng: random.Random, around: int) -> list[int]:
    """Sequence numbers to try: the edges around ``around`` (a session's newest), extremes, and random ones."""
    edges = [0, 1, 2, around - 1, around, around + 1, -1, -(2**63), INT64, INT64 - 1]
    return [*edges, *(rng.choice([rng.randint(-5, around + 5), rng.randint(-INT64, INT64)]) for _ in range(12))]


def tokens(rng: random.Random, real: str) -> list[str]:
    """Tokens that are not tokens this deployment sealed: cut, altered, extended, random, another's, huge."""
    from tongyeok_server.session.resume_token import ResumeTokens, new_secret

    altered = [real[:i] + rng.choice("AB") + real[i + 1 :] for i in rng.sample(range(len(real)), 4)]
    return [
        "",
        real[: rng.randint(1, len(real) - 1)],
        real + "A",
        *(t for t in altered if t != real),
        base64.urlsafe_b64encode(rng.randbytes(rng.randint(1, 400))).decode(),
        "tyr1." + base64.urlsafe_b64encode(rng.randbytes(64)).decode(),
        ResumeTokens(new_secret()).seal({"k": "live", "sid": "s-1", "caller": "anonymous"}),  # another deployment
        "x" * 200_000,
    ]


def expected(state: str, last: int, k: int) -> str:
    """What a resume of a session in ``state`` after ``last`` must answer; ``k``: its newest number."""
    if state == "ended":
        return "NOT_FOUND"
    if last < 0 or last > k:
        return "INVALID_ARGUMENT"
    if state == "moved" and last < k:
        return "FAILED_PRECONDITION"  # the events before the move were the other server's
    return "session_resumed"


def outcome(stub: pb_grpc.InterpreterStub, token: str, last: int) -> tuple[str, Any]:
    first, error = resume(stub, token, last)
    if error is not None:
        return error.code().name, error.details()
    return first.WhichOneof("event"), first


def moving_token(server: ServerProcess, speech_fake: FakeSpeech, secret: Path) -> tuple[str, int]:
    """A session opened on another server that then shut down: its moving token and that token's number."""
    other = ServerProcess(engine_flags(speech_fake, secret), name="resume-fuzz-drained").wait_ready()
    try:
        with grpc.insecure_channel(other.address) as channel:
            stream = OpenStream(pb_grpc.InterpreterStub(channel))  # type: ignore[no-untyped-call]
            other.process.send_signal(signal.SIGTERM)  # a rolling update: the session hands over
            update = None
            with pytest.raises(grpc.RpcError) as ended:
                for response in stream.call:
                    if response.WhichOneof("event") == "resume_token_update":
                        update = response
            stream.break_()
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert update is not None
        return update.resume_token_update.resume_token, update.sequence_number
    finally:
        other.stop()
        other.remove_log()


def test_random_numbers_and_tokens_against_sessions_in_every_state_are_answered_and_change_nothing(
    stub, server, speech_fake, secret
) -> None:
    rng = random.Random(SEED)
    answers: list[tuple[str, str, int, str]] = []

    def attempt(state: str, token: str, last: int, k: int, want: str | None = None) -> Any:
        got, detail = outcome(stub, token, last)
        assert_healthy(server)
        answers.append((state, token[:20], last, got))
        expect = want or expected(state, last, k)
        assert got == expect, (SEED, state, last, k, got, detail)
        return detail

    # Fresh: a stream attached, nothing produced yet (interim results off). A resume that succeeds
    # supersedes that stream, so each success gets a new fresh session.
    fresh = OpenStream(stub)
    for last in numbers(rng, 1):
        if expected("fresh", last, 1) == "session_resumed":
            fresh.break_()
            fresh = OpenStream(stub)
        detail = attempt("fresh", fresh.token, last, 1)
        if detail is not None and not isinstance(detail, str):
            assert detail.session_resumed.next_sequence_number == max(last, 1) + 1
    # Detached: its stream broke. Every refusal leaves it waiting; every success detaches it again.
    detached = OpenStream(stub)
    detached.break_()
    for last in numbers(rng, 1):
        attempt("detached", detached.token, last, 1)
    for token in tokens(rng, detached.token):
        attempt("forged", token, rng.choice([0, 1]), 1, want="INVALID_ARGUMENT")
    # Moved: restored here from another server's moving token, first with numbers that must not restore it.
    moved, k = moving_token(server, speech_fake, secret)
    for last in [0, k - 1 if k > 1 else 0, k + 1, -1]:
        if last != k:
            attempt("moved", moved, last, k)
    restored = attempt("moved", moved, k, k)
    assert restored.session_resumed.moved
    for last in numbers(rng, k):
        attempt("moved", moved, last, k)
    for token in tokens(rng, moved):
        attempt("forged", token, k, k, want="INVALID_ARGUMENT")
    # Ended: the caller ended each session; its token is an old one, whatever the number.
    for token, last in ((detached.token, 1), (moved, k)):
        ending = pb.InterpretRequest(resume=pb.ResumeRequest(resume_token=token, last_sequence_number=last))
        ends = stub.Interpret(iter([ending, pb.InterpretRequest(end=pb.EndOfAudio())]), timeout=30)
        kinds = [r.WhichOneof("event") for r in ends]  # read to its end: the session's end is delivered
        assert kinds[0] == "session_resumed", kinds
        for number in numbers(rng, last)[:8]:
            attempt("ended", token, number, last)
    fresh.break_()
    seen = {got for _, _, _, got in answers}
    assert seen == {"session_resumed", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "NOT_FOUND"}, seen
