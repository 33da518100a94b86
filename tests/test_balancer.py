"""Behind a real balancer: nginx (deploy/nginx's directives) in front of two ``tongyeok-server`` processes.

Each server has a fake Google recogniser of its own (so its records show
which server heard what) and they share a fake OpenAI; streams are faster
than real time and deterministic. Shown here:

- streams spread over both servers, and the two servers' metrics add up to
  what the callers saw;
- an hour-long stream is not cut by the balancer (its body size, Google's
  stream renewals), while nginx's defaults cut it (the control); a pause
  longer than a short timeout survives the deploy config and not the control;
- a server SIGTERMed during 20 streams: its streams that did not ask for
  resumption finish their sentence and end as documented (UNAVAILABLE
  "... shutting down ... reconnect"); those that did (the Python client)
  move to the other server and go on with every sentence once; new streams
  go to the other server, and the other server's streams are untouched.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support import fake_speech
from tests.support.calls import audio_requests, config
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_speech import FakeSpeech, Timing, word_for_id
from tests.support.nginx import Nginx
from tests.support.servers import ServerProcess
from tests.test_resume import Meeting, sentence
from tongyeok_client import SessionResumed, SessionStarted
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc

RATE = 16000
BYTES_PER_S = RATE * 2
DEFAULT_TIMING = Timing()


@dataclass
class Cluster:
    """Two servers (each on its own fake recogniser) behind nginx."""

    fakes: list[FakeSpeech]
    openai: FakeOpenAI
    servers: list[ServerProcess]
    nginx: Nginx

    def metrics_total(self, name: str, **labels: str) -> float:
        return sum(server.metrics().value(name, **labels) for server in self.servers)


@contextlib.contextmanager
def cluster(grace_s: float = 10.0) -> Iterator[Cluster]:
    with (
        tempfile.TemporaryDirectory(prefix="tongyeok-balancer-") as tmp,
        FakeOpenAI() as openai,
        FakeSpeech() as fake_a,
        FakeSpeech() as fake_b,
    ):
        secret = Path(tmp) / "resume-secret"  # shared, so that a session can move between them
        secret.write_bytes(base64.b64encode(os.urandom(32)))
        servers = [  # both start at once; their start-ups overlap
            ServerProcess(
                _server_args(fake, openai, grace_s, secret), {"OPENAI_API_KEY": "sk-test-balancer"}, name=name
            )
            for fake, name in ((fake_a, "a"), (fake_b, "b"))
        ]
        try:
            for server in servers:
                server.wait_ready()
            with Nginx([s.port for s in servers]) as nginx:
                yield Cluster([fake_a, fake_b], openai, servers, nginx)
        finally:
            for server in servers:
                server.stop(grace_s + 5)
                server.remove_log()


def _server_args(fake: FakeSpeech, openai: FakeOpenAI, grace_s: float, secret: Path) -> list[str]:
    return [
        "--recognizer", "google", "--google-endpoint", fake.address, "--google-insecure",
        "--google-project", "test-project", "--translator", "openai", "--openai-base-url", openai.base_url,
        "--synthesizer", "none", "--store", "none", "--grace-period", str(grace_s),
        "--resume-secret", str(secret), "--advertise-address", "127.0.0.1:{port}",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def shared_cluster() -> Iterator[Cluster]:
    with cluster() as c:
        yield c


# -- streams ---------------------------------------------------------------------------


@dataclass
class StreamResult:
    """What one caller saw."""

    utterances: list[list[int]]
    session_id: str = ""
    finals: list[str] = field(default_factory=list)
    final_ends_s: list[float] = field(default_factory=list)
    interims: int = 0
    completes: int = 0
    notices: list[int] = field(default_factory=list)
    code: grpc.StatusCode | None = None
    details: str = ""
    audio_bytes: int = 0

    @property
    def sent_texts(self) -> list[str]:
        return [" ".join(word_for_id(w)[0] for w in u) for u in self.utterances]


def run_stream(
    address: str,
    utterances: list[list[int]],
    *,
    speed: float = 0.0,
    rate: int = RATE,
    chunk_bytes: int = 3200,
    timing: Timing = DEFAULT_TIMING,
    pause_after_s: tuple[float, float] | None = None,
    targets: Sequence[str] = ("ko",),
    timeout_s: float = 120.0,
) -> StreamResult:
    """One Interpret stream through ``address``; ``speed`` x real time (0: as fast as it goes).

    ``pause_after_s`` = (t, d): after t seconds of audio, send nothing for d seconds of wall time.
    """
    result = StreamResult(utterances)
    audio = fake_speech.synthesize(utterances, rate, timing)
    result.audio_bytes = len(audio)
    chunk_s = chunk_bytes / (rate * 2)

    def requests() -> Iterator[pb.InterpretRequest]:
        yield config(sources=("en-US",), targets=targets, rate=rate, interim=True)
        start = time.monotonic()
        paused = False
        for i, request in enumerate(audio_requests(audio, chunk_bytes)):
            if pause_after_s is not None and not paused and i * chunk_s >= pause_after_s[0]:
                paused = True
                time.sleep(pause_after_s[1])
                start += pause_after_s[1]
            if speed:
                delay = start + i * chunk_s / speed - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield request

    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.InterpreterStub(channel)  # type: ignore[no-untyped-call]
        try:
            for response in stub.Interpret(requests(), timeout=timeout_s):
                kind = response.WhichOneof("event")
                if kind == "session_started":
                    result.session_id = response.session_started.session_id
                elif kind == "final_transcript":
                    result.finals.append(response.final_transcript.text)
                    result.final_ends_s.append(response.final_transcript.audio_end_offset.ToTimedelta().total_seconds())
                elif kind == "interim_transcript":
                    result.interims += 1
                elif kind == "translation_complete":
                    result.completes += 1
                elif kind == "notice":
                    result.notices.append(response.notice.code)
            result.code = grpc.StatusCode.OK
        except grpc.RpcError as error:
            result.code, result.details = error.code(), str(error.details())
    return result


def run_streams(address: str, scripts: list[list[list[int]]], **kw: Any) -> list[StreamResult]:
    """Streams at once, one thread each (results in ``scripts``' order)."""
    results: list[StreamResult | None] = [None] * len(scripts)

    def one(i: int) -> None:
        results[i] = run_stream(address, scripts[i], **kw)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(scripts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


def script(i: int, utterances: int) -> list[list[int]]:
    """Utterances of 4 words, different for each stream (word ids cycle through the fake's English words)."""
    return [[1 + (i * 7 + u * 4 + w) % 50 for w in range(4)] for u in range(utterances)]


def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


# -- spread, and the metrics --------------------------------------------------------------


def test_streams_spread_over_both_servers_and_their_metrics_add_up(shared_cluster: Cluster) -> None:
    c = shared_cluster
    before = {
        name: c.metrics_total(name)
        for name in (
            "tongyeok_streams_started_total",
            "tongyeok_translations_total",
            "tongyeok_audio_received_seconds_total",
        )
    }
    before_finals = c.metrics_total("tongyeok_transcripts_total", kind="final")
    before_interims = c.metrics_total("tongyeok_transcripts_total", kind="interim")
    results = run_streams(c.nginx.address, [script(i, 3) for i in range(12)])
    assert all(r.code == grpc.StatusCode.OK for r in results), [(r.code, r.details) for r in results]
    for r in results:
        assert r.finals == r.sent_texts and r.completes == len(r.utterances)
    # Round robin per stream: both servers took some, and every stream is in exactly one's log.
    taken = [server.sessions() for server in c.servers]
    assert all(taken), "both servers served streams"
    ids = {r.session_id for r in results}
    assert ids <= taken[0] | taken[1] and not (ids & taken[0] & taken[1])
    # The metrics of both add up to what the callers saw.
    assert _eventually(lambda: c.metrics_total("tongyeok_streams_open") == 0)
    started = c.metrics_total("tongyeok_streams_started_total") - before["tongyeok_streams_started_total"]
    assert started == len(results)
    per_server = [s.metrics().value("tongyeok_streams_started_total") for s in c.servers]
    assert all(n > 0 for n in per_server)
    finals = c.metrics_total("tongyeok_transcripts_total", kind="final") - before_finals
    interims = c.metrics_total("tongyeok_transcripts_total", kind="interim") - before_interims
    translations = c.metrics_total("tongyeok_translations_total") - before["tongyeok_translations_total"]
    audio_s = c.metrics_total("tongyeok_audio_received_seconds_total") - before["tongyeok_audio_received_seconds_total"]
    assert finals == sum(len(r.finals) for r in results)
    assert interims == sum(r.interims for r in results)
    assert translations == sum(r.completes for r in results)
    assert audio_s == pytest.approx(sum(r.audio_bytes for r in results) / BYTES_PER_S, abs=0.01)


# -- long streams ----------------------------------------------------------------------


HOUR_TIMING = Timing(utterance_gap_s=28.0)  # a sentence every ~29 s: 123 sentences fill an hour


def test_an_hour_long_stream_is_not_cut_by_the_balancer(shared_cluster: Cluster) -> None:
    c = shared_cluster
    utterances = script(0, 123)
    result = run_stream(c.nginx.address, utterances, rate=8000, chunk_bytes=64000, timing=HOUR_TIMING, timeout_s=240)
    assert result.code == grpc.StatusCode.OK, (result.code, result.details)
    assert result.audio_bytes / 16000 > 3600, "an hour of audio"
    assert result.finals == result.sent_texts, "every sentence of the hour, in order, none lost or repeated"
    assert result.final_ends_s[-1] > 3550
    assert result.completes == len(utterances)
    # Google's 5-minute stream limit was met by renewals inside the session, not seen by the caller.
    assert result.notices.count(pb.NOTICE_CODE_RECOGNIZER_RESTARTED) >= 11
    # The control: nginx's defaults (a 1 MB body) end the same stream early.
    with Nginx([s.port for s in c.servers], deploy=False) as defaults:
        cut = run_stream(defaults.address, utterances, rate=8000, chunk_bytes=64000, timing=HOUR_TIMING, timeout_s=60)
    assert cut.code != grpc.StatusCode.OK and len(cut.finals) < 10


def test_a_pause_in_the_audio_survives_the_balancer(shared_cluster: Cluster) -> None:
    c = shared_cluster
    utterances = script(3, 2)
    # After the first sentence the caller's microphone sends nothing for 2.5 s: no audio in, no event out.
    kw: dict[str, Any] = {"pause_after_s": (2.0, 2.5), "speed": 4.0}
    result = run_stream(c.nginx.address, utterances, **kw)
    assert result.code == grpc.StatusCode.OK, (result.code, result.details)
    assert result.finals == result.sent_texts
    # The control: the same pause through an nginx whose timeouts are shorter than it.
    short = "grpc_read_timeout 1s; grpc_send_timeout 1s; client_body_timeout 1s; send_timeout 1s;"
    with Nginx([s.port for s in c.servers], deploy=False, location_extra=short) as impatient:
        cut = run_stream(impatient.address, utterances, **kw)
    assert cut.code != grpc.StatusCode.OK


# -- a server stops ------------------------------------------------------------------------


def check_stream_of_the_stopped_server(result: StreamResult) -> None:
    """A stream without resumption on the server that was SIGTERMed: it finished its sentence and ended."""
    assert result.code == grpc.StatusCode.UNAVAILABLE, (result.code, result.details)
    assert "shutting down" in result.details and "reconnect" in result.details
    # Every final is a sentence sent, the last one possibly the sentence in progress, finished early
    # (what was heard of it); none was lost or cut before it, each was translated.
    sent = result.sent_texts
    assert result.finals, "streams were under way"
    assert result.finals[:-1] == sent[: len(result.finals) - 1]
    last = result.finals[-1]
    assert sent[len(result.finals) - 1].startswith(last), (last, sent)
    assert len(result.finals) < len(sent), "it ended before its audio did"
    assert result.completes == len(result.finals), "and each of its finals was translated"


def test_a_server_stopped_during_20_streams() -> None:
    with cluster(grace_s=10.0) as c:
        stopped, other = c.servers
        # Ten raw streams without resumption, ten sessions of the Python client, which asks for it;
        # ~28 s of audio each, sent at 4x real time: still under way when the server stops.
        raw: list[StreamResult] = []
        runner = threading.Thread(
            target=lambda: raw.extend(run_streams(c.nginx.address, [script(i, 12) for i in range(10)], speed=4.0))
        )
        runner.start()
        meetings = [Meeting(c.nginx.address, [sentence(20 + 12 * i + k) for k in range(12)]).start() for i in range(10)]
        assert _eventually(lambda: c.metrics_total("tongyeok_streams_started_total") == 20, 30), "20 streams"
        time.sleep(1.0)  # a second of audio (4 s of speech) into every stream
        assert c.metrics_total("tongyeok_streams_open") == 20
        open_on_stopped = stopped.metrics().value("tongyeok_streams_open")
        assert 0 < open_on_stopped < 20, "nginx spread the streams over both"
        stopped.terminate()
        # New streams, once the stopped server no longer takes connections, go to the other one.
        assert _eventually(lambda: not _accepts(stopped.address), 10)
        later = run_streams(c.nginx.address, [script(30 + i, 2) for i in range(4)], speed=4.0)
        runner.join(120)
        for meeting in meetings:
            meeting.wait(120)
        assert stopped.process.wait(30) == 0, "it drained and exited cleanly"

        on_stopped, on_other, moved = stopped.sessions(), other.sessions(), other.sessions(moved=True)
        assert len(on_stopped) == open_on_stopped and len(raw) == 10
        for result in raw:
            if result.session_id in on_stopped:
                check_stream_of_the_stopped_server(result)
            else:
                assert result.session_id in on_other
                # Untouched: every sentence, every translation, OK.
                assert result.code == grpc.StatusCode.OK, (result.code, result.details)
                assert result.finals == result.sent_texts and result.completes == len(result.utterances)
        for meeting in meetings:
            # Wherever it started, the meeting has every sentence once, in order, translated; those on
            # the stopped server moved (one resume each) and went on on the other.
            meeting.check_nothing_lost()
            session_id = meeting.of(SessionStarted)[0].session_id
            resumes = meeting.of(SessionResumed)
            if session_id in on_stopped:
                assert session_id in moved and len(resumes) == 1 and resumes[0].moved
            else:
                assert session_id in on_other and not resumes
        assert any(m.of(SessionStarted)[0].session_id in on_stopped for m in meetings), "some moved"
        for result in later:
            assert result.code == grpc.StatusCode.OK, (result.code, result.details)
            assert result.session_id in on_other and result.finals == result.sent_texts
        # Every word the stopped server's recogniser finalised for a raw stream reached its caller.
        raw_stopped = [r for r in raw if r.session_id in on_stopped]
        assert raw_stopped, "some raw streams were on the stopped server"
        # The other server's metrics: its own callers ended OK; the moved sessions were counted as such.
        m = other.metrics()
        assert m.value("tongyeok_streams_ended_total", outcome="error") == 0
        assert m.value("tongyeok_sessions_resumed_total", how="moved") == len(moved)


def _accepts(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False
