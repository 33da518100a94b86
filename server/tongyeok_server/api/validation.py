"""Turn wire configs into validated domain configs, or explain what is wrong.

Every message names the field, the value received and what would be
accepted, so a caller can fix the request without reading the server code.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from tongyeok_client.proto import interpreter_pb2 as pb
from tongyeok_server import languages
from tongyeok_server.api import speech
from tongyeok_server.audio.format import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE_HZ,
    MIN_SAMPLE_RATE_HZ,
    AudioSpec,
    Encoding,
)
from tongyeok_server.errors import invalid_argument
from tongyeok_server.recognition.base import Recognizer
from tongyeok_server.session.config import SessionConfig
from tongyeok_server.simultaneous.options import ServerDefaults, SimultaneousConfig
from tongyeok_server.simultaneous.pacing import Latency
from tongyeok_server.translation.base import (
    DEFAULT_CONTEXT_SENTENCES,
    GlossaryTerm,
    Style,
    TranslationOptions,
    Translator,
)

MAX_TARGET_LANGUAGES = 5
MAX_GLOSSARY_ENTRIES = 200
MAX_CONTEXT_SENTENCES = 50
MAX_TEXT_CHARS = 5000
MAX_TERM_CHARS = 200
MAX_CONTEXT_TEXT_CHARS = 1000
MAX_AUDIO_CHUNK_BYTES = 1 << 20

_ENCODINGS = {
    pb.AUDIO_ENCODING_LINEAR16: Encoding.LINEAR16,
    pb.AUDIO_ENCODING_MULAW: Encoding.MULAW,
    pb.AUDIO_ENCODING_ALAW: Encoding.ALAW,
}
_STYLES = {
    pb.TRANSLATION_STYLE_UNSPECIFIED: Style.BUSINESS,
    pb.TRANSLATION_STYLE_BUSINESS: Style.BUSINESS,
    pb.TRANSLATION_STYLE_NEUTRAL: Style.NEUTRAL,
    pb.TRANSLATION_STYLE_LITERAL: Style.LITERAL,
}

_MODES = {
    pb.INTERPRETATION_MODE_UNSPECIFIED: False,
    pb.INTERPRETATION_MODE_CONSECUTIVE: False,
    pb.INTERPRETATION_MODE_SIMULTANEOUS: True,
}
_LATENCIES = {
    pb.SIMULTANEOUS_LATENCY_UNSPECIFIED: None,
    pb.SIMULTANEOUS_LATENCY_LOW: Latency.LOW,
    pb.SIMULTANEOUS_LATENCY_BALANCED: Latency.BALANCED,
    pb.SIMULTANEOUS_LATENCY_ACCURATE: Latency.ACCURATE,
}


def audio_spec(fmt: pb.AudioFormat, has_format: bool) -> AudioSpec:
    """Validate ``config.audio_format``."""
    if not has_format:
        raise invalid_argument(
            "config.audio_format is required: set encoding (LINEAR16, MULAW or ALAW) and "
            f"sample_rate_hertz ({MIN_SAMPLE_RATE_HZ}-{MAX_SAMPLE_RATE_HZ})"
        )
    encoding = _ENCODINGS.get(fmt.encoding)
    if encoding is None:
        name = pb.AudioEncoding.Name(fmt.encoding) if fmt.encoding in pb.AudioEncoding.values() else str(fmt.encoding)
        raise invalid_argument(f"config.audio_format.encoding is {name}; supported encodings: LINEAR16, MULAW, ALAW")
    rate = fmt.sample_rate_hertz
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise invalid_argument(
            f"config.audio_format.sample_rate_hertz is {rate}; supported: {MIN_SAMPLE_RATE_HZ} to "
            f"{MAX_SAMPLE_RATE_HZ} Hz"
        )
    channels = fmt.channel_count or 1
    if not 1 <= channels <= MAX_CHANNELS:
        raise invalid_argument(f"config.audio_format.channel_count is {channels}; supported: 1 (mono) or 2 (stereo)")
    return AudioSpec(encoding, rate, channels)


def _tags(field: str, codes: Sequence[str]) -> list[str]:
    out: list[str] = []
    for code in codes:
        if not languages.is_well_formed(code):
            raise invalid_argument(f"{field}: {code!r} is not a BCP-47 language code (e.g. en-US, ko-KR, es)")
        tag = languages.normalize(code)
        if any(languages.same_language(tag, seen) for seen in out):
            raise invalid_argument(f"{field}: {code!r} names a language twice")
        out.append(tag)
    return out


def source_languages(codes: Sequence[str], recognizer: Recognizer) -> tuple[str, ...]:
    """Validate ``config.source_language_codes`` against the recogniser."""
    field = "config.source_language_codes"
    name = recognizer.description.name
    if not codes:
        raise invalid_argument(f"{field} is empty: name the language spoken (e.g. en-US), or two for a conversation")
    tags = _tags(field, codes)
    limit = min(2, recognizer.max_source_languages)
    if len(tags) > limit:
        hint = (
            "" if limit == 2 else "; two-way conversations need a multilingual recogniser such as --recognizer google"
        )
        raise invalid_argument(
            f"{field} has {len(tags)} languages; the {name} recogniser takes at most {limit} per stream{hint}"
        )
    resolved = []
    for tag in tags:
        code = recognizer.resolve_language(tag)
        if code is None:
            raise invalid_argument(
                f"{field}: {tag} is not recognised by the {name} recogniser; available: "
                f"{', '.join(recognizer.language_codes())}"
            )
        resolved.append(code)
    return tuple(resolved)


def target_languages(
    field: str, codes: Sequence[str], sources: Sequence[str], translator: Translator
) -> tuple[str, ...]:
    """Validate target languages: well-formed, not too many, every direction translatable.

    Empty with one source language: a transcription-only stream (captions, the
    minutes of a meeting held in one language), nothing is translated. Empty
    with two: a conversation, each side into the other.
    """
    if not codes:
        if len(sources) != 2:
            return ()
        codes = list(sources)  # a conversation: each side into the other; the directions are checked below
    if len(codes) > MAX_TARGET_LANGUAGES:
        raise invalid_argument(f"{field} has {len(codes)} languages; at most {MAX_TARGET_LANGUAGES}")
    targets = _tags(field, codes)
    if len(sources) == 1 and any(languages.same_language(t, sources[0]) for t in targets):
        raise invalid_argument(f"{field}: {sources[0]} is the source language; name only languages to translate into")
    for source in sources:
        for target in targets:
            if languages.same_language(source, target) or translator.supports(source, target):
                continue
            pairs = ", ".join(f"{s}->{t}" for s, t in translator.language_pairs()) or "none"
            raise invalid_argument(
                f"{field}: the {translator.description.name} translator cannot translate "
                f"{languages.primary(source)} into {languages.primary(target)}; available pairs: {pairs}"
            )
    return tuple(targets)


def plain_text(field: str, text: str, max_chars: int, empty_hint: str = "") -> str:
    """``text`` stripped; refused if empty, too long, or carrying control characters (other than tab and newline)."""
    if len(text) > max_chars:
        raise invalid_argument(f"{field} has {len(text)} characters; at most {max_chars}")
    for i, ch in enumerate(text):
        if ch not in "\t\n\r" and unicodedata.category(ch) == "Cc":
            raise invalid_argument(
                f"{field} contains the control character U+{ord(ch):04X} at position {i}; send plain text"
            )
    stripped = text.strip()
    if not stripped:
        raise invalid_argument(f"{field} is empty{empty_hint}")
    return stripped


def translation_options(field: str, opts: pb.TranslationOptions) -> TranslationOptions:
    """Validate translation options (style, glossary, context)."""
    style = _STYLES.get(opts.style)
    if style is None:
        raise invalid_argument(f"{field}.style is {opts.style}; supported: BUSINESS, NEUTRAL, LITERAL")
    if len(opts.glossary) > MAX_GLOSSARY_ENTRIES:
        raise invalid_argument(f"{field}.glossary has {len(opts.glossary)} entries; at most {MAX_GLOSSARY_ENTRIES}")
    glossary = []
    for i, entry in enumerate(opts.glossary):
        source_term = plain_text(f"{field}.glossary[{i}].source_term", entry.source_term, MAX_TERM_CHARS)
        target_term = (
            plain_text(f"{field}.glossary[{i}].target_term", entry.target_term, MAX_TERM_CHARS)
            if entry.target_term.strip()
            else ""
        )
        lang = entry.target_language_code
        if lang and not languages.is_well_formed(lang):
            raise invalid_argument(f"{field}.glossary[{i}].target_language_code {lang!r} is not a BCP-47 code")
        glossary.append(GlossaryTerm(source_term, target_term, languages.primary(lang) if lang else ""))
    context = opts.context_sentences
    if context > MAX_CONTEXT_SENTENCES:
        raise invalid_argument(f"{field}.context_sentences is {context}; at most {MAX_CONTEXT_SENTENCES}")
    if context == 0:
        context = DEFAULT_CONTEXT_SENTENCES
    requested = frozenset(
        name
        for name, asked in (
            ("style", opts.style != pb.TRANSLATION_STYLE_UNSPECIFIED),
            ("context_sentences", opts.context_sentences != 0),
        )
        if asked
    )
    return TranslationOptions(style, tuple(glossary), max(0, context), requested)


def simultaneous_mode(
    field: str,
    opts: pb.TranslationOptions,
    pairs: Sequence[tuple[str, str]],
    translator: Translator,
    defaults: ServerDefaults,
) -> SimultaneousConfig | None:
    """Validate ``mode``, ``latency`` and ``tentative_translations``; None in consecutive mode."""
    if opts.mode not in _MODES:
        raise invalid_argument(f"{field}.mode is {opts.mode}; supported: CONSECUTIVE, SIMULTANEOUS")
    if opts.latency not in _LATENCIES:
        raise invalid_argument(f"{field}.latency is {opts.latency}; supported: LOW, BALANCED, ACCURATE")
    if not _MODES[opts.mode]:
        return None  # latency and tentative_translations are documented as ignored in consecutive mode
    return SimultaneousConfig.build(
        _LATENCIES[opts.latency],
        opts.tentative_translations,
        pairs,
        defaults,
        paid_per_request=translator.paid_per_request,
    )


def interpret_config(
    config: pb.InterpretConfig,
    recognizer: Recognizer,
    translator: Translator,
    simultaneous: ServerDefaults | None = None,
) -> SessionConfig:
    """Validate the first message of an Interpret stream (``simultaneous``: the operator's defaults)."""
    audio = audio_spec(config.audio_format, config.HasField("audio_format"))
    recognizer.check_audio(audio)
    sources = source_languages(config.source_language_codes, recognizer)
    targets = target_languages("config.target_language_codes", config.target_language_codes, sources, translator)
    if config.HasField("speech_output") and not targets:
        raise invalid_argument(
            "config.speech_output needs a language to speak: name it in config.target_language_codes "
            "(a stream without target languages only transcribes)"
        )
    pairs = [(s, t) for s in sources for t in targets if not languages.same_language(s, t)]
    return SessionConfig(
        audio=audio,
        source_languages=sources,
        target_languages=targets,
        interim_results=config.interim_results,
        voice_activity_events=config.voice_activity_events,
        translation=translation_options("config.translation_options", config.translation_options),
        speech=speech.speech_output("config.speech_output", config.speech_output, targets)
        if config.HasField("speech_output")
        else None,
        store_transcript=config.store_transcript if config.HasField("store_transcript") else None,
        simultaneous=simultaneous_mode(
            "config.translation_options",
            config.translation_options,
            pairs,
            translator,
            simultaneous or ServerDefaults(),
        ),
        echo_suppression=config.echo_suppression if config.HasField("echo_suppression") else None,
    )


def audio_chunk(chunk: bytes, index: int, spec: AudioSpec) -> None:
    """Check one audio chunk: whole frames, not too large."""
    if len(chunk) > MAX_AUDIO_CHUNK_BYTES:
        raise invalid_argument(
            f"audio chunk {index} has {len(chunk)} bytes; at most {MAX_AUDIO_CHUNK_BYTES} (send smaller chunks, "
            "100 ms each is typical)"
        )
    if len(chunk) % spec.frame_bytes:
        raise invalid_argument(
            f"audio chunk {index} has {len(chunk)} bytes, not a whole number of {spec.frame_bytes}-byte frames "
            f"({spec.encoding.value}, {spec.channels} channel(s)); every chunk must hold whole samples"
        )


@dataclass(frozen=True)
class TextToTranslate:
    """A validated TranslateText request."""

    text: str
    source: str
    targets: tuple[str, ...]
    options: TranslationOptions
    context: tuple[str, ...]


def translate_text(request: pb.TranslateTextRequest, translator: Translator) -> TextToTranslate:
    """Validate a TranslateText request."""
    text = plain_text("text", request.text, MAX_TEXT_CHARS, ": send the text to translate")
    if not request.source_language_code:
        raise invalid_argument("source_language_code is required (e.g. en)")
    (source,) = _tags("source_language_code", [request.source_language_code])
    sources = sorted({s for s, _ in translator.language_pairs()})
    if languages.primary(source) not in sources:
        raise invalid_argument(
            f"source_language_code: the {translator.description.name} translator cannot translate from "
            f"{languages.primary(source)}; it translates from: {', '.join(sources) or 'nothing'}"
        )
    targets = target_languages("target_language_codes", request.target_language_codes, [source], translator)
    if not targets:
        raise invalid_argument("target_language_codes is empty: name at least one language to translate into (e.g. es)")
    if len(request.context) > MAX_CONTEXT_SENTENCES:
        raise invalid_argument(f"context has {len(request.context)} sentences; at most {MAX_CONTEXT_SENTENCES}")
    context = tuple(
        plain_text(f"context[{i}]", sentence, MAX_CONTEXT_TEXT_CHARS) for i, sentence in enumerate(request.context)
    )
    if request.translation_options.mode == pb.INTERPRETATION_MODE_SIMULTANEOUS:
        raise invalid_argument(
            "translation_options.mode is SIMULTANEOUS: simultaneous interpretation follows speech in an Interpret "
            "stream; TranslateText translates a whole text (leave mode unset)"
        )
    options = translation_options("translation_options", request.translation_options)
    return TextToTranslate(text, source, targets, options, context)
