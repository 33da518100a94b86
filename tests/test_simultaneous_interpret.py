"""Simultaneous interpretation over the wire: the fake Speech-to-Text's interims, the fake OpenAI, a real server.

The fake recogniser sends interims as Google does (stable words at 0.9, the
newest at 0.01, sometimes misheard), so the stable text is known in
advance; the fake OpenAI answers simultaneous requests as a model told to
continue the committed text would (``fake_continuation``), and records
every request and every cancel. Audio goes at four times real time (the
fakes and the request budget count the audio's seconds, not the wall
clock's).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import running_server, stub_for
from tests.support import fake_speech
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.fake_openai import FakeOpenAI, fake_continuation
from tests.support.fake_speech import KOREAN_BASE, FakeSpeech, word_for_id
from tests.support.tcp_proxy import proxy_to
from tongyeok_client import (
    FinalTranscript,
    InterpreterClient,
    Reconnecting,
    SessionResumed,
    TranslationComplete,
    TranslationToken,
    paced,
)
from tongyeok_client import config as client_config
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_client.proto import transcripts_pb2 as tpb
from tongyeok_client.proto import transcripts_pb2_grpc as tpb_grpc
from tongyeok_server.app import TongyeokServer

SPEED = 4.0  # times real time
EN = [[1 + (i * 12 + k) % 40 for k in range(12)] for i in range(3)]  # three English sentences of 12 words
KO = [[KOREAN_BASE + (i * 10 + k) % 21 for k in range(10)] for i in range(2)]  # two Korean ones of 10


def words(ids: list[int]) -> str:
    return " ".join(word_for_id(i)[0] for i in ids)


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeSpeech, FakeOpenAI]]:
    with FakeSpeech() as speech, FakeOpenAI(ttft_s=0.05, tokens_per_s=200) as openai:
        yield speech, openai


@pytest.fixture(scope="module")
def server(fakes: tuple[FakeSpeech, FakeOpenAI]) -> Iterator[TongyeokServer]:
    speech, openai = fakes
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "sk-test-simultaneous")
        with running_server(
            recognizer="google",
            google_endpoint=speech.address,
            google_insecure=True,
            google_project="test-project",
            translator="openai",
            openai_base_url=openai.base_url,
            synthesizer="openai",
            resume_window_s=30.0,
        ) as server:
            yield server


@pytest.fixture
def openai(fakes: tuple[FakeSpeech, FakeOpenAI]) -> Iterator[FakeOpenAI]:
    fake = fakes[1]
    fake.reset()
    fake.ttft_s, fake.tokens_per_s = 0.05, 200
    yield fake
    assert fake.wait_idle(5), "a request was left open"


@pytest.fixture
def stub(server: TongyeokServer) -> Iterator[pb_grpc.InterpreterStub]:
    channel, stub = stub_for(server)
    with channel:
        yield stub


def simultaneous(**options: Any) -> dict[str, Any]:
    return {"mode": pb.INTERPRETATION_MODE_SIMULTANEOUS, "tentative_translations": True, **options}


def interpret(
    stub: pb_grpc.InterpreterStub,
    utterances: list[list[int]],
    *,
    sources: tuple[str, ...] = ("en-US",),
    targets: tuple[str, ...] = ("es",),
    **options: Any,
) -> list[tuple[str, Any]]:
    speech = options.pop("speech", None)

    def requests() -> Iterator[pb.InterpretRequest]:
        request = config(sources=sources, targets=targets, interim=True, **simultaneous(**options))
        if speech is not None:
            request.config.speech_output.CopyFrom(speech)
        yield request
        yield from audio_requests(fake_speech.synthesize(utterances), 3200, pace_s=0.1 / SPEED)

    return events_of(stub.Interpret(requests(), timeout=60))


def check_committed(events: list[tuple[str, Any]]) -> dict[tuple[int, str], str]:
    """Tokens are committed text: never reset, and per utterance and language they add up to the complete text."""
    assert not of_kind(events, "translation_reset")
    sent: dict[tuple[int, str], str] = defaultdict(str)
    for token in of_kind(events, "translation_token"):
        sent[(token.utterance_id, token.target_language_code)] += token.text
    completes = {(c.utterance_id, c.target_language_code): c.text for c in of_kind(events, "translation_complete")}
    assert sent.keys() == completes.keys()
    for key, text in completes.items():
        assert sent[key] == text, key
    return completes


def early(events: list[tuple[str, Any]]) -> dict[tuple[int, str], str]:
    """The text committed for each utterance and language before the utterance's final transcript."""
    finalised: set[int] = set()
    out: dict[tuple[int, str], str] = defaultdict(str)
    for kind, e in events:
        if kind == "final_transcript":
            finalised.add(e.utterance_id)
        elif kind == "translation_token" and e.utterance_id not in finalised:
            out[(e.utterance_id, e.target_language_code)] += e.text
    return dict(out)


def test_committed_text_comes_while_speaking_and_is_never_taken_back(
    stub: pb_grpc.InterpreterStub, openai: FakeOpenAI, server: TongyeokServer
) -> None:
    events = interpret(stub, EN)
    completes = check_committed(events)
    finals = of_kind(events, "final_transcript")
    assert [f.text for f in finals] == [words(u) for u in EN]
    # Each sentence's translation began before its final, and the final continued it.
    before = early(events)
    for final in finals:
        expected = fake_continuation(final.text, "en-US", "es", "")
        assert completes[(final.utterance_id, "es")] == expected
        assert len(before.get((final.utterance_id, "es"), "").split()) >= 5, before
    # Tentative text follows the committed text and is replaced; it never appears in a complete translation
    # on its own (the misheard words the fake recogniser sends are never stable, so never translated).
    assert of_kind(events, "translation_tentative")
    requests = [r for r in openai.requests if r.kind == "partial"]
    assert requests and all(r.committed is not None for r in openai.requests)
    assert all(set(r.sentence.split()) <= set(" ".join(words(u) for u in EN).split()) for r in requests)
    # The meeting record keeps the complete translations and the session's mode.
    (started,) = of_kind(events, "session_started")
    assert server.record is not None and server.record.writer.wait_idle(30)
    channel, _ = stub_for(server)
    with channel:
        transcripts = tpb_grpc.TranscriptsStub(channel)  # type: ignore[no-untyped-call]
        record = transcripts.GetSession(tpb.GetSessionRequest(name=f"sessions/{started.session_id}"), timeout=10)
    assert record.config.translation_options.mode == pb.INTERPRETATION_MODE_SIMULTANEOUS
    kept = {(u.utterance_id, t.language_code): t.text for u in record.utterances for t in u.translations}
    assert kept == completes


def test_stale_requests_are_cancelled_and_the_fake_sees_each_cancel(
    stub: pb_grpc.InterpreterStub, openai: FakeOpenAI
) -> None:
    openai.ttft_s = 0.4  # slower than the budget's pace at this speed: a longer prefix comes first
    events = interpret(stub, EN[:2])
    check_committed(events)
    assert openai.wait_idle(5)
    cancelled = [r for r in openai.disconnects if r.kind == "partial"]
    assert cancelled, [(r.kind, r.outcome) for r in openai.requests]
    assert {r.outcome for r in openai.requests} <= {"completed", "disconnected"}
    # The budget: at most 1.5 requests per second of speech on average (the bucket's 2 allowed at the start).
    speech_s = sum(end - start for start, end in spans(EN[:2]))
    assert len(openai.requests) <= 1.5 * speech_s + 2, (len(openai.requests), speech_s)
    (started,) = of_kind(events, "session_started")
    assert started.simultaneous_directions[0].max_requests_per_speech_second == pytest.approx(1.5)


def spans(utterances: list[list[int]]) -> list[tuple[float, float]]:
    timing = fake_speech.Timing()
    starts = [timing.lead_in_s, *[nxt for _, nxt in fake_speech.utterance_ends_s(utterances)][:-1]]
    return [(s, e) for s, (e, _) in zip(starts, fake_speech.utterance_ends_s(utterances), strict=True)]


def test_korean_into_english_with_the_documented_lag_default(stub: pb_grpc.InterpreterStub, openai: FakeOpenAI) -> None:
    events = interpret(stub, KO, sources=("ko-KR",), targets=("en",))
    (started,) = of_kind(events, "session_started")
    (direction,) = started.simultaneous_directions
    assert (direction.source_language_code, direction.target_language_code) == ("ko-KR", "en")
    # Korean is verb-final: one stable word held back (English sources: none), two agreeing passes.
    assert (direction.latency, direction.holdback_words, direction.agreement) == (
        pb.SIMULTANEOUS_LATENCY_BALANCED,
        1,
        2,
    )
    completes = check_committed(events)
    before = early(events)
    for final in of_kind(events, "final_transcript"):
        key = (final.utterance_id, "en")
        assert before.get(key), "nothing committed before the final"
        # The last words of the sentence (the newest, unstable, and the one held back) were never in a partial.
        partials = [r for r in openai.requests if r.kind == "partial" and final.text.startswith(r.sentence)]
        assert max(len(r.sentence.split()) for r in partials) <= len(final.text.split()) - 2
        # The final asked for the rest after what was committed, and the sentence's verb came with it.
        (last,) = [r for r in openai.requests if r.kind == "final" and r.sentence == final.text]
        assert last.committed and completes[key].startswith(last.committed)
        assert all(word in completes[key] for word in final.text.split())


def test_glossary_context_and_style_hold_for_partial_sentences(
    stub: pb_grpc.InterpreterStub, openai: FakeOpenAI
) -> None:
    glossary = [pb.GlossaryEntry(source_term="proposal", target_term="propuesta"), pb.GlossaryEntry(source_term="team")]
    events = interpret(stub, EN[:2], style=pb.TRANSLATION_STYLE_BUSINESS, glossary=glossary)
    check_committed(events)
    first = words(EN[0])
    partials = [r for r in openai.requests if r.kind == "partial"]
    assert partials
    for r in partials:
        assert "professional business interpreter" in r.system_prompt  # the register, partial sentences included
        assert 'Render "proposal" as "propuesta".' in r.system_prompt and 'Keep "team" exactly' in r.system_prompt
        assert "never guess or complete what has not been said" in r.system_prompt
    second = [r for r in partials if r.sentence and words(EN[1]).startswith(r.sentence)]
    assert second and all(f"[en-US] {first}" in r.user_prompt for r in second)  # the sentence before, as context


def test_two_way_conversation(stub: pb_grpc.InterpreterStub, openai: FakeOpenAI) -> None:
    utterances = [EN[0], KO[0], EN[1]]
    events = interpret(stub, utterances, sources=("en-US", "ko-KR"), targets=())
    completes = check_committed(events)
    finals = of_kind(events, "final_transcript")
    assert [f.language_code for f in finals] == ["en-US", "ko-KR", "en-US"]
    assert set(completes) == {(f.utterance_id, "ko-KR" if f.language_code == "en-US" else "en-US") for f in finals}
    before = early(events)
    assert all(before.get(key) for key in completes), before
    (started,) = of_kind(events, "session_started")
    holdback = {d.source_language_code: d.holdback_words for d in started.simultaneous_directions}
    assert holdback == {"en-US": 0, "ko-KR": 1}


def test_several_targets_each_commit_their_own_text(stub: pb_grpc.InterpreterStub, openai: FakeOpenAI) -> None:
    events = interpret(stub, EN[:2], targets=("es", "ko", "ja"))
    completes = check_committed(events)
    assert {t for _, t in completes} == {"es", "ko", "ja"}
    before = early(events)
    for final in of_kind(events, "final_transcript"):
        for target in ("es", "ko", "ja"):
            assert completes[(final.utterance_id, target)] == fake_continuation(final.text, "en-US", target, "")
            assert before.get((final.utterance_id, target)), (final.utterance_id, target)


def test_committed_clauses_are_spoken_before_the_sentence_ends(
    stub: pb_grpc.InterpreterStub, openai: FakeOpenAI
) -> None:
    speech = pb.SpeechOutputConfig(encoding=pb.SPEECH_ENCODING_LINEAR16, sample_rate_hertz=24000)
    events = interpret(stub, EN, speech=speech)
    completes = check_committed(events)
    finals = {f.utterance_id: i for i, (k, f) in enumerate(events) if k == "final_transcript"}
    audio = [(i, e) for i, (k, e) in enumerate(events) if k == "translation_audio"]
    spoken_early = {e.utterance_id for i, e in audio if i < finals[e.utterance_id]}
    # Speech of committed words began before the sentence was over (most sentences: on a loaded machine the
    # first one's voice can come a moment after its final).
    assert len(spoken_early) >= len(finals) - 1, (spoken_early, finals)
    # Every committed word was spoken once, in order: what the fake's speech endpoint was asked to say.
    said: dict[int, list[str]] = defaultdict(list)
    for r in openai.requests:
        if r.kind == "speech":
            utterance = next(u for (u, _), text in completes.items() if r.sentence in text)
            said[utterance].append(r.sentence)
    for (uid, _), text in completes.items():
        assert " ".join(said[uid]).split() == text.split()
    for uid in finals:
        chunks = [e for _, e in audio if e.utterance_id == uid]
        assert [c.sequence_number for c in chunks] == list(range(len(chunks))) and chunks[-1].last_chunk


def test_a_resume_mid_sentence_neither_repeats_nor_loses_committed_text(
    server: TongyeokServer, openai: FakeOpenAI
) -> None:
    utterances = EN[:3]
    audio = fake_speech.synthesize(utterances)
    chunks = [audio[i : i + 3200] for i in range(0, len(audio), 3200)]
    with proxy_to(server.port) as proxy:
        client = InterpreterClient(f"127.0.0.1:{proxy.port}")
        cfg = client_config(source="en-US", target="es", simultaneous=True)
        seen: list[Any] = []
        cut = threading.Event()

        def run() -> None:
            for event in client.interpret(cfg, paced(chunks, 0.1, SPEED)):
                seen.append(event)
                if isinstance(event, TranslationToken) and event.utterance_id == 2 and not cut.is_set():
                    cut.set()  # committed text of sentence 2 is out, its final is not: break the network now

        thread = threading.Thread(target=run)
        thread.start()
        assert cut.wait(30)
        proxy.cut()
        thread.join(60)
        client.close()
    assert any(isinstance(e, Reconnecting) for e in seen) and any(isinstance(e, SessionResumed) for e in seen)
    finals = [e for e in seen if isinstance(e, FinalTranscript)]
    assert [f.text for f in finals] == [words(u) for u in utterances]
    sent: dict[int, str] = defaultdict(str)
    for e in seen:
        if isinstance(e, TranslationToken):
            sent[e.utterance_id] += e.text
    completes = {e.utterance_id: e.text for e in seen if isinstance(e, TranslationComplete)}
    assert completes == dict(sent)
    for f in finals:
        assert completes[f.utterance_id] == fake_continuation(f.text, "en-US", "es", "")
    numbers = [e.raw.sequence_number for e in seen if getattr(e.raw, "sequence_number", 0)]
    assert numbers == sorted(set(numbers))  # nothing delivered twice


def test_committed_text_on_the_embedded_engines(offline_stub: pb_grpc.InterpreterStub, speech: Any) -> None:
    """pocketsphinx's stable text (agreed hypotheses) and Apertium's re-translations, on real speech."""

    def requests() -> Iterator[pb.InterpretRequest]:
        yield config(**simultaneous())
        yield from audio_requests(speech.pcm(), 3200, pace_s=0.1 / 2)

    started_at = time.monotonic()
    events = events_of(offline_stub.Interpret(requests(), timeout=120))
    assert time.monotonic() - started_at < 60
    completes = check_committed(events)
    assert len(completes) == len(speech.sentences)
    before = early(events)
    assert sum(bool(before.get(key)) for key in completes) >= 2, before  # the longer sentences began early
