"""A meeting survives the network: a broken Interpret stream is resumed, no word lost or repeated.

Over real ports: the client (``InterpreterClient``, which resumes by itself)
talks to the server through ``tests.support.tcp_proxy``, which cuts, stalls
and refuses connections as a phone's network does. The recogniser is the
fake Speech-to-Text (its audio carries its words, so every final is known
in advance) and the translator Apertium, so each final's translation is
real and deterministic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from tests.conftest import non_pool_threads, stub_for, threads_started_since
from tests.support import fake_speech
from tests.support.calls import config as config_request
from tests.support.fake_speech import FakeSpeech, word_for_id
from tests.support.tcp_proxy import TcpProxy, proxy_to
from tests.support.waiting import wait_until
from tongyeok_client import (
    FinalTranscript,
    InterpreterClient,
    Reconnecting,
    SessionResumed,
    SessionStarted,
    TongyeokError,
    TranslationComplete,
    TranslationToken,
    config,
    paced,
)
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.app import TongyeokServer

CHUNK = 3200  # 100 ms at 16 kHz


def sentence(i: int) -> list[int]:
    """Utterance ``i``: four words of its own."""
    return [1 + (4 * i + k) % 60 for k in range(4)]


def words(ids: list[int]) -> str:
    return " ".join(word_for_id(i)[0] for i in ids)


def chunks_of(audio: bytes) -> list[bytes]:
    return [audio[i : i + CHUNK] for i in range(0, len(audio), CHUNK)]


def on_the_fake(
    server_factory: Callable[..., TongyeokServer], speech_fake: FakeSpeech, **overrides: Any
) -> TongyeokServer:
    """A server on the fake Speech-to-Text and Apertium (unless ``translator=`` says otherwise)."""
    settings: dict[str, Any] = {
        "recognizer": "google",
        "google_endpoint": speech_fake.address,
        "google_insecure": True,
        "google_project": "test-project",
        "translator": "apertium",
    }
    return server_factory(**{**settings, **overrides})


@pytest.fixture
def server(server_factory: Callable[..., TongyeokServer], speech_fake: FakeSpeech) -> TongyeokServer:
    return on_the_fake(
        server_factory,
        speech_fake,
        resume_window_s=60.0,
    )


@pytest.fixture
def proxy(server: TongyeokServer) -> Iterator[TcpProxy]:
    with proxy_to(server.port) as p:
        yield p


class Meeting:
    """Runs one interpreted stream in a thread; the test breaks the network under it."""

    def __init__(self, target: str, utterances: list[list[int]], speed: float = 4.0, **client: Any) -> None:
        self.utterances = utterances
        self.audio = fake_speech.synthesize(utterances)
        self.events: list[Any] = []
        self.error: BaseException | None = None
        self.first_final = threading.Event()
        self.first_token = threading.Event()
        self.done = threading.Event()
        self._client = InterpreterClient(target, **client)
        cfg = config(source="en-US", target="es")
        self._events = self._client.interpret(cfg, paced(chunks_of(self.audio), 0.1, speed))
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Meeting:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for event in self._events:
                self.events.append(event)
                if isinstance(event, FinalTranscript):
                    self.first_final.set()
                if isinstance(event, TranslationToken):
                    self.first_token.set()
        except BaseException as e:
            self.error = e
        finally:
            self.done.set()
            self._client.close()

    def wait(self, timeout: float = 90) -> Meeting:
        assert self.done.wait(timeout), "the meeting did not end"
        return self

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def check_nothing_lost(self) -> None:
        """Every scripted sentence once, in order, ids and offsets continuous, every translation complete."""
        assert self.error is None, self.error
        finals = self.of(FinalTranscript)
        assert [f.text for f in finals] == [words(u) for u in self.utterances]
        assert [f.utterance_id for f in finals] == list(range(1, len(self.utterances) + 1))
        starts = [f.audio_start_s for f in finals]
        assert starts == sorted(starts)
        # Offsets are in the session's audio however many streams carried it: each final ends in the
        # pause after its sentence (the fake finalises a little after the last word).
        for final, (end, next_speech) in zip(finals, fake_speech.utterance_ends_s(self.utterances), strict=True):
            assert end - 0.05 <= final.audio_end_s <= next_speech, (final, end, next_speech)
        completes = self.of(TranslationComplete)
        assert sorted(c.utterance_id for c in completes) == [f.utterance_id for f in finals]
        # Tokens since the last reset add up to each complete translation: none doubled by a resume.
        tokens: dict[int, str] = {}
        for event in self.events:
            if isinstance(event, TranslationToken):
                tokens[event.utterance_id] = tokens.get(event.utterance_id, "") + event.text
        for complete in completes:
            assert tokens[complete.utterance_id].strip() == complete.text
        # Sequence numbers: strictly growing, none twice, no gap but the one of each move (the number of
        # the resume_token_update, which the client takes and does not yield).
        numbers = [e.raw.sequence_number for e in self.events if getattr(e.raw, "sequence_number", 0)]
        assert numbers == sorted(set(numbers))
        moves = len([r for r in self.of(SessionResumed) if r.moved])
        assert numbers[-1] - numbers[0] + 1 - len(numbers) == moves


def test_a_cut_mid_sentence_is_invisible_but_for_the_reconnect(server, proxy) -> None:
    meeting = Meeting(f"127.0.0.1:{proxy.port}", [sentence(i) for i in range(6)]).start()
    assert meeting.first_final.wait(30)
    time.sleep(0.6)  # into the next sentence
    proxy.cut()
    meeting.wait()
    meeting.check_nothing_lost()
    assert meeting.of(Reconnecting) and len(meeting.of(SessionResumed)) == 1
    (started,) = meeting.of(SessionStarted)
    assert started.raw.session_started.resume_token
    assert wait_until(lambda: server.interpret.open_streams == 0, 10)


@pytest.mark.parametrize("down_s", [1.0, 30.0], ids=["1s", "30s"])
def test_the_network_down_for_a_while(server, proxy, down_s: float) -> None:
    meeting = Meeting(f"127.0.0.1:{proxy.port}", [sentence(i) for i in range(8)], speed=2.0).start()
    assert meeting.first_final.wait(30)
    proxy.refusing = True
    proxy.cut()
    time.sleep(down_s)
    proxy.restore()
    meeting.wait(120)
    meeting.check_nothing_lost()
    # The resume waited for the network (the channel retries every second at most), not a retry storm.
    assert meeting.of(Reconnecting)
    (resumed,) = meeting.of(SessionResumed)
    assert resumed.detached_s >= down_s * 0.8


def test_a_cut_while_a_translation_streams(server_factory, speech_fake, monkeypatch) -> None:
    from tests.support.fake_openai import FakeOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-resume-key")
    with FakeOpenAI() as openai_fake:
        openai_fake.ttft_s, openai_fake.tokens_per_s = 0.05, 8  # slow tokens: the cut lands inside one
        server = on_the_fake(
            server_factory,
            speech_fake,
            translator="openai",
            openai_base_url=openai_fake.base_url,
        )
        with proxy_to(server.port) as proxy:
            meeting = Meeting(f"127.0.0.1:{proxy.port}", [sentence(i) for i in range(4)]).start()
            assert meeting.first_token.wait(30)
            proxy.cut()
            meeting.wait()
    meeting.check_nothing_lost()
    assert meeting.of(SessionResumed)


def test_three_cuts_in_a_ten_minute_stream(server, proxy) -> None:
    # 10 minutes of speech at 20 x real time: 180 sentences.
    meeting = Meeting(f"127.0.0.1:{proxy.port}", [sentence(i) for i in range(180)], speed=20.0).start()
    for at in (40, 90, 140):

        def heard(at: int = at) -> bool:
            return len(meeting.of(FinalTranscript)) >= at

        assert wait_until(heard, 120), at
        proxy.cut()
    meeting.wait(240)
    meeting.check_nothing_lost()
    assert len(meeting.of(SessionResumed)) == 3


def test_a_break_longer_than_the_window_ends_with_a_clear_error_and_releases_everything(
    server_factory, speech_fake
) -> None:
    server = on_the_fake(
        server_factory,
        speech_fake,
        resume_window_s=1.5,
    )
    threads_before = non_pool_threads()
    with proxy_to(server.port) as proxy:
        meeting = Meeting(f"127.0.0.1:{proxy.port}", [sentence(i) for i in range(20)], speed=1.0).start()
        assert meeting.first_final.wait(30)
        proxy.refusing = True
        proxy.cut()
        # The server finishes and releases the session once its window has run out...
        assert wait_until(lambda: server.interpret.open_streams == 0, 20)
        time.sleep(0.5)
        proxy.restore()
        meeting.wait(60)
    # ...and the client says so instead of hanging.
    assert isinstance(meeting.error, TongyeokError)
    assert meeting.error.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE)
    if meeting.error.code == grpc.StatusCode.NOT_FOUND:
        assert "not resumed within its resume window of 1.5 s" in meeting.error.details
    else:
        assert "could not be restored within the session's resume window of 1.5 s" in meeting.error.details
    assert wait_until(lambda: not threads_started_since(threads_before), 10), threads_started_since(threads_before)


def resumable_config() -> pb.InterpretRequest:
    request = config_request(sources=("en-US",), targets=("es",))
    request.config.resumption.enabled = True
    return request


def started_session(stub, metadata=None) -> tuple[Any, str]:
    """A resumable session whose stream stays open (the caller sends silence); its call and token."""
    stop = threading.Event()

    def requests() -> Iterator[pb.InterpretRequest]:
        yield resumable_config()
        while not stop.wait(0.05):
            yield pb.InterpretRequest(audio=bytes(CHUNK))

    call = stub.Interpret(requests(), timeout=60, metadata=metadata)
    first = next(iter(call))
    assert first.WhichOneof("event") == "session_started" and first.sequence_number == 1
    call.stop = stop
    return call, first.session_started.resume_token


def resume_error(stub, token: str, last: int = 1, metadata=None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        list(
            stub.Interpret(
                iter([pb.InterpretRequest(resume=pb.ResumeRequest(resume_token=token, last_sequence_number=last))]),
                timeout=30,
                metadata=metadata,
            )
        )
    return info.value


def test_forged_and_ended_tokens_are_refused_with_the_reason(server) -> None:
    channel, stub = stub_for(server)
    with channel:
        call, token = started_session(stub)
        forged = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
        error = resume_error(stub, forged)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not a resume token this service issued" in str(error.details())
        error = resume_error(stub, token, last=999)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "last_sequence_number is 999" in str(error.details())
        # The session ends (the caller says so); its token is then an old one.
        call.stop.set()
        list(call)
        assert wait_until(lambda: server.interpret.open_streams == 0, 10)
        error = resume_error(stub, token)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert "has ended" in str(error.details()) and "start a new session" in str(error.details())


def test_another_callers_token_is_permission_denied(server_factory, speech_fake, tmp_path) -> None:
    from tongyeok_server.auth.api_keys import hash_key, new_key

    alice, bob = new_key(), new_key()
    keys = tmp_path / "keys.txt"
    keys.write_text(f"alice {hash_key(alice)} interpret\nbob {hash_key(bob)} interpret\n")
    server = on_the_fake(
        server_factory,
        speech_fake,
        api_keys=str(keys),
    )
    channel, stub = stub_for(server)
    with channel:
        call, token = started_session(stub, [("authorization", f"Bearer {alice}")])
        error = resume_error(stub, token, metadata=[("authorization", f"Bearer {bob}")])
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "belongs to a session of another caller" in str(error.details())
        assert token not in str(error.details())
        call.cancel()
        call.stop.set()


def test_audio_after_the_callers_end_is_refused_and_after_the_servers_dropped(server_factory, speech_fake) -> None:
    # The server ends the stream (here its maximum duration; a drain that moves the session is the same
    # case) while the caller is still sending: that audio is no protocol error, the stream ends with
    # the server's reason. Only audio after the caller's own `end` is one.
    speech_fake.finalise_delay_s = 0.5  # the last sentence takes a while to finish: audio keeps coming
    server = on_the_fake(server_factory, speech_fake, resume_window_s=60.0, max_stream_duration_s=1.0)
    audio = fake_speech.synthesize([sentence(i) for i in range(4)])
    channel, stub = stub_for(server)
    with channel:

        def steady() -> Iterator[pb.InterpretRequest]:
            yield resumable_config()
            for chunk in chunks_of(audio):
                yield pb.InterpretRequest(audio=chunk)
                time.sleep(0.04)  # 100 ms of audio: still sending for seconds after the maximum duration

        with pytest.raises(grpc.RpcError) as ended:
            list(stub.Interpret(steady(), timeout=60))
        assert ended.value.code() == grpc.StatusCode.OUT_OF_RANGE, ended.value.details()

        def audio_after_end() -> Iterator[pb.InterpretRequest]:
            yield resumable_config()
            yield pb.InterpretRequest(audio=bytes(CHUNK))
            yield pb.InterpretRequest(end=pb.EndOfAudio())
            yield pb.InterpretRequest(audio=bytes(CHUNK))

        with pytest.raises(grpc.RpcError) as refused:
            list(stub.Interpret(audio_after_end(), timeout=60))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "message 4 carries audio after the session's `end`" in str(refused.value.details())


def test_replayed_events_are_exactly_the_missing_ones(server) -> None:
    """At the protocol level: resume with a last number, get what follows, each once, then new ones."""
    channel, stub = stub_for(server)
    audio = fake_speech.synthesize([sentence(i) for i in range(3)])
    with channel:
        stop = threading.Event()

        def first_stream() -> Iterator[pb.InterpretRequest]:
            yield resumable_config()
            yield from (pb.InterpretRequest(audio=c) for c in chunks_of(audio))
            stop.wait(30)

        call = stub.Interpret(first_stream(), timeout=60)
        seen = []
        for response in call:
            seen.append(response)
            if response.WhichOneof("event") == "translation_complete" and len(seen) > 8:
                break
        token = seen[0].session_started.resume_token
        call.cancel()  # the connection "breaks"; the session goes on without it
        stop.set()
        # Resume from an earlier point than the last one received: the rest comes again.
        last = seen[3].sequence_number
        resend_from: list[int] = []
        answered = threading.Event()

        def resumed_stream() -> Iterator[pb.InterpretRequest]:
            yield pb.InterpretRequest(resume=pb.ResumeRequest(resume_token=token, last_sequence_number=last))
            assert answered.wait(30)
            yield from (pb.InterpretRequest(audio=c) for c in chunks_of(audio[resend_from[0] :]))
            yield pb.InterpretRequest(end=pb.EndOfAudio())

        responses = []
        for response in stub.Interpret(resumed_stream(), timeout=60):
            responses.append(response)
            if response.WhichOneof("event") == "session_resumed":
                resend_from.append(response.session_resumed.resend_from_byte)
                answered.set()
    assert responses[0].WhichOneof("event") == "session_resumed"
    assert responses[0].session_resumed.next_sequence_number == last + 1
    assert responses[0].session_resumed.resend_from_byte > 0
    numbered = [r.sequence_number for r in responses[1:] if r.sequence_number]
    assert numbered[0] == last + 1
    assert numbered == list(range(last + 1, last + 1 + len(numbered)))
    by_number = {r.sequence_number: r for r in seen if r.sequence_number}
    for r in responses[1:]:
        if r.sequence_number in by_number:
            assert r == by_number[r.sequence_number]  # the very same event, sent again
    finals = [r.final_transcript.text for r in [*seen[:4], *responses] if r.WhichOneof("event") == "final_transcript"]
    assert finals == [words(sentence(i)) for i in range(3)]


def test_a_silent_network_is_noticed_by_the_clients_keepalive_and_resumed(server_factory, speech_fake) -> None:
    """A stall (no reset, no FIN: a lift) is found by the client's pings; scaled down from 15 s + 10 s."""
    server = on_the_fake(
        server_factory,
        speech_fake,
        min_client_ping_interval_s=0.5,
    )
    pings = [
        ("grpc.keepalive_time_ms", 1000),
        ("grpc.keepalive_timeout_ms", 1000),
        ("grpc.http2.ping_timeout_ms", 1000),
    ]
    with proxy_to(server.port) as proxy:
        meeting = Meeting(f"127.0.0.1:{proxy.port}", [sentence(i) for i in range(8)], speed=2.0, options=pings)
        meeting.start()
        assert meeting.first_final.wait(30)
        proxy.stall()
        assert wait_until(lambda: bool(meeting.of(Reconnecting)), 30), "the client never noticed the silent network"
        proxy.restore()
        meeting.wait(120)
    meeting.check_nothing_lost()
    assert meeting.of(SessionResumed)


def test_the_cli_says_it_reconnects_and_goes_on(server, proxy, tmp_path, capsys) -> None:
    import json

    import numpy as np
    import soundfile

    from tongyeok_client import cli

    utterances = [sentence(i) for i in range(6)]
    wav = tmp_path / "meeting.wav"
    soundfile.write(wav, np.frombuffer(fake_speech.synthesize(utterances), dtype="<i2"), 16000, subtype="PCM_16")
    result: list[int] = []
    argv = ["interpret", str(wav), "--source", "en-US", "--target", "es", "--json", "--speed", "4"]
    runner = threading.Thread(target=lambda: result.append(cli.main([*argv, "--server", f"127.0.0.1:{proxy.port}"])))
    runner.start()
    assert wait_until(lambda: any(m.session.stats.finals for m in server.interpret.registry.all()), 30)
    proxy.cut()
    runner.join(90)
    assert result == [0]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [next(iter(line)) for line in lines]
    assert "reconnecting" in kinds and "session_resumed" in kinds
    assert [line["final_transcript"]["text"] for line in lines if "final_transcript" in line] == [
        words(u) for u in utterances
    ]
