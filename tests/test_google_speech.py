"""Google Cloud Text-to-Speech over the wire: the real client library's types and transport against the fake.

The translations come from the fake OpenAI chat (streamed tokens), so speech
can start before a translation is complete; the fake speaks every word as a
tone, which ``heard_tones`` reads back from the decoded audio.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.cloud.texttospeech_v1.types import cloud_tts

from tests.conftest import running_server, stub_for
from tests.support import fake_speech
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.certs import local_certificates
from tests.support.fake_oauth import FakeTokenEndpoint
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_speech import FakeSpeech
from tests.support.fake_tts import FakeTextToSpeech, heard_tones, tones_of
from tests.support.speech_audio import decode, utterance_audio
from tongyeok_client.backoff import Backoff
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_server.app import TongyeokServer
from tongyeok_server.settings import Settings
from tongyeok_server.synthesis import google_calls, google_engine
from tongyeok_server.synthesis.extension import SpeechExtension
from tongyeok_server.synthesis.google_engine import GoogleSynthesizer

TEXT = "Buenos días a todos. Nos gustaría hablar del contrato hoy, y del precio."
PCM = cloud_tts.AudioEncoding.PCM
ENCODINGS = {
    pb.SPEECH_ENCODING_LINEAR16: "LINEAR16",
    pb.SPEECH_ENCODING_OGG_OPUS: "OGG_OPUS",
    pb.SPEECH_ENCODING_MULAW: "MULAW",
    pb.SPEECH_ENCODING_ALAW: "ALAW",
}


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(tokens_per_s=40) as fake:
        yield fake


@pytest.fixture(scope="module")
def tts() -> Iterator[FakeTextToSpeech]:
    with FakeTextToSpeech() as fake:
        yield fake


def google_settings(tts: FakeTextToSpeech, openai_fake: FakeOpenAI) -> dict[str, Any]:
    return {
        "translator": "openai",
        "openai_base_url": openai_fake.base_url,
        "synthesizer": "google",
        "google_insecure": True,
        "google_tts_endpoint": tts.address,
    }


@pytest.fixture(scope="module")
def server(tts: FakeTextToSpeech, openai_fake: FakeOpenAI) -> Iterator[TongyeokServer]:
    previous = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = "sk-test-google-speech"
    try:
        with running_server(**google_settings(tts, openai_fake)) as server:
            yield server
    finally:
        if previous is None:
            os.environ.pop("OPENAI_API_KEY", None)
        else:
            os.environ["OPENAI_API_KEY"] = previous


@pytest.fixture
def stub(server: TongyeokServer, tts: FakeTextToSpeech, openai_fake: FakeOpenAI) -> Iterator[pb_grpc.InterpreterStub]:
    tts.clear_faults()
    tts.speech_rtf = 0.0
    tts.calls.clear()
    openai_fake.reset()
    channel, stub = stub_for(server)
    with channel:
        yield stub


def request(
    encoding: int = pb.SPEECH_ENCODING_LINEAR16, rate: int = 24000, voice: str = "", **kw: Any
) -> pb.TranslateTextRequest:
    speech = pb.SpeechOutputConfig(encoding=encoding, sample_rate_hertz=rate, **kw)  # type: ignore[arg-type]
    if voice:
        speech.voices.add(language_code="en", voice=voice)
    return pb.TranslateTextRequest(
        text=TEXT, source_language_code="es", target_language_codes=["en"], speech_output=speech
    )


def spoken(events: list[tuple[str, Any]], encoding: int, rate: int) -> tuple[list[int], list[int]]:
    """(tones heard in the one utterance's audio, tones of its translation)."""
    (complete,) = of_kind(events, "translation_complete")
    (audio,) = utterance_audio(events, "en").values()
    samples, file_rate = decode(audio, encoding, rate)
    assert file_rate == rate
    return heard_tones(samples, rate), tones_of(complete.text)


def test_speech_starts_before_the_translation_is_complete_one_stream_per_utterance(stub, tts: FakeTextToSpeech) -> None:
    events = events_of(stub.TranslateText(request(), timeout=60))
    kinds = [k for k, _ in events]
    assert kinds.index("translation_audio") < kinds.index("translation_complete")
    heard, said = spoken(events, pb.SPEECH_ENCODING_LINEAR16, 24000)
    assert heard == said and len(said) >= 10
    (call,) = tts.streaming_calls()
    assert call.voice == "en-US-Chirp3-HD-Charon"  # the default: a streaming voice of the usual locale
    assert call.encoding == PCM and call.sample_rate_hz == 24000
    assert len(call.inputs) >= 2, "one input per clause, in one call"
    (complete,) = of_kind(events, "translation_complete")
    assert " ".join(call.inputs).split() == complete.text.split()


@pytest.mark.parametrize(
    ("voice", "encoding", "rate", "asked"),
    [
        ("", pb.SPEECH_ENCODING_LINEAR16, 16000, "PCM"),
        ("", pb.SPEECH_ENCODING_OGG_OPUS, 48000, "OGG_OPUS"),
        ("", pb.SPEECH_ENCODING_MULAW, 8000, "MULAW"),
        ("", pb.SPEECH_ENCODING_ALAW, 8000, "ALAW"),
        ("en-US-Neural2-D", pb.SPEECH_ENCODING_LINEAR16, 24000, "LINEAR16"),
        ("en-US-Neural2-D", pb.SPEECH_ENCODING_MULAW, 8000, "MULAW"),
        ("en-US-Neural2-D", pb.SPEECH_ENCODING_OGG_OPUS, 16000, "LINEAR16"),  # encoded by the server
    ],
)
def test_each_encoding_decodes_at_the_rate_asked_and_says_every_word(
    stub, tts: FakeTextToSpeech, voice: str, encoding: int, rate: int, asked: str
) -> None:
    events = events_of(stub.TranslateText(request(encoding, rate, voice), timeout=60))
    assert not of_kind(events, "notice")
    heard, said = spoken(events, encoding, rate)
    assert heard == said
    audio = of_kind(events, "translation_audio")
    assert {(a.encoding, a.sample_rate_hertz) for a in audio} == {(encoding, rate)}
    calls = [c for c in tts.calls if c.method != "ListVoices"]
    assert calls and {cloud_tts.AudioEncoding(c.encoding).name for c in calls} == {asked}
    assert {c.sample_rate_hz for c in calls} == {rate}, "Google is asked for the caller's rate"
    per_clause = [c for c in calls if c.method == "SynthesizeSpeech"]
    assert len(per_clause) == (len(calls) if voice else 0)
    if encoding == pb.SPEECH_ENCODING_OGG_OPUS:
        assert all(a.audio.startswith(b"OggS") for a in audio if a.audio), "whole Ogg pages per chunk"


def test_speaking_rate_reaches_google(stub, tts: FakeTextToSpeech) -> None:
    events = events_of(stub.TranslateText(request(speaking_rate=1.6), timeout=60))
    (call,) = tts.streaming_calls()
    assert call.speaking_rate == pytest.approx(1.6)
    heard, said = spoken(events, pb.SPEECH_ENCODING_LINEAR16, 24000)
    assert heard == said


def test_a_reset_translation_resends_its_audio_and_closes_the_old_call(
    stub, tts: FakeTextToSpeech, openai_fake: FakeOpenAI
) -> None:
    tts.speech_rtf = 0.5  # the first clause is still being spoken when the translation breaks off
    openai_fake.cut(8, path="/v1/chat/completions")
    events = events_of(stub.TranslateText(request(), timeout=60))
    kinds = [k for k, _ in events]
    reset = kinds.index("translation_reset")
    assert "translation_audio" in kinds[:reset]
    after = [m for k, m in events[reset:] if k == "translation_audio"]
    assert after[0].sequence_number == 0
    heard, said = spoken(events, pb.SPEECH_ENCODING_LINEAR16, 24000)  # drops what the reset voided
    assert heard == said
    first, *rest = tts.streaming_calls()
    assert first.done.wait(5) and first.cancelled, "the reset closed the Google call"
    assert rest and not rest[-1].cancelled


def test_a_callers_cancel_reaches_google_as_a_disconnect_at_once(stub, tts: FakeTextToSpeech) -> None:
    tts.speech_rtf = 1.0  # real time: the utterance takes seconds to speak
    call = stub.TranslateText(request(), timeout=60)
    for response in call:
        if response.WhichOneof("event") == "translation_audio":
            break
    cancelled_at = time.monotonic()
    call.cancel()
    (google,) = tts.streaming_calls()
    assert google.done.wait(5)
    assert google.cancelled
    assert google.ended_at - cancelled_at < 2.0


def test_a_transient_failure_before_any_audio_is_retried(stub, tts: FakeTextToSpeech, monkeypatch) -> None:
    monkeypatch.setattr(google_engine, "BACKOFF", Backoff(0.01, 0.01))
    tts.fail(grpc.StatusCode.UNAVAILABLE, method="StreamingSynthesize")
    events = events_of(stub.TranslateText(request(), timeout=60))
    assert not of_kind(events, "notice")
    heard, said = spoken(events, pb.SPEECH_ENCODING_LINEAR16, 24000)
    assert heard == said
    first, second = tts.streaming_calls()
    assert first.status is grpc.StatusCode.UNAVAILABLE and second.status is grpc.StatusCode.OK


def test_a_refusal_is_a_synthesis_failed_notice_in_our_words_and_the_text_goes_on(
    stub, tts: FakeTextToSpeech, caplog: pytest.LogCaptureFixture
) -> None:
    inside = "Permission 'texttospeech.synthesize' denied on resource 'projects/acme-prod-4711'."
    tts.fail(grpc.StatusCode.PERMISSION_DENIED, message=inside, times=-1)
    with caplog.at_level(logging.WARNING, logger="tongyeok_server.synthesis.speaker"):
        events = events_of(stub.TranslateText(request(), timeout=60))
    (notice,) = of_kind(events, "notice")
    assert notice.code == pb.NOTICE_CODE_SYNTHESIS_FAILED and notice.target_language_code == "en"
    message = notice.message
    assert "PERMISSION_DENIED" in message and "Text-to-Speech" in message and "Application Default" in message
    assert "acme-prod" not in message and tts.address not in message and "127.0.0.1" not in message
    assert any("acme-prod-4711" in r.getMessage() for r in caplog.records), "Google's words are in the log"
    assert of_kind(events, "translation_complete") and not of_kind(events, "translation_audio")
    assert len(tts.streaming_calls()) == 1, "a refusal is not retried"


def test_a_failure_after_audio_was_sent_ends_that_audio_with_a_notice(stub, tts: FakeTextToSpeech) -> None:
    tts.fail(grpc.StatusCode.UNAVAILABLE, method="StreamingSynthesize", after_inputs=1)
    events = events_of(stub.TranslateText(request(), timeout=60))
    (notice,) = of_kind(events, "notice")
    assert notice.code == pb.NOTICE_CODE_SYNTHESIS_FAILED and "UNAVAILABLE" in notice.message
    audio = of_kind(events, "translation_audio")
    assert audio and not any(a.last_chunk for a in audio)  # what was spoken stands; the notice ends it
    assert of_kind(events, "translation_complete")
    assert len(tts.streaming_calls()) == 1, "audio already sent: not retried (it would be said twice)"


def test_list_languages_lists_googles_voices(stub) -> None:
    response = stub.ListLanguages(pb.ListLanguagesRequest(), timeout=10)
    assert response.synthesizer.name == "google" and "8 voices" in response.synthesizer.detail
    by_language = {v.language_code: v for v in response.voices}
    english = by_language["en"]
    assert english.default_voice == "en-US-Chirp3-HD-Charon"
    names = {v.name: v.description for v in english.voices}
    assert "streams" in names["en-US-Chirp3-HD-Kore"] and "per clause" in names["en-US-Neural2-D"]
    assert by_language["ko"].default_voice == "ko-KR-Chirp3-HD-Charon"


def test_interpret_speaks_every_utterance_in_order_through_the_fakes(
    tts: FakeTextToSpeech, openai_fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-google-speech")
    tts.clear_faults()
    tts.speech_rtf = 0.0
    openai_fake.reset()
    utterances = [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10, 11]]
    with (
        FakeSpeech() as speech,
        running_server(
            recognizer="google",
            google_endpoint=speech.address,
            google_project="test",
            **google_settings(tts, openai_fake),
        ) as server,
    ):

        def requests() -> Iterator[pb.InterpretRequest]:
            first = config(sources=("en-US",), targets=("es",))
            first.config.speech_output.SetInParent()
            yield first
            yield from audio_requests(fake_speech.synthesize(utterances), 3200)

        channel, stub = stub_for(server)
        with channel:
            events = events_of(stub.Interpret(requests(), timeout=60))
    completes = {c.utterance_id: c.text for c in of_kind(events, "translation_complete")}
    audio = utterance_audio(events, "es")  # checks order and no interleaving
    assert list(audio) == sorted(completes) and len(audio) == 3
    for uid, data in audio.items():
        samples, rate = decode(data, pb.SPEECH_ENCODING_LINEAR16, 24000)
        assert heard_tones(samples, rate) == tones_of(completes[uid])
    assert of_kind(events, "translation_audio")[-1].last_chunk
    assert all(c.voice == "es-ES-Chirp3-HD-Charon" for c in tts.streaming_calls())


# -- the credential, over TLS (gRPC sends call credentials only on a secure channel) --


@pytest.fixture
def tokens() -> Iterator[FakeTokenEndpoint]:
    with FakeTokenEndpoint() as endpoint:
        yield endpoint


def test_a_refused_credential_is_unauthenticated_at_once_and_never_reaches_google(
    tokens: FakeTokenEndpoint, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    certs = local_certificates()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(certs.ca_pem)
    tokens.revoke()
    credentials = tokens.user_credentials()
    server_credentials = grpc.ssl_server_credentials([(certs.server_key_pem, certs.server_cert_pem)])
    with FakeTextToSpeech(server_credentials=server_credentials) as tls_tts:
        settings = Settings.of(synthesizer="google", google_tts_endpoint=tls_tts.address, google_ca_file=str(ca_file))
        synthesizer = GoogleSynthesizer(settings.synthesis, settings.google, credentials=credentials)
        with (
            caplog.at_level(logging.WARNING),
            running_server(translator="apertium", extensions=[SpeechExtension(synthesizer)]) as server,
        ):
            # The server's start lists the voices on its loop: refused, the built-in list stands in, the log says why.
            assert "built-in" in synthesizer.description.detail
            assert any("UNAUTHENTICATED" in r.getMessage() for r in caplog.records)
            channel, stub = stub_for(server)
            with channel:
                started = time.monotonic()
                events = events_of(stub.TranslateText(request(voice="en-US-Chirp3-HD-Charon"), timeout=30))
                elapsed = time.monotonic() - started
        (notice,) = of_kind(events, "notice")
        assert notice.code == pb.NOTICE_CODE_SYNTHESIS_FAILED
        assert notice.message.startswith("speaking the translation into en failed (UNAUTHENTICATED: ")
        assert "invalid_grant" in notice.message and "gcloud auth application-default login" in notice.message
        assert "Token has been expired" not in notice.message
        assert of_kind(events, "translation_complete")
        assert elapsed < 10  # generous: the translation itself takes most of it
        assert len(tokens.requests) == 2, "one renewal at start-up, one for the utterance: no retry"
        assert tls_tts.calls == [], "no call reached Google"


def test_every_call_carries_the_renewed_token_and_the_fake_checks_it(tokens: FakeTokenEndpoint, tmp_path: Path) -> None:
    """Over TLS the fake accepts only a token the token endpoint issued, on ListVoices and on speech alike."""
    certs = local_certificates()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(certs.ca_pem)
    server_credentials = grpc.ssl_server_credentials([(certs.server_key_pem, certs.server_cert_pem)])
    with FakeTextToSpeech(
        server_credentials=server_credentials, accept_token=lambda token: token in tokens.issued
    ) as tls_tts:
        settings = Settings.of(synthesizer="google", google_tts_endpoint=tls_tts.address, google_ca_file=str(ca_file))
        synthesizer = GoogleSynthesizer(settings.synthesis, settings.google, credentials=tokens.user_credentials())
        with running_server(translator="apertium", extensions=[SpeechExtension(synthesizer)]) as server:
            assert "built-in" not in synthesizer.description.detail  # Google's list: the token was accepted
            channel, stub = stub_for(server)
            with channel:
                events = events_of(stub.TranslateText(request(voice="en-US-Chirp3-HD-Charon"), timeout=30))
        assert of_kind(events, "translation_audio") and not of_kind(events, "notice")
        assert [c.method for c in tls_tts.calls] == ["ListVoices", "StreamingSynthesize"]
        assert all(c.authorization.removeprefix("Bearer ") in tokens.issued for c in tls_tts.calls)
        tls_tts.accept_token = lambda token: False  # a token Google no longer accepts
        refused = GoogleSynthesizer(settings.synthesis, settings.google, credentials=tokens.user_credentials())
        asyncio.run(refused.load_voices())
        assert "built-in" in refused.description.detail
        assert tls_tts.calls[-1].status == grpc.StatusCode.UNAUTHENTICATED


def test_a_clause_over_googles_input_limit_is_cut_within_it(tts: FakeTextToSpeech) -> None:
    """Google refuses an input over 5000 bytes (the fake too); a long unpunctuated clause is cut at spaces."""
    long_korean = " ".join(["가격에는배송과지원이포함되어있습니다"] * 200)  # ~10 kB of UTF-8, no punctuation
    unbroken = "가" * 3000  # 9000 bytes without a space

    async def pieces(text: str) -> list[str]:
        async def one() -> AsyncIterator[str]:
            yield text

        return [p async for p in google_calls.within_input_limit(one())]

    for text in (long_korean, unbroken, "short"):
        cut = asyncio.run(pieces(text))
        assert "".join(cut).replace(" ", "") == text.replace(" ", "")
        assert all(len(p.encode()) <= google_calls.MAX_INPUT_BYTES for p in cut)
    channel = grpc.insecure_channel(tts.address)
    with channel:
        synthesize = channel.unary_unary(
            "/google.cloud.texttospeech.v1.TextToSpeech/SynthesizeSpeech",
            request_serializer=cloud_tts.SynthesizeSpeechRequest.serialize,
            response_deserializer=cloud_tts.SynthesizeSpeechResponse.deserialize,
        )
        with pytest.raises(grpc.RpcError) as info:
            synthesize(
                cloud_tts.SynthesizeSpeechRequest(
                    input=cloud_tts.SynthesisInput(text=long_korean),
                    voice=cloud_tts.VoiceSelectionParams(language_code="ko-KR", name="ko-KR-Chirp3-HD-Charon"),
                    audio_config=cloud_tts.AudioConfig(audio_encoding=cloud_tts.AudioEncoding.LINEAR16),
                ),
                timeout=10,
            )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "longer than the limit of 5000 bytes" in str(info.value.details())
