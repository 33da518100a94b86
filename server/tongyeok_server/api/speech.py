"""Speech output on the wire: validating ``SpeechOutputConfig``, and the effective config and voice list back.

Shape checks (encodings, rates, languages) happen here, for Interpret and
TranslateText alike; whether the engine has the voices is checked by the
synthesis extension, which knows the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server import languages
from tongyeok_server.engines import Voice
from tongyeok_server.errors import invalid_argument
from tongyeok_server.session import events as ev
from tongyeok_server.session.speech import (
    DEFAULT_SAMPLE_RATE_HZ,
    DEFAULT_VOICE,
    MAX_SAMPLE_RATE_HZ,
    MAX_SPEAKING_RATE,
    MIN_SAMPLE_RATE_HZ,
    MIN_SPEAKING_RATE,
    OPUS_SAMPLE_RATES_HZ,
    SpeechEncoding,
    SpeechOutput,
)

_ENCODINGS = {
    pb.SPEECH_ENCODING_UNSPECIFIED: SpeechEncoding.LINEAR16,
    pb.SPEECH_ENCODING_LINEAR16: SpeechEncoding.LINEAR16,
    pb.SPEECH_ENCODING_OGG_OPUS: SpeechEncoding.OGG_OPUS,
    pb.SPEECH_ENCODING_MULAW: SpeechEncoding.MULAW,
    pb.SPEECH_ENCODING_ALAW: SpeechEncoding.ALAW,
}
_TO_WIRE = {v: k for k, v in _ENCODINGS.items() if k != pb.SPEECH_ENCODING_UNSPECIFIED}


def speech_output(field: str, cfg: pb.SpeechOutputConfig, targets: Sequence[str]) -> SpeechOutput:
    """Validate a ``SpeechOutputConfig`` against the stream's (or request's) target languages."""
    encoding = _ENCODINGS.get(cfg.encoding)
    if encoding is None:
        raise invalid_argument(
            f"{field}.encoding is {cfg.encoding}; supported: LINEAR16, OGG_OPUS, MULAW, ALAW (unset means LINEAR16)"
        )
    rate = cfg.sample_rate_hertz or DEFAULT_SAMPLE_RATE_HZ
    if encoding is SpeechEncoding.OGG_OPUS and rate not in OPUS_SAMPLE_RATES_HZ:
        raise invalid_argument(
            f"{field}.sample_rate_hertz is {rate}; OGG_OPUS takes {', '.join(map(str, OPUS_SAMPLE_RATES_HZ))} Hz"
        )
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise invalid_argument(
            f"{field}.sample_rate_hertz is {rate}; supported: {MIN_SAMPLE_RATE_HZ} to {MAX_SAMPLE_RATE_HZ} Hz "
            f"(0 means {DEFAULT_SAMPLE_RATE_HZ})"
        )
    speaking_rate = cfg.speaking_rate or 1.0
    if not MIN_SPEAKING_RATE <= speaking_rate <= MAX_SPEAKING_RATE:
        raise invalid_argument(
            f"{field}.speaking_rate is {speaking_rate:g}; supported: {MIN_SPEAKING_RATE:g} to "
            f"{MAX_SPEAKING_RATE:g} (0 means 1.0, the voice's natural pace)"
        )
    voices: list[tuple[str, str]] = []
    for i, selection in enumerate(cfg.voices):
        where = f"{field}.voices[{i}].language_code"
        code = selection.language_code
        if not languages.is_well_formed(code):
            raise invalid_argument(f"{where} is {code!r}; name one of the target languages: {', '.join(targets)}")
        target = next((t for t in targets if languages.same_language(t, code)), None)
        if target is None:
            raise invalid_argument(
                f"{where} is {code}, which is not a target language; speech can be asked only for {', '.join(targets)}"
            )
        if any(lang == target for lang, _ in voices):
            raise invalid_argument(f"{where}: {code} is listed twice")
        voices.append((target, selection.voice.strip() or DEFAULT_VOICE))
    if not voices:
        voices = [(target, DEFAULT_VOICE) for target in targets]
    return SpeechOutput(tuple(voices), encoding, rate, speaking_rate)


def effective(output: SpeechOutput, voices: Mapping[str, Voice]) -> pb.SpeechOutputConfig:
    """The config as applied: the voice chosen for each language, defaults filled in."""
    return pb.SpeechOutputConfig(
        voices=[pb.VoiceSelection(language_code=lang, voice=voices[lang].name) for lang in output.languages],
        encoding=_TO_WIRE[output.encoding],
        sample_rate_hertz=output.sample_rate_hz,
        speaking_rate=output.speaking_rate,
    )


def audio(event: ev.Audio) -> pb.TranslationAudio:
    """A piece of spoken translation -> wire."""
    return pb.TranslationAudio(
        utterance_id=event.utterance_id,
        target_language_code=event.target_language,
        sequence_number=event.sequence_number,
        audio=event.audio,
        last_chunk=event.last,
        encoding=_TO_WIRE[SpeechEncoding(event.encoding)],
        sample_rate_hertz=event.sample_rate_hz,
    )


def language_voices(voices: Sequence[Voice], defaults: Mapping[str, Voice]) -> list[pb.LanguageVoices]:
    """Every language ``voices`` speak (primary subtags, sorted) with its voices, the default first."""
    by_language: dict[str, list[Voice]] = {}
    for voice in voices:
        for code in voice.language_codes:
            listed = by_language.setdefault(languages.primary(code), [])
            if voice not in listed:
                listed.append(voice)
    out = []
    for lang in sorted(by_language):
        default = defaults.get(lang)
        voices = sorted(by_language[lang], key=lambda v: v is not default)
        out.append(
            pb.LanguageVoices(
                language_code=lang,
                voices=[pb.Voice(name=v.name, description=v.description) for v in voices],
                default_voice=default.name if default is not None else "",
            )
        )
    return out
