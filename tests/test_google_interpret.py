"""Interpret sessions with ``--recognizer google`` (fake Speech-to-Text v2) and the Apertium translator.

The whole path: the real gRPC server, the real ``SpeechClient`` against the
fake, the real Apertium pipeline. The fake's audio carries its words, so
finals are deterministic; Apertium's eng-spa pair does the two-way routing.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from tests.conftest import stub_for
from tests.support import fake_speech
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.fake_speech import SPANISH_BASE, FakeSpeech, word_for_id
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.app import TongyeokServer

pytestmark = pytest.mark.skipif(
    shutil.which("apertium") is None or not Path("/usr/share/apertium/modes/eng-spa.mode").exists(),
    reason="needs apertium and apertium-eng-spa",
)

EN_1 = [1, 2, 3, 4]  # good morning thank you
ES_1 = [SPANISH_BASE + i for i in range(3)]  # buenos días gracias
EN_2 = [19, 20, 21, 22]  # please review this proposal
ES_2 = [SPANISH_BASE + 12, SPANISH_BASE + 13, SPANISH_BASE + 14]  # el precio incluye


def words(ids: list[int]) -> str:
    return " ".join(word_for_id(i)[0] for i in ids)


@pytest.fixture
def server(server_factory: Callable[..., TongyeokServer], speech_fake: FakeSpeech) -> TongyeokServer:
    return server_factory(
        recognizer="google",
        google_endpoint=speech_fake.address,
        google_insecure=True,
        google_project="test-project",
        translator="apertium",
    )


def test_two_way_english_spanish_through_google_and_apertium(server: TongyeokServer, speech_fake: FakeSpeech) -> None:
    # A short stream cap makes Google cut the stream inside the session: words must survive it.
    speech_fake.max_stream_audio_s = 6.0
    utterances = [EN_1, ES_1, EN_2, ES_2]

    def requests() -> Iterator[pb.InterpretRequest]:
        yield config(sources=("en-US", "es-ES"), targets=("en-US", "es-ES"), interim=True)
        yield from audio_requests(fake_speech.synthesize(utterances), 3200)

    channel, stub = stub_for(server)
    with channel:
        events = events_of(stub.Interpret(requests(), timeout=30))

    (started,) = of_kind(events, "session_started")
    assert started.recognizer.name == "google"
    finals = of_kind(events, "final_transcript")
    assert [(f.language_code, f.text) for f in finals] == [
        ("en-US", words(EN_1)),
        ("es-ES", words(ES_1)),
        ("en-US", words(EN_2)),
        ("es-ES", words(ES_2)),
    ]
    ends = [f.audio_end_offset.ToNanoseconds() for f in finals]
    assert ends == sorted(ends)
    # Each final is translated into the other language, and only into it.
    completes = {(c.utterance_id, c.target_language_code): c for c in of_kind(events, "translation_complete")}
    assert set(completes) == {(f.utterance_id, "es-ES" if f.language_code == "en-US" else "en-US") for f in finals}
    for f in finals:
        target = "es-ES" if f.language_code == "en-US" else "en-US"
        assert list(f.target_language_codes) == [target]
        assert completes[(f.utterance_id, target)].text.strip()
    by_id = {f.utterance_id: f for f in finals}
    en_to_es = completes[(finals[0].utterance_id, "es-ES")].text.lower()
    es_to_en = completes[(finals[1].utterance_id, "en-US")].text.lower()
    assert "gracias" in en_to_es, en_to_es
    assert "thank" in es_to_en or "thanks" in es_to_en, es_to_en
    assert by_id  # utterance ids are distinct
    assert len(by_id) == len(finals)
    # Google cut the stream; the caller heard a notice, not an error.
    assert any(s.status is grpc.StatusCode.OUT_OF_RANGE for s in speech_fake.streams)
    notices = of_kind(events, "notice")
    assert any(n.code == pb.NOTICE_CODE_RECOGNIZER_RESTARTED for n in notices)


def test_caller_going_away_closes_the_google_stream(server: TongyeokServer, speech_fake: FakeSpeech) -> None:
    audio = fake_speech.synthesize([EN_1, EN_2])
    done = threading.Event()

    def requests() -> Iterator[pb.InterpretRequest]:
        yield config(sources=("en-US",), targets=("es",), interim=True)
        yield from audio_requests(audio, 3200)
        while not done.is_set():  # a live microphone goes on sending (silence)
            yield pb.InterpretRequest(audio=bytes(3200))
            time.sleep(0.05)

    channel, stub = stub_for(server)
    with channel:
        call = stub.Interpret(requests(), timeout=30)
        try:
            for response in call:
                if response.WhichOneof("event") == "final_transcript":
                    break
            cancelled_at = time.monotonic()
            call.cancel()
        finally:
            done.set()
        record = speech_fake.streams[-1]
        assert record.done.wait(3), "the Google stream was not closed"
        closed_after = time.monotonic() - cancelled_at
    assert record.cancelled
    assert closed_after < 1.0


def test_a_two_way_stream_the_translator_cannot_serve_is_refused_at_once(server: TongyeokServer) -> None:
    """Korean <-> English on Apertium: no pair. Refused with the config, not a failed translation per sentence."""
    channel, stub = stub_for(server)
    with channel, pytest.raises(grpc.RpcError) as info:
        events_of(stub.Interpret(iter([config(sources=("ko-KR", "en-US"), targets=())]), timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cannot translate ko into en" in str(info.value.details())
