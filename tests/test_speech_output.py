"""Speech output over the wire with the embedded engines: encodings, order, contract, errors, voices."""

from __future__ import annotations

import itertools

import grpc
import pytest

from tests.conftest import stub_for
from tests.support.calls import audio_requests, config, events_of, of_kind
from tests.support.speech import Speech
from tests.support.speech_audio import decode, utterance_audio
from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_client.proto import interpreter_pb2_grpc as pb_grpc
from tongyeok_client.proto import transcripts_pb2 as tpb
from tongyeok_client.proto import transcripts_pb2_grpc as tpb_grpc


def speaking(**kw: object) -> pb.SpeechOutputConfig:
    return pb.SpeechOutputConfig(**kw)  # type: ignore[arg-type]


def translate(stub: pb_grpc.InterpreterStub, text: str, source: str, targets: list[str], out: pb.SpeechOutputConfig):
    request = pb.TranslateTextRequest(
        text=text, source_language_code=source, target_language_codes=targets, speech_output=out
    )
    return events_of(stub.TranslateText(request, timeout=60))


@pytest.mark.parametrize(
    ("encoding", "rate"),
    [
        (pb.SPEECH_ENCODING_LINEAR16, 16000),
        (pb.SPEECH_ENCODING_LINEAR16, 24000),
        (pb.SPEECH_ENCODING_OGG_OPUS, 24000),
        (pb.SPEECH_ENCODING_OGG_OPUS, 48000),
        (pb.SPEECH_ENCODING_MULAW, 8000),
        (pb.SPEECH_ENCODING_ALAW, 8000),
    ],
)
def test_translate_text_speaks_in_the_encoding_and_rate_asked(offline_stub, encoding: int, rate: int) -> None:
    text = "Good morning everyone. We would like to discuss the contract today."
    events = translate(offline_stub, text, "en", ["es"], speaking(encoding=encoding, sample_rate_hertz=rate))
    (complete,) = of_kind(events, "translation_complete")
    audio = of_kind(events, "translation_audio")
    assert audio and all(a.encoding == encoding and a.sample_rate_hertz == rate for a in audio)
    assert all(a.utterance_id == 0 and a.target_language_code == "es" for a in audio)
    (spoken,) = utterance_audio(events, "es").values()
    samples, file_rate = decode(spoken, encoding, rate)
    assert file_rate == rate
    seconds = len(samples) / rate
    # espeak-ng speaks ~14 characters a second at its normal pace.
    assert 0.4 * len(complete.text) / 14 < seconds < 2.5 * len(complete.text) / 14, seconds
    assert abs(samples.astype(float)).mean() > 100, "silence"


def test_speaking_rate_changes_the_length(offline_stub) -> None:
    text = "We would like to discuss the contract today."
    lengths = {}
    for speaking_rate in (0.5, 2.0):
        events = translate(offline_stub, text, "en", ["es"], speaking(speaking_rate=speaking_rate))
        (spoken,) = utterance_audio(events, "es").values()
        lengths[speaking_rate] = len(spoken)
    assert lengths[0.5] > 2 * lengths[2.0]


@pytest.mark.speech
def test_interpret_speaks_every_utterance_in_order_before_the_stream_ends_and_the_record_says_how(
    offline_server, offline_stub, speech: Speech
) -> None:
    cfg = config(targets=["es"])
    cfg.config.speech_output.CopyFrom(pb.SpeechOutputConfig(sample_rate_hertz=16000))
    events = events_of(offline_stub.Interpret(itertools.chain([cfg], audio_requests(speech.pcm(), 3200)), timeout=120))
    (started,) = of_kind(events, "session_started")
    assert started.synthesizer.name == "embedded"
    effective = started.effective_config.speech_output
    assert [(v.language_code, v.voice) for v in effective.voices] == [("es", "es")]
    assert (effective.encoding, effective.sample_rate_hertz, effective.speaking_rate) == (
        pb.SPEECH_ENCODING_LINEAR16,
        16000,
        1.0,
    )
    completes = {c.utterance_id: c for c in of_kind(events, "translation_complete")}
    assert len(completes) >= 3
    spoken = utterance_audio(events, "es")  # checks order, sequence numbers, last chunks
    assert set(spoken) == set(completes), "every translation is spoken, and only those"
    for uid, audio in spoken.items():
        kinds = [k for k, m in events if getattr(m, "utterance_id", None) == uid]
        assert kinds.index("translation_token") < kinds.index("translation_audio")
        assert len(audio) / 32000 > 0.3 * len(completes[uid].text) / 14
    # The stream ended after the last chunk (the session waited for its speech).
    assert events[-1][0] == "translation_audio" and events[-1][1].last_chunk

    # The meeting record keeps how each translation was spoken (not the audio): what the caller got.
    assert started.transcript_stored
    assert offline_server.record is not None and offline_server.record.writer.wait_idle(30)
    channel, _ = stub_for(offline_server)
    with channel:
        record = tpb_grpc.TranscriptsStub(channel).GetSession(  # type: ignore[no-untyped-call]
            tpb.GetSessionRequest(name=f"sessions/{started.session_id}"), timeout=30
        )
    chunks = {uid: len([m for k, m in events if k == "translation_audio" and m.utterance_id == uid]) for uid in spoken}
    kept = {u.utterance_id: u.translations[0].speech for u in record.utterances}
    assert set(kept) == set(spoken)
    for uid, audio in spoken.items():
        s = kept[uid]
        assert (s.voice, s.encoding, s.sample_rate_hertz) == ("es", pb.SPEECH_ENCODING_LINEAR16, 16000)
        assert (s.audio_bytes, s.chunks) == (len(audio), chunks[uid])
        assert s.duration.ToMilliseconds() == round(len(audio) / 32000 * 1000)
        assert s.HasField("first_audio_after_final") and s.first_audio_after_final.ToMilliseconds() >= 0


def test_without_speech_output_there_is_no_audio(offline_stub) -> None:
    request = pb.TranslateTextRequest(text="Good morning.", source_language_code="en", target_language_codes=["es"])
    kinds = [k for k, _ in events_of(offline_stub.TranslateText(request, timeout=30))]
    assert "translation_audio" not in kinds and "translation_complete" in kinds


@pytest.mark.parametrize(
    ("out", "targets", "message"),
    [
        (speaking(encoding=pb.SPEECH_ENCODING_OGG_OPUS, sample_rate_hertz=22050), ["es"], "OGG_OPUS takes 8000"),
        (speaking(sample_rate_hertz=4000), ["es"], "sample_rate_hertz is 4000; supported: 8000 to 48000"),
        (speaking(speaking_rate=3.0), ["es"], "speaking_rate is 3; supported: 0.5 to 2"),
        (speaking(encoding=9), ["es"], "encoding is 9; supported: LINEAR16, OGG_OPUS"),
        (speaking(voices=[pb.VoiceSelection(language_code="ko")]), ["es"], "ko, which is not a target language"),
        (
            speaking(voices=[pb.VoiceSelection(language_code="es", voice="nobody")]),
            ["es"],
            "voices[0].voice is 'nobody', which the embedded synthesizer does not have for es; available: es",
        ),
        (
            speaking(voices=[pb.VoiceSelection(language_code="es"), pb.VoiceSelection(language_code="es-ES")]),
            ["es"],
            "listed twice",
        ),
    ],
)
def test_bad_speech_output_is_refused_with_the_field_and_what_is_accepted(
    offline_stub, out: pb.SpeechOutputConfig, targets: list[str], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        translate(offline_stub, "Good morning.", "en", targets, out)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "speech_output" in (info.value.details() or "") and message in (info.value.details() or "")
    cfg = config(targets=targets)
    cfg.config.speech_output.CopyFrom(out)
    with pytest.raises(grpc.RpcError) as info:
        events_of(offline_stub.Interpret(iter([cfg]), timeout=30))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "config.speech_output" in (info.value.details() or "") and message in (info.value.details() or "")


def test_a_server_without_synthesizer_says_so(server_factory) -> None:
    server = server_factory(synthesizer="none")
    channel, stub = stub_for(server)
    with channel:
        with pytest.raises(grpc.RpcError) as info:
            translate(stub, "Good morning.", "en", ["es"], speaking())
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "--synthesizer none" in (info.value.details() or "")
        languages = stub.ListLanguages(pb.ListLanguagesRequest(), timeout=10)
        assert languages.synthesizer.name == "none" and not languages.voices
        # Text alone still works.
        request = pb.TranslateTextRequest(text="Good morning.", source_language_code="en", target_language_codes=["es"])
        assert "translation_complete" in [k for k, _ in events_of(stub.TranslateText(request, timeout=30))]


def test_list_languages_reports_voices_per_language(offline_stub) -> None:
    languages = offline_stub.ListLanguages(pb.ListLanguagesRequest(), timeout=10)
    assert languages.synthesizer.name == "embedded"
    by_language = {lv.language_code: lv for lv in languages.voices}
    assert {"en", "es", "ko"} <= set(by_language)
    for lv in by_language.values():
        assert lv.voices[0].name == lv.default_voice and all(v.description for v in lv.voices)
    assert by_language["ko"].default_voice == "ko"
    assert {"es", "es-419"} <= {v.name for v in by_language["es"].voices}
    english = {v.name for v in by_language["en"].voices}
    assert "en-us" in english  # espeak-ng speaks English too, by name
