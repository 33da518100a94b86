"""Malformed Interpret streams end with INVALID_ARGUMENT and a message a person can act on."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.support.calls import config, events_of, of_kind
from tongyeok_client.proto import interpreter_pb2 as pb


def call(stub, requests: list[pb.InterpretRequest]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        events_of(stub.Interpret(iter(requests), timeout=30))
    return info.value


def audio(n: int) -> pb.InterpretRequest:
    return pb.InterpretRequest(audio=b"\x00" * n)


def speaking(request: pb.InterpretRequest) -> pb.InterpretRequest:
    request.config.speech_output.SetInParent()
    return request


@pytest.mark.parametrize(
    ("requests", "needle"),
    [
        ([], "ended before its config"),
        ([audio(320), config()], "first message must carry `config`"),
        ([config(), audio(320), config()], "message 3 carries a second `config`"),
        ([config(), audio(320), audio(321)], "audio chunk 2 has 321 bytes, not a whole number of 2-byte frames"),
        ([config(channels=2), audio(642)], "not a whole number of 4-byte frames"),
        ([config(), pb.InterpretRequest()], "message 2 is empty"),
        ([config(sources=["ko-KR"])], "ko-KR is not recognised by the pocketsphinx recogniser; available: en-US"),
        ([config(sources=["en-US", "ko-KR"])], "two-way conversations need a multilingual recogniser"),
        ([config(sources=[])], "source_language_codes is empty"),
        ([config(sources=["english"])], "'english' is not a BCP-47 language code"),
        ([config(targets=["ko"])], "cannot translate en into ko; available pairs: en->es"),
        ([speaking(config(targets=[]))], "speech_output needs a language to speak"),
        ([config(targets=["en"])], "en-US is the source language"),
        (
            [config(encoding=pb.AUDIO_ENCODING_UNSPECIFIED)],
            "encoding is AUDIO_ENCODING_UNSPECIFIED; supported encodings: LINEAR16, MULAW, ALAW",
        ),
        ([config(rate=4000)], "sample_rate_hertz is 4000; supported: 8000 to 48000 Hz"),
        ([config(rate=96000)], "sample_rate_hertz is 96000"),
        ([config(channels=3)], "channel_count is 3; supported: 1 (mono) or 2 (stereo)"),
        (
            [
                pb.InterpretRequest(
                    config=pb.InterpretConfig(source_language_codes=["en-US"], target_language_codes=["es"])
                )
            ],
            "audio_format is required",
        ),
        ([config(context_sentences=51)], "context_sentences is 51; at most 50"),
        ([config(glossary=[pb.GlossaryEntry(source_term=" ")])], "glossary[0].source_term is empty"),
        ([config(mode=7)], "translation_options.mode is 7; supported: CONSECUTIVE, SIMULTANEOUS"),
        (
            [config(mode=pb.INTERPRETATION_MODE_SIMULTANEOUS, latency=9)],
            "translation_options.latency is 9; supported: LOW, BALANCED, ACCURATE",
        ),
    ],
    ids=[
        "empty-stream",
        "audio-before-config",
        "second-config",
        "odd-linear16",
        "partial-stereo-frame",
        "empty-message",
        "unsupported-language",
        "two-way-on-monolingual",
        "no-source",
        "malformed-tag",
        "unsupported-pair",
        "speech-without-target",
        "target-is-source",
        "unspecified-encoding",
        "rate-too-low",
        "rate-too-high",
        "three-channels",
        "no-audio-format",
        "too-much-context",
        "blank-glossary-term",
        "unknown-mode",
        "unknown-latency",
    ],
)
def test_bad_stream_is_invalid_argument_with_clear_message(offline_stub, requests, needle) -> None:
    error = call(offline_stub, requests)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert needle in str(error.details())


def test_error_after_config_keeps_events_already_sent(offline_stub) -> None:
    """A protocol error mid-stream still delivers the session_started event first."""
    seen: list[str] = []

    def requests() -> Iterator[pb.InterpretRequest]:
        yield config()
        yield audio(320)
        yield audio(3)

    with pytest.raises(grpc.RpcError) as info:
        for response in offline_stub.Interpret(requests(), timeout=30):
            seen.append(response.WhichOneof("event"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert seen[0] == "session_started"


def test_effective_config_fills_defaults(offline_stub) -> None:
    events = events_of(offline_stub.Interpret(iter([config(sources=["en"], targets=["ES"])]), timeout=30))
    (started,) = of_kind(events, "session_started")
    eff = started.effective_config
    assert list(eff.source_language_codes) == ["en-US"]
    assert list(eff.target_language_codes) == ["es"]
    assert eff.audio_format.channel_count == 1
    # What the engine applies: Apertium is literal and translates each sentence alone.
    assert eff.translation_options.style == pb.TRANSLATION_STYLE_LITERAL
    assert eff.translation_options.context_sentences == -1
    assert started.recognizer.name == "pocketsphinx"
    assert started.translator.name == "apertium"
    # Nothing was asked for, so nothing is reported as ignored.
    assert list(started.ignored_options) == []
    assert started.session_id
    assert eff.translation_options.mode == pb.INTERPRETATION_MODE_CONSECUTIVE
    assert not started.simultaneous_directions


def test_simultaneous_mode_reports_the_pacing_the_server_chose(offline_stub) -> None:
    request = config(mode=pb.INTERPRETATION_MODE_SIMULTANEOUS, tentative_translations=True)
    events = events_of(offline_stub.Interpret(iter([request]), timeout=30))
    (started,) = of_kind(events, "session_started")
    options = started.effective_config.translation_options
    assert options.mode == pb.INTERPRETATION_MODE_SIMULTANEOUS
    assert options.latency == pb.SIMULTANEOUS_LATENCY_BALANCED  # the server's default, filled in
    assert options.tentative_translations
    (direction,) = started.simultaneous_directions
    assert (direction.source_language_code, direction.target_language_code) == ("en-US", "es")
    assert (direction.latency, direction.holdback_words, direction.agreement) == (
        pb.SIMULTANEOUS_LATENCY_BALANCED,
        0,
        2,
    )
    assert direction.max_requests_per_speech_second == 0  # Apertium is local: no request budget
    accurate = config(mode=pb.INTERPRETATION_MODE_SIMULTANEOUS, latency=pb.SIMULTANEOUS_LATENCY_ACCURATE)
    (started,) = of_kind(events_of(offline_stub.Interpret(iter([accurate]), timeout=30)), "session_started")
    assert (started.simultaneous_directions[0].holdback_words, started.simultaneous_directions[0].agreement) == (2, 3)


def test_requested_options_the_engine_cannot_honour_are_reported(offline_stub) -> None:
    request = config(style=pb.TRANSLATION_STYLE_BUSINESS, context_sentences=3)
    events = events_of(offline_stub.Interpret(iter([request]), timeout=30))
    (started,) = of_kind(events, "session_started")
    assert [reason.split(":")[0] for reason in started.ignored_options] == [
        "translation_options.style",
        "translation_options.context_sentences",
    ]


def test_list_languages(offline_stub) -> None:
    response = offline_stub.ListLanguages(pb.ListLanguagesRequest(), timeout=10)
    assert list(response.recognition_language_codes) == ["en-US"]
    pairs = {(p.source_language_code, p.target_language_code) for p in response.translation_pairs}
    assert ("en", "es") in pairs and ("es", "en") in pairs
    assert response.max_source_languages == 1


@pytest.mark.parametrize(
    ("request_kwargs", "needle"),
    [
        ({"text": "", "source_language_code": "en", "target_language_codes": ["es"]}, "text is empty"),
        ({"text": "hi", "target_language_codes": ["es"]}, "source_language_code is required"),
        ({"text": "hi", "source_language_code": "en"}, "target_language_codes is empty"),
        ({"text": "hi", "source_language_code": "en", "target_language_codes": ["ja"]}, "cannot translate en into ja"),
        ({"text": "x" * 5001, "source_language_code": "en", "target_language_codes": ["es"]}, "at most 5000"),
        (
            {
                "text": "hi",
                "source_language_code": "en",
                "target_language_codes": ["es"],
                "translation_options": pb.TranslationOptions(mode=pb.INTERPRETATION_MODE_SIMULTANEOUS),
            },
            "simultaneous interpretation follows speech in an Interpret stream",
        ),
    ],
)
def test_translate_text_bad_requests(offline_stub, request_kwargs, needle) -> None:
    with pytest.raises(grpc.RpcError) as info:
        list(offline_stub.TranslateText(pb.TranslateTextRequest(**request_kwargs), timeout=10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in str(info.value.details())
