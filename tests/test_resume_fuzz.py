"""The resume path under hostile numbers and tokens: every answer is a status, and the server keeps serving.

The server runs as a process of its own (``tongyeok-server`` on the fake
Speech-to-Text), so a request that wedges its event loop fails the test
with a health check that is not answered, instead of hanging the test run.
After every resume the health service must answer within a second.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
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


@pytest.fixture(scope="module")
def server(speech_fake: FakeSpeech) -> Iterator[ServerProcess]:
    flags = [
        "--recognizer", "google", "--google-endpoint", speech_fake.address, "--google-insecure",
        "--google-project", "test-project", "--translator", "apertium", "--synthesizer", "none",
        "--store", "none", "--resume-window", "60", "--offline-workers", "1", "--grace-period", "2",
    ]  # fmt: skip
    process = ServerProcess(flags, name="resume-fuzz")
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
