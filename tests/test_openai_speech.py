"""OpenAI text-to-speech over the wire, with the real openai package against the fake's /v1/audio/speech."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from tests.conftest import stub_for
from tests.support.calls import events_of, of_kind
from tests.support.fake_openai import FakeOpenAI, fake_speech_value
from tests.support.speech_audio import utterance_audio
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.app import TongyeokServer

SPEECH = "/v1/audio/speech"
TEXT = "Good morning everyone. We would like to discuss the contract today."


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(tokens_per_s=20) as fake:
        yield fake


@pytest.fixture
def stub(server_factory: Callable[..., TongyeokServer], fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-speech-key")
    server = server_factory(translator="openai", synthesizer="openai", openai_base_url=fake.base_url)
    channel, stub = stub_for(server)
    with channel:
        yield stub


def request(rate: int = 24000) -> pb.TranslateTextRequest:
    return pb.TranslateTextRequest(
        text=TEXT,
        source_language_code="en",
        target_language_codes=["es"],
        speech_output=pb.SpeechOutputConfig(sample_rate_hertz=rate),
    )


def spoken_words(pcm: bytes) -> list[int]:
    """The fake's word values in 24 kHz PCM, in order."""
    samples = np.frombuffer(pcm, dtype="<i2")
    values: list[int] = []
    for value in samples[samples != 0]:
        if not values or values[-1] != value:
            values.append(int(value))
    return values


def test_speech_starts_before_the_translation_is_complete_and_says_every_word(stub, fake: FakeOpenAI) -> None:
    events = events_of(stub.TranslateText(request(), timeout=60))
    kinds = [k for k, _ in events]
    assert kinds.index("translation_audio") < kinds.index("translation_complete")
    (complete,) = of_kind(events, "translation_complete")
    (pcm,) = utterance_audio(events, "es").values()
    assert spoken_words(pcm) == [fake_speech_value(w) for w in complete.text.split()]
    speech = [r for r in fake.requests if r.path == SPEECH]
    assert len(speech) >= 2, "one request per clause"
    body = speech[0].body
    assert body["model"] == "gpt-4o-mini-tts" and body["voice"] == "coral" and body["response_format"] == "pcm"
    assert "interpreter" in body["instructions"]
    assert speech[0].headers["authorization"] == "Bearer sk-test-speech-key"


def test_a_cut_translation_resets_its_audio_which_is_sent_again(stub, fake: FakeOpenAI) -> None:
    fake.cut(4, path="/v1/chat/completions")  # the translation breaks off after 4 tokens, then is retried
    events = events_of(stub.TranslateText(request(), timeout=60))
    kinds = [k for k, _ in events]
    reset = kinds.index("translation_reset")
    before = [m for k, m in events[:reset] if k == "translation_audio"]
    after = [m for k, m in events[reset:] if k == "translation_audio"]
    assert before, "the first clause was being spoken when the translation broke off"
    assert after[0].sequence_number == 0
    (complete,) = of_kind(events, "translation_complete")
    (pcm,) = utterance_audio(events, "es").values()  # drops what the reset voided
    assert spoken_words(pcm) == [fake_speech_value(w) for w in complete.text.split()]


def test_a_synthesis_failure_is_a_notice_and_the_text_goes_on(
    stub, fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail(500, times=None, path=SPEECH)
    with caplog.at_level(logging.WARNING, logger="tongyeok_server.synthesis.speaker"):
        events = events_of(stub.TranslateText(request(), timeout=60))
    (notice,) = of_kind(events, "notice")
    assert notice.code == pb.NOTICE_CODE_SYNTHESIS_FAILED and notice.target_language_code == "es"
    assert "HTTP 500" in notice.message and "try again" in notice.message
    assert of_kind(events, "translation_complete") and not of_kind(events, "translation_audio")
    # The caller gets the cause; the speech server's address is for the server's log only.
    address = fake.base_url.split("//")[1].split("/")[0]
    assert address not in notice.message and "127.0.0.1" not in notice.message
    assert any(address in r.getMessage() for r in caplog.records)
    languages = stub.ListLanguages(pb.ListLanguagesRequest(), timeout=10)
    assert languages.synthesizer.name == "openai" and address not in languages.synthesizer.detail


def test_a_callers_cancel_stops_synthesis_at_once(stub, fake: FakeOpenAI) -> None:
    fake.speech_speed = 0.5  # the fake speaks slower than real time: the clause is still streaming
    call = stub.TranslateText(request(), timeout=60)
    for response in call:
        if response.WhichOneof("event") == "translation_audio":
            break
    cancelled_at = time.monotonic()
    call.cancel()
    assert fake.wait_for(lambda f: any(r.path == SPEECH and r.outcome == "disconnected" for r in f.requests), 10)
    gone = next(r for r in fake.requests if r.path == SPEECH and r.outcome == "disconnected")
    assert gone.ended_at - cancelled_at < 2.0
    assert fake.wait_idle(5)
