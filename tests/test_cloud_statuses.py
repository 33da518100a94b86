"""What callers are told, and what the log says, when the cloud engines fail (issue 15).

Over the wire, with the real client libraries: the gRPC server, the real
``SpeechAsyncClient`` transport over TLS to the fake Speech-to-Text (so that
gRPC runs the real credential plugin and sends the token), real
``google.oauth2.credentials.Credentials`` (a user's, as ``gcloud auth
application-default login`` leaves them) refreshing against a fake OAuth 2.0
token endpoint, and the real openai client against the fake OpenAI server.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import google.oauth2.credentials
import grpc
import pytest

from tests.conftest import stub_for
from tests.support import fake_speech, server_loop
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.certs import local_certificates
from tests.support.fake_oauth import FakeTokenEndpoint
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_speech import FakeSpeech, word_for_id
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.app import TongyeokServer
from tongyeok_server.recognition.google_call import StreamPolicy
from tongyeok_server.recognition.google_engine import GoogleRecognizer
from tongyeok_server.settings import Settings

PROJECT = "acme-prod-4711"
PROJECT_NUMBER = "123456789012"
QUOTA_MESSAGE = (
    "Quota exceeded for quota metric 'Streaming recognize requests' and limit 'Streaming recognize requests per "
    f"minute per region' of service 'speech.googleapis.com' for consumer 'project_number:{PROJECT_NUMBER}'."
)
# Small back-offs: the tests check the policy's shape, not its timings.
FAST = StreamPolicy(backoff_initial_s=0.02, backoff_max_s=0.05, quota_backoff_initial_s=0.05, quota_backoff_max_s=0.1)
# An address (host:port, or a bare IPv4 address) anywhere in a text.
ADDRESS = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b[\w.-]+:\d{2,5}\b|\[[0-9a-f:]+\]:\d+", re.IGNORECASE)


def words(utterances: list[list[int]]) -> list[str]:
    return [word_for_id(w)[0] for u in utterances for w in u]


def script(n: int, per: int = 4) -> list[list[int]]:
    return [[i * per + j + 1 for j in range(per)] for i in range(n)]


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tls") / "ca.pem"
    path.write_bytes(local_certificates().ca_pem)
    return path


@pytest.fixture
def tokens() -> Iterator[FakeTokenEndpoint]:
    with FakeTokenEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def tls_speech(tokens: FakeTokenEndpoint) -> Iterator[FakeSpeech]:
    certs = local_certificates()
    with FakeSpeech(
        server_credentials=grpc.ssl_server_credentials([(certs.server_key_pem, certs.server_cert_pem)]),
        accept_token=lambda token: token in tokens.issued,
    ) as fake:
        yield fake


def user_credentials(tokens: FakeTokenEndpoint) -> google.oauth2.credentials.Credentials:
    """What ``gcloud auth application-default login`` leaves, pointed at the fake token endpoint; no token yet."""
    credentials: google.oauth2.credentials.Credentials = tokens.user_credentials()
    return credentials


def secure_recognizer(speech: FakeSpeech, ca_file: Path, tokens: FakeTokenEndpoint) -> GoogleRecognizer:
    settings = Settings.of(
        recognizer="google", google_endpoint=speech.address, google_project=PROJECT, google_ca_file=str(ca_file)
    )
    return GoogleRecognizer(settings.recognition, settings.google, FAST, credentials=user_credentials(tokens))


@pytest.fixture
def start_server(
    server_factory: Callable[..., TongyeokServer], openai_fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., TongyeokServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-statuses-key")

    def start(recognizer: GoogleRecognizer, **settings: Any) -> TongyeokServer:
        return server_factory(
            recognizer=recognizer,
            translator="openai",
            openai_base_url=openai_fake.base_url,
            openai_max_retries=1,
            **settings,
        )

    return start


def insecure_recognizer(speech: FakeSpeech, policy: StreamPolicy = FAST) -> GoogleRecognizer:
    settings = Settings.of(
        recognizer="google", google_endpoint=speech.address, google_insecure=True, google_project=PROJECT
    )
    return GoogleRecognizer(settings.recognition, settings.google, policy)


class Outcome:
    """One Interpret call: its events, how it ended, and how long it took."""

    def __init__(self, server: TongyeokServer, utterances: list[list[int]], **config_kw: Any) -> None:
        def requests() -> Iterator[pb.InterpretRequest]:
            yield config(interim=False, **config_kw)
            yield from audio_requests(fake_speech.synthesize(utterances), 3200)

        channel, stub = stub_for(server)
        self.responses: list[pb.InterpretResponse] = []
        self.code = grpc.StatusCode.OK
        self.details = ""
        start = time.monotonic()
        with channel:
            try:
                for response in stub.Interpret(requests(), timeout=60):
                    self.responses.append(response)
            except grpc.RpcError as error:
                self.code, self.details = error.code(), error.details() or ""
        self.elapsed_s = time.monotonic() - start
        self.events = events_of(self.responses)

    def of(self, kind: str) -> list[Any]:
        return of_kind(self.events, kind)

    def notices(self, code: int) -> list[pb.Notice]:
        return [n for n in self.of("notice") if n.code == code]

    @property
    def heard(self) -> list[str]:
        return [w for f in self.of("final_transcript") for w in f.text.split()]

    @property
    def session_id(self) -> str:
        (started,) = self.of("session_started")
        return str(started.session_id)

    def caller_texts(self) -> list[str]:
        """Everything a caller reads: notices, resets, the engines' descriptions and the status."""
        texts = [n.message for n in self.of("notice")] + [r.reason for r in self.of("translation_reset")]
        for started in self.of("session_started"):
            texts += [started.recognizer.detail, started.translator.detail]
        return [*texts, self.details]


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.exc_info or r.name.startswith("grpc")]


LOG_LINE = re.compile(r"^\S+ \S+ (?P<level>[A-Z]+) (?P<logger>\S+): (?P<message>.*)$")


def serve_and_log(speech: FakeSpeech, openai_fake: FakeOpenAI, utterances: list[list[int]], level: str) -> list[str]:
    """Run ``tongyeok-server`` as operators do, one session through it, SIGTERM; its stderr's lines."""
    flags = f"--host 127.0.0.1 --port 0 --log-level {level} --recognizer google --google-insecure"
    flags += f" --google-endpoint {speech.address} --google-project {PROJECT}"
    flags += f" --translator openai --openai-base-url {openai_fake.base_url}"
    process = subprocess.Popen(
        [sys.executable, "-m", "tongyeok_server", *flags.split()],
        env={**os.environ, "OPENAI_API_KEY": "sk-test-log-key"},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        port = 0
        while not port:
            line = process.stderr.readline()
            assert line, f"the server exited: {lines}"
            lines.append(line.rstrip("\n"))
            found = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else 0
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
            requests = [config(interim=False), *audio_requests(fake_speech.synthesize(utterances), 16000)]
            events = events_of(stub.Interpret(iter(requests), timeout=120))
        assert len(of_kind(events, "translation_complete")) == len(utterances)
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=60)
        lines += rest.splitlines()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return lines


# -- a refused credential ----------------------------------------------------------


def test_a_valid_user_credential_reaches_google_with_its_token(
    start_server: Callable[..., TongyeokServer], tls_speech: FakeSpeech, tokens: FakeTokenEndpoint, ca_file: Path
) -> None:
    """The path the refusal tests rely on: TLS, the real plugin, the token on the wire, one refresh for all."""
    server = start_server(secure_recognizer(tls_speech, ca_file, tokens))
    utterances = script(2)
    outcomes = [Outcome(server, utterances) for _ in range(2)]
    for outcome in outcomes:
        assert outcome.code is grpc.StatusCode.OK, outcome.details
        assert outcome.heard == words(utterances)
    assert {s.authorization for s in tls_speech.streams} == {"Bearer ya29.fake-1"}
    assert len(tokens.requests) == 1  # renewed once, for both streams


def test_expired_user_credential_is_unauthenticated_at_once(
    start_server: Callable[..., TongyeokServer],
    tls_speech: FakeSpeech,
    tokens: FakeTokenEndpoint,
    ca_file: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    tokens.revoke()
    server = start_server(secure_recognizer(tls_speech, ca_file, tokens))
    with caplog.at_level(logging.INFO):
        outcome = Outcome(server, script(2))

    assert outcome.code is grpc.StatusCode.UNAUTHENTICATED, outcome.details
    assert outcome.elapsed_s < 1.0
    # What the operator must fix, and not the token endpoint's answer.
    assert "invalid_grant" in outcome.details
    assert "gcloud auth application-default login" in outcome.details
    assert "GOOGLE_APPLICATION_CREDENTIALS" in outcome.details
    assert "Token has been expired" not in outcome.details and "error_description" not in outcome.details
    # No retry: no notice, one question to the token endpoint, no call to Google.
    assert outcome.of("notice") == []
    assert len(tokens.requests) == 1
    assert tls_speech.streams == []
    # No traceback; one WARNING with the session and the token endpoint's summary.
    assert tracebacks(caplog) == []
    assert "Traceback" not in capfd.readouterr().err
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"session {outcome.session_id}: ")
    assert "invalid_grant: Token has been expired or revoked." in warnings[0]


def test_credential_revoked_while_a_token_is_fetched_by_grpc_is_still_unauthenticated(
    start_server: Callable[..., TongyeokServer],
    tls_speech: FakeSpeech,
    tokens: FakeTokenEndpoint,
    ca_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The engine renews the credential, but gRPC's plugin renews it again and is refused: no traceback either.

    Tokens that live less than google-auth's refresh margin are renewed at
    every call, by the engine and then by the plugin; the endpoint grants the
    engine's renewal and refuses the plugin's.
    """
    tokens.expires_in = 60
    tokens.revoke_after(1)
    server = start_server(secure_recognizer(tls_speech, ca_file, tokens))
    with caplog.at_level(logging.INFO):
        outcome = Outcome(server, script(2))

    assert outcome.code is grpc.StatusCode.UNAUTHENTICATED, outcome.details
    assert "invalid_grant" in outcome.details
    assert "Token has been expired" not in outcome.details
    assert outcome.of("notice") == []
    assert len(tokens.requests) == 3  # engine (granted), plugin (refused), engine (refused)
    assert tls_speech.streams == []  # the plugin failed before the call went out
    assert tracebacks(caplog) == []


def test_unreachable_token_endpoint_is_retried_and_no_word_is_lost(
    start_server: Callable[..., TongyeokServer], tls_speech: FakeSpeech, tokens: FakeTokenEndpoint, ca_file: Path
) -> None:
    tokens.hang_up(times=2)
    server = start_server(secure_recognizer(tls_speech, ca_file, tokens))
    utterances = script(3)
    outcome = Outcome(server, utterances)

    assert outcome.code is grpc.StatusCode.OK, outcome.details
    assert outcome.heard == words(utterances)
    retrying = outcome.notices(pb.NOTICE_CODE_RECOGNIZER_RETRYING)
    assert len(retrying) == 2
    assert all("could not renew its Google Cloud credential" in n.message for n in retrying)
    assert len(tokens.requests) == 3


# -- Google's quota ----------------------------------------------------------------


def test_quota_mid_stream_is_retried_with_a_notice_and_no_word_lost(
    start_server: Callable[..., TongyeokServer], openai_fake: FakeOpenAI
) -> None:
    utterances = script(8)
    with FakeSpeech() as speech:
        speech.fail_once(grpc.StatusCode.RESOURCE_EXHAUSTED, after_audio_s=6.0, message=QUOTA_MESSAGE)
        outcome = Outcome(start_server(insecure_recognizer(speech)), utterances)
        statuses = [s.status for s in speech.streams]

    assert outcome.code is grpc.StatusCode.OK, outcome.details
    assert outcome.heard == words(utterances)  # every word, once, in order
    assert statuses == [grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.OK]
    (retrying,) = outcome.notices(pb.NOTICE_CODE_RECOGNIZER_RETRYING)
    assert "quota" in retrying.message and "RESOURCE_EXHAUSTED" in retrying.message
    assert "no audio is lost" in retrying.message
    assert PROJECT_NUMBER not in retrying.message


def test_quota_that_does_not_lift_ends_the_stream_saying_it_is_the_recognisers(
    start_server: Callable[..., TongyeokServer], caplog: pytest.LogCaptureFixture
) -> None:
    with FakeSpeech() as speech:
        speech.fail_once(grpc.StatusCode.RESOURCE_EXHAUSTED, times=100, message=QUOTA_MESSAGE)
        with caplog.at_level(logging.INFO):
            outcome = Outcome(start_server(insecure_recognizer(speech)), script(2))
        calls = len(speech.streams)

    assert outcome.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "Google Cloud quota" in outcome.details and "not this server's capacity" in outcome.details
    assert f"after {FAST.max_retries} retries" in outcome.details
    assert PROJECT_NUMBER not in outcome.details
    assert len(outcome.notices(pb.NOTICE_CODE_RECOGNIZER_RETRYING)) == FAST.max_retries
    assert calls == FAST.max_retries + 1
    # Google's words, project number included, are in the log: once per failed call, with the session.
    logged = [r.getMessage() for r in caplog.records if PROJECT_NUMBER in r.getMessage()]
    assert len(logged) == calls
    assert all(line.startswith(f"session {outcome.session_id}: ") for line in logged)
    assert all(r.levelno == logging.WARNING for r in caplog.records if PROJECT_NUMBER in r.getMessage())


# -- the shutdown's grace ------------------------------------------------------------


def test_stream_google_does_not_finalise_within_the_grace_gets_the_shutdown_message(
    start_server: Callable[..., TongyeokServer],
) -> None:
    with FakeSpeech(finalise_delay_s=30) as speech:
        server = start_server(insecure_recognizer(speech), grace_period_s=0.5)
        sending = threading.Event()

        def requests() -> Iterator[pb.InterpretRequest]:
            yield config(interim=False)
            yield from audio_requests(fake_speech.synthesize(script(1)), 3200)
            sending.set()
            while True:  # a live microphone: silence, until the server ends the stream
                time.sleep(0.05)
                yield pb.InterpretRequest(audio=bytes(3200))

        channel, stub = stub_for(server)
        with channel:
            call = stub.Interpret(requests(), timeout=30)
            assert next(call).WhichOneof("event") == "session_started"
            assert sending.wait(10)
            stopper = threading.Thread(target=server_loop.stop, args=(server,))  # stop() is a coroutine on its loop
            stopper.start()
            with pytest.raises(grpc.RpcError) as info:
                for _ in call:
                    pass
            stopper.join(10)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
    details = info.value.details() or ""
    assert details.startswith("the server is shutting down"), details
    assert "reconnect" in details
    assert "Cancelling all calls" not in details


# -- what callers see of the inside --------------------------------------------------


def test_no_notice_or_status_names_an_address_or_the_project(
    start_server: Callable[..., TongyeokServer], openai_fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    """Failures whose upstream words carry addresses and project ids: the caller gets causes, the log the rest."""
    first = script(1)
    openai_fake.fail(500, times=None, match=" ".join(words(first)), message="backend 10.20.30.40:8000 exploded")
    openai_fake.cut(after_chunks=1, match=" ".join(words(script(2)[1:])))
    outcomes: list[Outcome] = []
    with FakeSpeech() as speech, caplog.at_level(logging.INFO):
        server = start_server(insecure_recognizer(speech))
        # Quota (project number), a dropped connection (an address), a cut translation, a failed one.
        speech.fail_once(grpc.StatusCode.RESOURCE_EXHAUSTED, after_audio_s=2.5, message=QUOTA_MESSAGE)
        speech.fail_once(
            grpc.StatusCode.UNAVAILABLE,
            after_audio_s=4.0,
            message="failed to connect to all addresses; last error: UNKNOWN: ipv4:10.1.2.3:443: Connection refused",
        )
        outcomes.append(Outcome(server, script(6)))
        # Statuses that end streams, in Google's words with the project in them.
        for code, message in [
            (
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission 'speech.recognizers.recognize' denied on resource "
                f"'//speech.googleapis.com/projects/{PROJECT}/locations/global/recognizers/_' (or it may not exist).",
            ),
            (grpc.StatusCode.NOT_FOUND, f"Unable to find Recognizer projects/{PROJECT}/locations/global/recognizers/_"),
            (grpc.StatusCode.INVALID_ARGUMENT, f"Invalid recognizer projects/{PROJECT}/locations/global/recognizers/_"),
        ]:
            speech.clear_faults()
            speech.refuse_all(code, message)
            outcomes.append(Outcome(server, script(1)))

    meeting = outcomes[0]
    assert meeting.code is grpc.StatusCode.OK, meeting.details
    assert meeting.heard == words(script(6))
    assert len(meeting.notices(pb.NOTICE_CODE_RECOGNIZER_RETRYING)) == 2
    assert len(meeting.notices(pb.NOTICE_CODE_TRANSLATION_FAILED)) == 1
    assert len(meeting.of("translation_reset")) == 1
    assert [o.code for o in outcomes[1:]] == [
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
    ]
    for outcome in outcomes:
        for text in outcome.caller_texts():
            assert not ADDRESS.search(text), text
            assert PROJECT not in text and PROJECT_NUMBER not in text, text
    # The cause stays: the status name, what failed, what to do.
    assert "PERMISSION_DENIED" in outcomes[1].details and "GOOGLE_APPLICATION_CREDENTIALS" in outcomes[1].details
    assert "--google-recognizer" in outcomes[2].details
    assert "en-US" in outcomes[3].details
    # And the log has the inside, at WARNING, with the session id.
    log = [(r.levelno, r.getMessage()) for r in caplog.records]
    for needle, session in [
        (PROJECT_NUMBER, meeting.session_id),
        ("10.1.2.3:443", meeting.session_id),
        ("10.20.30.40:8000", meeting.session_id),
        (f"127.0.0.1:{openai_fake.port}", meeting.session_id),
        (f"projects/{PROJECT}/", outcomes[1].session_id),
    ]:
        lines = [m for level, m in log if needle in m and level >= logging.WARNING]
        assert any(m.startswith(f"session {session}: ") for m in lines), (needle, lines)
        assert all(m.startswith("session ") for m in lines), (needle, lines)


# -- the log's volume ------------------------------------------------------------------


def test_info_log_of_a_100_sentence_session_has_no_per_request_line(openai_fake: FakeOpenAI) -> None:
    utterances = script(100, per=3)
    with FakeSpeech() as speech:
        lines = serve_and_log(speech, openai_fake, utterances, "INFO")
    assert len(openai_fake.requests) == 100  # a hundred HTTP requests were made...
    parsed = [LOG_LINE.match(line) for line in lines]
    assert all(parsed), lines
    loggers = {m.group("logger") for m in parsed if m}
    # ...and none of them, nor any other library's routine work, is in the log.
    assert all(name.startswith("tongyeok_server") for name in loggers), loggers
    messages = [m.group("message") for m in parsed if m]
    assert len([m for m in messages if re.match(r"session \S+ start", m)]) == 1
    assert len([m for m in messages if re.match(r"session \S+ end", m)]) == 1
    assert len(lines) <= 10, lines  # start-up, one line per session start and end, shutdown


def test_debug_log_has_the_libraries_lines(openai_fake: FakeOpenAI) -> None:
    """The rule is a level, not a mute: an operator who asks for DEBUG sees each translation's HTTP request."""
    with FakeSpeech() as speech:
        lines = serve_and_log(speech, openai_fake, script(2, per=3), "DEBUG")
    requests = [
        line
        for line in lines
        if re.search(
            r" DEBUG tongyeok_server\.translation\.openai_http: HTTP Request: POST http\S+/chat/completions 200$", line
        )
    ]
    assert len(requests) == 2, requests
