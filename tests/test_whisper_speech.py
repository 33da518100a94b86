"""The Whisper recogniser end to end over a real port: real synthesised speech, the real model.

One Whisper server (one worker process) serves every test here; streams
are sent as fast as the server takes them unless a test is about interims,
which only exist while audio arrives at the pace of speech.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.conftest import stub_for
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.speech import Speech, convert, synthesize, word_error_rate
from tongyeok_client.proto import interpreter_pb2 as pb

pytestmark = pytest.mark.speech

# A meeting's worth of sentences, long enough that a merged or split sentence shows.
LONG = [
    "Good morning everyone.",
    "We would like to discuss the contract today.",
    "The price includes shipping and insurance.",
    "Our team will visit your office in March.",
    "Could you repeat the last number please?",
    "Thank you for your time.",
]
# The bounds (make bench measures them over several voices).
WER_16K = 0.02
WER_8K = 0.05


def interpret(
    stub, request: pb.InterpretRequest, data: bytes, bytes_per_second: int, pace_s: float = 0.0
) -> list[tuple[str, Any]]:
    chunk = bytes_per_second // 10
    return events_of(stub.Interpret(itertools.chain([request], audio_requests(data, chunk, pace_s)), timeout=180))


def words(text: str) -> list[str]:
    return ["".join(c for c in w.lower() if c.isalnum() or c == "'") for w in text.split()]


def finals_text(events: list[tuple[str, Any]]) -> str:
    return " ".join(f.text for f in of_kind(events, "final_transcript"))


@pytest.fixture(scope="module")
def whisper_stub(whisper_server) -> Iterator[Any]:
    channel, stub = stub_for(whisper_server)
    with channel:
        yield stub


@pytest.fixture(scope="module")
def long_speech() -> Speech:
    return synthesize(LONG)


@pytest.fixture(scope="module")
def long_events(whisper_stub, long_speech: Speech):
    return interpret(whisper_stub, config(), long_speech.pcm(), 32000)


def test_session_names_the_whisper_engine(long_events) -> None:
    (started,) = of_kind(long_events, "session_started")
    assert started.recognizer.name == "whisper"
    assert "whisper-base" in started.recognizer.detail


def test_one_final_per_sentence_on_a_long_recording(long_events, long_speech: Speech) -> None:
    finals = of_kind(long_events, "final_transcript")
    assert [f.utterance_id for f in finals] == list(range(1, len(LONG) + 1)), [f.text for f in finals]
    for final, sentence, end in zip(finals, LONG, long_speech.sentence_end_s, strict=True):
        assert word_error_rate(sentence, final.text) <= 0.2, (sentence, final.text)
        assert abs(final.audio_end_offset.ToTimedelta().total_seconds() - end) < 0.6, (final.text, end)
        assert final.language_code == "en-US"
        assert 0.0 < final.confidence <= 1.0
    assert word_error_rate(" ".join(LONG), finals_text(long_events)) <= WER_16K


def test_each_final_is_translated(long_events) -> None:
    completes = {c.utterance_id: c.text for c in of_kind(long_events, "translation_complete")}
    assert sorted(completes) == [f.utterance_id for f in of_kind(long_events, "final_transcript")]
    assert "Buenos días" in completes[1] and "contrato" in completes[2]


@pytest.mark.parametrize(
    ("encoding", "sox_encoding"),
    [(pb.AUDIO_ENCODING_MULAW, "mu-law"), (pb.AUDIO_ENCODING_ALAW, "a-law")],
    ids=["mulaw", "alaw"],
)
def test_8k_telephony_gives_the_16k_finals(
    whisper_stub, long_speech: Speech, long_events, tmp_path: Path, encoding: pb.AudioEncoding, sox_encoding: str
) -> None:
    data = convert(long_speech, tmp_path / "8k.raw", rate_hz=8000, encoding=sox_encoding, bits=8)
    events = interpret(whisper_stub, config(rate=8000, encoding=encoding), data, 8000)
    assert len(of_kind(events, "final_transcript")) == len(LONG), finals_text(events)
    assert word_error_rate(finals_text(long_events), finals_text(events)) <= WER_8K, finals_text(events)


def test_48k_stereo_gives_the_16k_finals(whisper_stub, long_speech: Speech, long_events, tmp_path: Path) -> None:
    data = convert(long_speech, tmp_path / "48k.raw", rate_hz=48000, channels=2)
    events = interpret(whisper_stub, config(rate=48000, channels=2), data, 48000 * 4)
    assert len(of_kind(events, "final_transcript")) == len(LONG), finals_text(events)
    assert word_error_rate(finals_text(long_events), finals_text(events)) <= WER_16K, finals_text(events)


def test_two_way_stream_labels_each_final_and_translates_it_the_other_way(whisper_stub) -> None:
    # English from Festival, Spanish from espeak-ng, in turn, as two people speak.
    turns = [
        ("We would like to discuss the contract today.", "hts", "en-US"),
        ("El contrato está listo para firmar.", "espeak:es", "es"),
        ("Thank you for your time.", "hts", "en-US"),
        ("Gracias por su tiempo.", "espeak:es", "es"),
    ]
    speech = synthesize([t for t, _, _ in turns], voice=[v for _, v, _ in turns])
    events = interpret(whisper_stub, config(sources=("en-US", "es"), targets=()), speech.pcm(), 32000)
    (started,) = of_kind(events, "session_started")
    finals = of_kind(events, "final_transcript")
    assert [f.language_code for f in finals] == [lang for _, _, lang in turns], [
        (f.text, f.language_code) for f in finals
    ]
    for final, (sentence, _, _) in zip(finals, turns, strict=True):
        assert word_error_rate(sentence, final.text) <= 0.2, (sentence, final.text)
    completes = {c.utterance_id: c for c in of_kind(events, "translation_complete")}
    for final in finals:
        complete = completes[final.utterance_id]
        assert complete.source_language_code == final.language_code
        assert complete.target_language_code == ("es" if final.language_code == "en-US" else "en-US")
    assert "contrato" in completes[finals[0].utterance_id].text
    assert "contract" in completes[finals[1].utterance_id].text or "agreement" in completes[finals[1].utterance_id].text
    assert list(started.effective_config.source_language_codes) == ["en-US", "es"]


def test_interims_grow_before_each_final_at_speaking_pace(whisper_stub, long_speech: Speech) -> None:
    two = synthesize(LONG[1:3])
    events = interpret(whisper_stub, config(), two.pcm(), 32000, pace_s=0.1)
    transcripts = [(k, m) for k, m in events if k in ("interim_transcript", "final_transcript")]
    finals = of_kind(events, "final_transcript")
    assert len(finals) == 2
    for final in finals:
        interims = [m for k, m in transcripts if k == "interim_transcript" and m.utterance_id == final.utterance_id]
        assert interims, f"no interim before final {final.utterance_id}"
        position = next(i for i, (_, m) in enumerate(transcripts) if m is final)
        assert all(transcripts.index(("interim_transcript", m)) < position for m in interims)
        texts = [m.text for m in interims]
        shown = [(m.text, m.stable_text) for m in interims]
        assert all(a != b for a, b in itertools.pairwise(shown)), shown  # each says something new
        assert word_error_rate(texts[-1], final.text[: len(texts[-1]) + 1]) <= 0.34, (texts, final.text)
        assert 0.0 < interims[0].stability <= 1.0
        # stable_text: what two passes agreed on; the text starts with it, it only grows, the final keeps it.
        stables = [m.stable_text for m in interims]
        assert any(stables), texts
        for interim in interims:
            assert interim.text.startswith(interim.stable_text), (interim.text, interim.stable_text)
        for shorter, longer in itertools.pairwise(stables):
            assert longer.startswith(shorter), stables
        assert words(final.text)[: len(words(stables[-1]))] == words(stables[-1]), (stables[-1], final.text)


def test_a_language_whisper_does_not_know_is_refused(whisper_stub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        events_of(whisper_stub.Interpret(iter([config(sources=("tlh",), targets=("en",))]), timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tlh is not recognised by the whisper recogniser" in str(info.value.details())


def test_korean_passes_the_recogniser_and_three_languages_do_not(whisper_stub) -> None:
    # Korean is Whisper's; the refusal comes from the offline translator, which has no Korean pair.
    with pytest.raises(grpc.RpcError) as info:
        events_of(whisper_stub.Interpret(iter([config(sources=("ko-KR", "en-US"), targets=("en-US",))]), timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "apertium translator cannot translate ko into en" in str(info.value.details())
    with pytest.raises(grpc.RpcError) as info:
        events_of(whisper_stub.Interpret(iter([config(sources=("ko-KR", "en-US", "es"), targets=())]), timeout=30))
    assert "at most 2" in str(info.value.details())


def test_full_pool_is_resource_exhausted(whisper_server, whisper_stub) -> None:
    hold = threading.Event()

    def held() -> Iterator[pb.InterpretRequest]:
        yield config()
        hold.wait(30)

    calls = [whisper_stub.Interpret(held()) for _ in range(whisper_server.recognizer.capacity)]
    try:
        for call in calls:
            assert next(call).WhichOneof("event") == "session_started"
        with pytest.raises(grpc.RpcError) as info:
            events_of(whisper_stub.Interpret(iter([config()]), timeout=30))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--whisper-streams-per-worker" in str(info.value.details())
    finally:
        hold.set()
        for call in calls:
            list(call)
