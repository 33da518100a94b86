"""Builders for the request messages: ``InterpretConfig`` and ``TranslationOptions``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

from .audio import AudioFormat, normalize_encoding
from .proto import interpreter_pb2 as pb

__all__ = ["LATENCIES", "Glossary", "as_list", "config", "translation_options"]


_STYLES: dict[str, pb.TranslationStyle] = {
    "business": pb.TRANSLATION_STYLE_BUSINESS,
    "neutral": pb.TRANSLATION_STYLE_NEUTRAL,
    "literal": pb.TRANSLATION_STYLE_LITERAL,
}

_LATENCIES: dict[str, pb.SimultaneousLatency] = {
    "low": pb.SIMULTANEOUS_LATENCY_LOW,
    "balanced": pb.SIMULTANEOUS_LATENCY_BALANCED,
    "accurate": pb.SIMULTANEOUS_LATENCY_ACCURATE,
}
#: The latency levels of simultaneous mode, shortest lag first.
LATENCIES = tuple(_LATENCIES)

#: A glossary: ``{term: rendering}`` ("" = keep the term), or a list of terms to keep,
#: ``(term, rendering)`` / ``(term, rendering, target_language)`` tuples, or ``GlossaryEntry`` protos.
Glossary: TypeAlias = Mapping[str, str] | Iterable["str | tuple[str, str] | tuple[str, str, str] | pb.GlossaryEntry"]


def _glossary_entries(glossary: Glossary | None) -> list[pb.GlossaryEntry]:
    if glossary is None:
        return []
    if isinstance(glossary, Mapping):
        return [pb.GlossaryEntry(source_term=k, target_term=v) for k, v in glossary.items()]
    entries = []
    for item in glossary:
        if isinstance(item, pb.GlossaryEntry):
            entries.append(item)
        elif isinstance(item, str):
            entries.append(pb.GlossaryEntry(source_term=item))
        elif len(item) == 2:
            entries.append(pb.GlossaryEntry(source_term=item[0], target_term=item[1]))
        elif len(item) == 3:
            entries.append(pb.GlossaryEntry(source_term=item[0], target_term=item[1], target_language_code=item[2]))
        else:
            raise ValueError(f"glossary entry must be a term, (term, rendering) or (term, rendering, lang): {item!r}")
    return entries


def as_list(value: str | Sequence[str] | None) -> list[str]:
    """One value or several as a list (None: empty)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def translation_options(
    *,
    style: str | None = None,
    glossary: Glossary | None = None,
    context_sentences: int = 0,
    simultaneous: bool = False,
    latency: str | None = None,
    tentative: bool | None = None,
) -> pb.TranslationOptions:
    """Build ``TranslationOptions``.

    Args:
        style: ``"business"`` (the server's default), ``"neutral"`` or ``"literal"``; ``None`` = server default.
        glossary: Terms with a fixed rendering; see :data:`Glossary`.
        context_sentences: Preceding sentences sent as context; 0 = server default, negative = none.
        simultaneous: Translate while the speaker is still talking (``Interpret`` only); see :func:`config`.
        latency: With ``simultaneous``: ``"low"``, ``"balanced"`` or ``"accurate"``; ``None`` = server default.
        tentative: With ``simultaneous``: also receive ``TranslationTentative`` events; ``None`` = yes.

    Raises:
        ValueError: unknown style or latency, a latency or tentative without ``simultaneous``, or a malformed
            glossary entry.

    """
    opts = pb.TranslationOptions(glossary=_glossary_entries(glossary), context_sentences=context_sentences)
    if style is not None:
        key = style.strip().lower().removeprefix("translation_style_")
        if key not in _STYLES:
            raise ValueError(f"unknown translation style {style!r}; use one of {', '.join(_STYLES)}")
        opts.style = _STYLES[key]
    if not simultaneous:
        if latency is not None or tentative:
            raise ValueError("latency and tentative apply to simultaneous interpretation: pass simultaneous=True")
        return opts
    opts.mode = pb.INTERPRETATION_MODE_SIMULTANEOUS
    opts.tentative_translations = True if tentative is None else tentative
    if latency is not None:
        key = latency.strip().lower().removeprefix("simultaneous_latency_")
        if key not in _LATENCIES:
            raise ValueError(f"unknown latency {latency!r}; use one of {', '.join(_LATENCIES)}")
        opts.latency = _LATENCIES[key]
    return opts


def config(
    *,
    source: str | Sequence[str],
    target: str | Sequence[str] | None = None,
    audio: AudioFormat | None = None,
    encoding: str = "LINEAR16",
    sample_rate_hertz: int = 16000,
    channel_count: int = 1,
    interim: bool = True,
    style: str | None = None,
    glossary: Glossary | None = None,
    context_sentences: int = 0,
    voice_activity: bool = False,
    speech: pb.SpeechOutputConfig | None = None,
    store_transcript: bool | None = None,
    simultaneous: bool = False,
    latency: str | None = None,
    tentative: bool | None = None,
    echo_suppression: bool | None = None,
) -> pb.InterpretConfig:
    """Build the ``InterpretConfig`` that opens an ``Interpret`` stream.

    Args:
        source: The language spoken (``"en-US"``), or two for a two-way conversation.
        target: Language(s) to translate into. ``None`` with one source: transcription only (no
            translation); with two sources: each sentence into the other one.
        audio: The audio format, e.g. ``open_audio(path).format``; overrides the next three.
        encoding: ``"linear16"``, ``"mulaw"`` or ``"alaw"`` (any case).
        sample_rate_hertz: Samples per second per channel (the service takes 8000-48000).
        channel_count: 1 or 2.
        interim: Whether to receive interim transcripts.
        style: ``"business"``, ``"neutral"`` or ``"literal"``; ``None`` = server default (business).
        glossary: Terms with a fixed rendering; see :data:`Glossary`.
        context_sentences: Preceding sentences sent with each translation; 0 = server default.
        voice_activity: Whether to receive speech begin/end events.
        speech: Speak the translations too (see :func:`tongyeok_client.speech.speech_output`).
        store_transcript: Whether the server keeps the meeting record; ``None`` = the server's default.
        simultaneous: Simultaneous interpretation: each sentence is translated while it is spoken, a few
            seconds behind the speaker. :class:`TranslationToken` events then carry committed text only (never
            reset, possibly before the sentence's :class:`FinalTranscript`), and :class:`TranslationTentative`
            events the rest as the server would say it now. Off: consecutive (each sentence after its final).
        latency: With ``simultaneous``: ``"low"``, ``"balanced"`` or ``"accurate"`` (more lag, fewer awkward
            commitments); ``None`` = the server's default. :class:`SessionStarted` says what each direction got.
        tentative: With ``simultaneous``: whether to receive :class:`TranslationTentative` events; ``None`` = yes.
        echo_suppression: Whether the server keeps its own speech, heard again by the microphone, out of
            the recognition; ``None`` = the server's default (on). Turn it off with headphones or a
            platform echo canceller you trust.

    Raises:
        ValueError: unknown encoding, style or latency, a latency without ``simultaneous``, malformed glossary.

    """
    if audio is not None:
        encoding, sample_rate_hertz, channel_count = audio.encoding, audio.sample_rate_hertz, audio.channel_count
    enc = normalize_encoding(encoding)
    return pb.InterpretConfig(
        audio_format=pb.AudioFormat(
            encoding=f"AUDIO_ENCODING_{enc}",
            sample_rate_hertz=sample_rate_hertz,
            channel_count=channel_count,
        ),
        source_language_codes=as_list(source),
        target_language_codes=as_list(target),
        interim_results=interim,
        translation_options=translation_options(
            style=style,
            glossary=glossary,
            context_sentences=context_sentences,
            simultaneous=simultaneous,
            latency=latency,
            tentative=tentative,
        ),
        voice_activity_events=voice_activity,
        speech_output=speech,
        store_transcript=store_transcript,
        echo_suppression=echo_suppression,
    )
