"""Session events and configs to their ``tongyeok.v1`` wire messages."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server.api import speech
from tongyeok_server.engines import EngineDescription
from tongyeok_server.session import events as ev
from tongyeok_server.session.config import SessionConfig
from tongyeok_server.session.extension import StartNotes
from tongyeok_server.session.speech import SpeechOutput
from tongyeok_server.simultaneous.pacing import Latency
from tongyeok_server.translation.base import Style, TranslationOptions

_ENCODINGS = {"LINEAR16": pb.AUDIO_ENCODING_LINEAR16, "MULAW": pb.AUDIO_ENCODING_MULAW, "ALAW": pb.AUDIO_ENCODING_ALAW}
_STYLES = {
    Style.BUSINESS: pb.TRANSLATION_STYLE_BUSINESS,
    Style.NEUTRAL: pb.TRANSLATION_STYLE_NEUTRAL,
    Style.LITERAL: pb.TRANSLATION_STYLE_LITERAL,
}

_LATENCIES = {
    Latency.LOW: pb.SIMULTANEOUS_LATENCY_LOW,
    Latency.BALANCED: pb.SIMULTANEOUS_LATENCY_BALANCED,
    Latency.ACCURATE: pb.SIMULTANEOUS_LATENCY_ACCURATE,
}


def duration(seconds: float) -> Duration:
    """Seconds -> ``google.protobuf.Duration`` (millisecond precision is plenty)."""
    millis = max(0, round(seconds * 1000))
    return Duration(seconds=millis // 1000, nanos=(millis % 1000) * 1_000_000)


def engine(desc: EngineDescription) -> pb.EngineInfo:
    """Engine description -> wire."""
    return pb.EngineInfo(name=desc.name, detail=desc.detail)


def effective_config(config: SessionConfig, applied: TranslationOptions | None = None) -> pb.InterpretConfig:
    """The config as the server applies it, defaults filled in; ``applied``: the translation options the engine uses."""
    opts = applied or config.translation
    wire = pb.InterpretConfig(
        audio_format=pb.AudioFormat(
            encoding=_ENCODINGS[config.audio.encoding.value],
            sample_rate_hertz=config.audio.sample_rate_hz,
            channel_count=config.audio.channels,
        ),
        source_language_codes=config.source_languages,
        target_language_codes=config.target_languages,
        interim_results=config.interim_results,
        voice_activity_events=config.voice_activity_events,
        translation_options=translation_options(opts.style, opts.glossary, opts.context_sentences),
    )
    options = wire.translation_options
    if config.simultaneous is None:
        options.mode = pb.INTERPRETATION_MODE_CONSECUTIVE
    else:
        options.mode = pb.INTERPRETATION_MODE_SIMULTANEOUS
        options.latency = _LATENCIES[config.simultaneous.latency]
        options.tentative_translations = config.simultaneous.tentative
    return wire


def simultaneous_directions(config: SessionConfig) -> list[pb.SimultaneousDirection]:
    """How each direction of a simultaneous session is paced (empty when consecutive)."""
    if config.simultaneous is None:
        return []
    return [
        pb.SimultaneousDirection(
            source_language_code=d.source,
            target_language_code=d.target,
            latency=_LATENCIES[d.pacing.latency],
            holdback_words=d.pacing.holdback,
            agreement=d.pacing.agreement,
            max_requests_per_speech_second=d.pacing.max_requests_per_speech_s,
        )
        for d in config.simultaneous.directions
    ]


def translation_options(style: Style, glossary: tuple, context_sentences: int) -> pb.TranslationOptions:  # type: ignore[type-arg]
    """Domain translation options -> wire."""
    return pb.TranslationOptions(
        style=_STYLES[style],
        glossary=[
            pb.GlossaryEntry(source_term=t.source, target_term=t.target, target_language_code=t.target_language)
            for t in glossary
        ],
        context_sentences=context_sentences if context_sentences > 0 else -1,
    )


def token(event: ev.Token) -> pb.TranslationToken:
    """A translation token -> wire."""
    return pb.TranslationToken(
        utterance_id=event.utterance_id,
        source_language_code=event.source_language,
        target_language_code=event.target_language,
        text=event.text,
    )


def complete(event: ev.Complete) -> pb.TranslationComplete:
    """A finished translation -> wire."""
    return pb.TranslationComplete(
        utterance_id=event.utterance_id,
        source_language_code=event.source_language,
        target_language_code=event.target_language,
        text=event.text,
    )


def reset(event: ev.Reset) -> pb.TranslationReset:
    """A translation restart -> wire."""
    return pb.TranslationReset(
        utterance_id=event.utterance_id, target_language_code=event.target_language, reason=event.reason
    )


def notice(event: ev.Notice) -> pb.Notice:
    """A notice -> wire."""
    return pb.Notice(
        code=event.code.value,  # type: ignore[arg-type]
        message=event.message,
        utterance_id=event.utterance_id,
        target_language_code=event.target_language,
    )


def _set_duration(field: Duration, seconds: float) -> None:
    """``duration(seconds)`` written into a message's own Duration field (no message built and copied in)."""
    millis = max(0, round(seconds * 1000))
    field.seconds = millis // 1000
    field.nanos = (millis % 1000) * 1_000_000


def interpret_response(event: ev.SessionEvent) -> pb.InterpretResponse:
    """Any non-final session event -> one ``InterpretResponse``.

    The frequent events (interims, finals, tokens) are written into the
    response's own submessage: building the submessage first and passing it
    to the constructor copies it, and its Durations into it (about half the
    cost of an interim; this runs once per event of every stream).
    """
    if isinstance(event, ev.Token):
        response = pb.InterpretResponse()
        token_ = response.translation_token
        token_.SetInParent()  # the oneof is set even when every field holds its default
        token_.utterance_id = event.utterance_id
        token_.source_language_code = event.source_language
        token_.target_language_code = event.target_language
        token_.text = event.text
        return response
    if isinstance(event, ev.Interim):
        t = event.transcript
        response = pb.InterpretResponse()
        interim = response.interim_transcript
        interim.SetInParent()
        interim.utterance_id = event.utterance_id
        interim.text = t.text
        interim.language_code = t.language_code
        interim.stability = t.stability
        _set_duration(interim.audio_start_offset, t.start_offset_s)
        _set_duration(interim.audio_end_offset, t.end_offset_s)
        interim.stable_text = t.stable_text
        return response
    if isinstance(event, ev.Final):
        t = event.transcript
        response = pb.InterpretResponse()
        final = response.final_transcript
        final.SetInParent()
        final.utterance_id = event.utterance_id
        final.text = t.text.strip()
        final.language_code = t.language_code
        final.confidence = t.confidence
        _set_duration(final.audio_start_offset, t.start_offset_s)
        _set_duration(final.audio_end_offset, t.end_offset_s)
        final.target_language_codes.extend(event.target_languages)
        final.echo = bool(event.echo_of)
        final.echo_of_utterance_id = event.echo_of
        return response
    if isinstance(event, ev.Complete):
        return pb.InterpretResponse(translation_complete=complete(event))
    if isinstance(event, ev.Tentative):
        return pb.InterpretResponse(
            translation_tentative=pb.TranslationTentative(
                utterance_id=event.utterance_id,
                source_language_code=event.source_language,
                target_language_code=event.target_language,
                text=event.text,
            )
        )
    if isinstance(event, ev.Reset):
        return pb.InterpretResponse(translation_reset=reset(event))
    if isinstance(event, ev.Activity):
        a = event.activity
        kind = pb.VOICE_ACTIVITY_TYPE_SPEECH_BEGIN if a.began else pb.VOICE_ACTIVITY_TYPE_SPEECH_END
        return pb.InterpretResponse(voice_activity=pb.VoiceActivity(type=kind, audio_offset=duration(a.offset_s)))
    if isinstance(event, ev.Notice):
        return pb.InterpretResponse(notice=notice(event))
    if isinstance(event, ev.Audio):
        return pb.InterpretResponse(translation_audio=speech.audio(event))
    raise TypeError(f"no wire form for {event!r}")


def add_start_notes(started: pb.SessionStarted, speech_output: SpeechOutput | None, notes: StartNotes) -> None:
    """What the extensions said about a starting session (record kept, voices, ignored options) -> ``started``."""
    if notes.transcript_stored is not None:
        started.transcript_stored = notes.transcript_stored
        started.effective_config.store_transcript = notes.transcript_stored
    started.ignored_options.extend(notes.ignored_options)
    if notes.echo_suppression is not None:
        started.effective_config.echo_suppression = notes.echo_suppression
    if notes.echo_suppressor is not None:
        started.echo_suppression.CopyFrom(engine(notes.echo_suppressor))
    if notes.synthesizer is not None and speech_output is not None:
        started.synthesizer.CopyFrom(engine(notes.synthesizer))
        started.effective_config.speech_output.CopyFrom(speech.effective(speech_output, notes.voices))
