"""The events a Tongyeok stream yields, as small frozen dataclasses (offsets in float seconds).

Each keeps the proto message it came from in ``raw`` (the whole
``InterpretResponse`` / ``TranslateTextResponse``) for callers who want the
wire form, e.g. as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias, cast

from google.protobuf import duration_pb2
from google.protobuf.message import Message

from .proto import interpreter_pb2 as pb

__all__ = [
    "Engine",
    "Event",
    "FinalTranscript",
    "InterimTranscript",
    "Languages",
    "Notice",
    "Reconnecting",
    "SessionResumed",
    "SessionStarted",
    "SimultaneousDirection",
    "TranslateTextStarted",
    "TranslationAudio",
    "TranslationComplete",
    "TranslationEvent",
    "TranslationReset",
    "TranslationTentative",
    "TranslationToken",
    "VoiceActivity",
    "event_from_proto",
    "languages_from_proto",
    "translation_event_from_proto",
]


@dataclass(frozen=True)
class Engine:
    """An engine behind the service, e.g. ``Engine("pocketsphinx", "en-us model")``."""

    name: str
    detail: str = ""


@dataclass(frozen=True)
class SimultaneousDirection:
    """How a simultaneous session paces one direction (``source`` into ``target``), as the server chose it."""

    source_language_code: str
    target_language_code: str
    #: ``"low"``, ``"balanced"`` or ``"accurate"``.
    latency: str
    #: The last stable words of the speech that wait for the words after them before they are translated.
    holdback_words: int
    #: How many successive re-translations must agree before a word is committed.
    agreement: int
    #: The most translation requests per second of speech (0: no limit, a local engine).
    max_requests_per_speech_second: float


@dataclass(frozen=True)
class SessionStarted:
    """The first event of a session: its id, the effective config and the engines."""

    session_id: str
    effective_config: pb.InterpretConfig
    recognizer: Engine
    translator: Engine
    #: Options the translator cannot honour, each with the reason.
    ignored_options: tuple[str, ...]
    raw: Message = field(repr=False, compare=False)
    #: Whether the server keeps this session's meeting record (``client.transcripts``).
    transcript_stored: bool = False
    #: Simultaneous mode: how each direction is paced; empty in consecutive mode.
    simultaneous_directions: tuple[SimultaneousDirection, ...] = ()

    @property
    def simultaneous(self) -> bool:
        """Whether the session interprets simultaneously (translations while the speaker talks)."""
        return self.effective_config.translation_options.mode == pb.INTERPRETATION_MODE_SIMULTANEOUS


@dataclass(frozen=True)
class InterimTranscript:
    """A hypothesis for the utterance being spoken; a later one replaces it."""

    utterance_id: int
    text: str
    language_code: str
    stability: float
    audio_start_s: float
    audio_end_s: float
    raw: Message = field(repr=False, compare=False)
    #: The prefix of ``text`` the recogniser will not change any more (grows, never shrinks).
    stable_text: str = ""


@dataclass(frozen=True)
class FinalTranscript:
    """The final text of one utterance; translations into ``target_language_codes`` follow."""

    utterance_id: int
    text: str
    language_code: str
    confidence: float
    audio_start_s: float
    audio_end_s: float
    target_language_codes: tuple[str, ...]
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class TranslationToken:
    """The next piece of a translation (with its leading space, if any)."""

    utterance_id: int
    source_language_code: str
    target_language_code: str
    text: str
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class TranslationComplete:
    """The whole translation of one utterance into one language."""

    utterance_id: int
    source_language_code: str
    target_language_code: str
    text: str
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class TranslationTentative:
    """Simultaneous mode: what a translation would say now after its committed tokens; the next one replaces it.

    ``text`` follows the text of the tokens received so far for this
    utterance and language (with its leading space, if any), may change or
    disappear (``""``), and is never part of :class:`TranslationComplete`:
    show it greyed after the committed text.
    """

    utterance_id: int
    source_language_code: str
    target_language_code: str
    text: str
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class TranslationReset:
    """Discard the tokens received so far for this translation; it starts again."""

    utterance_id: int
    target_language_code: str
    reason: str
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class TranslationAudio:
    """A piece of a spoken translation (with ``speech_output``); see :mod:`tongyeok_client.speech` to play or save it.

    Within one language, an utterance's chunks (``sequence_number`` 0, 1, ...
    up to ``last_chunk``) come before the next utterance's. A
    :class:`TranslationReset` of the same utterance and language voids the
    chunks received so far.
    """

    utterance_id: int
    target_language_code: str
    sequence_number: int
    audio: bytes
    last_chunk: bool
    #: ``"LINEAR16"``, ``"OGG_OPUS"``, ``"MULAW"`` or ``"ALAW"``.
    encoding: str
    sample_rate_hertz: int
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class VoiceActivity:
    """Speech began or ended at ``audio_offset_s``."""

    kind: Literal["begin", "end", "unspecified"]
    audio_offset_s: float
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class Notice:
    """Something non-fatal the caller should know; ``code`` is e.g. ``"TRANSLATION_FAILED"``."""

    code: str
    message: str
    #: The utterance concerned, or 0.
    utterance_id: int
    #: The translation language concerned, or "".
    target_language_code: str
    raw: Message = field(repr=False, compare=False)


#: What :meth:`InterpreterClient.interpret` yields.
@dataclass(frozen=True)
class SessionResumed:
    """The stream broke and the session continues on a new one (the server's ``session_resumed``).

    Events missed meanwhile follow, each once, in order; the client resends the
    audio the server had not taken (from ``resend_from_byte``).
    """

    session_id: str
    resend_from_byte: int
    detached_s: float
    #: True when the session continues on another server (the one it was on shut down).
    moved: bool
    raw: Message = field(repr=False, compare=False)


@dataclass(frozen=True)
class Reconnecting:
    """The client lost the stream and is reconnecting (made by the client, not sent by the server).

    ``attempt`` counts from 1; ``reason`` is the gRPC status that ended the
    stream, e.g. ``"UNAVAILABLE: Socket closed"``.
    """

    attempt: int
    reason: str
    raw: Message = field(repr=False, compare=False)


Event: TypeAlias = (
    SessionStarted
    | InterimTranscript
    | FinalTranscript
    | TranslationToken
    | TranslationTentative
    | TranslationComplete
    | TranslationReset
    | VoiceActivity
    | Notice
    | TranslationAudio
    | SessionResumed
    | Reconnecting
)


#: What :meth:`InterpreterClient.translate_text` yields.
@dataclass(frozen=True)
class TranslateTextStarted:
    """The first event of ``translate_text``: the engine and what it does with the options."""

    translator: Engine
    #: Options the caller set that the engine cannot honour, each with the reason.
    ignored_options: tuple[str, ...]
    target_language_codes: tuple[str, ...]
    raw: Message = field(repr=False, compare=False)


TranslationEvent: TypeAlias = (
    TranslateTextStarted | TranslationToken | TranslationComplete | TranslationReset | Notice | TranslationAudio
)


@dataclass(frozen=True)
class Languages:
    """What the running engines support (the answer of ``ListLanguages``)."""

    recognizer: Engine
    translator: Engine
    recognition_language_codes: tuple[str, ...]
    #: ``(source, target)`` translation directions.
    translation_pairs: tuple[tuple[str, str], ...]
    max_source_languages: int
    raw: Message = field(repr=False, compare=False)


def _seconds(d: duration_pb2.Duration) -> float:
    return d.seconds + d.nanos / 1e9


def _engine(e: pb.EngineInfo) -> Engine:
    return Engine(e.name, e.detail)


def _notice(n: pb.Notice, raw: Message) -> Notice:
    name = pb.NoticeCode.Name(n.code) if n.code in pb.NoticeCode.values() else str(n.code)
    return Notice(name.removeprefix("NOTICE_CODE_"), n.message, n.utterance_id, n.target_language_code, raw)


def translation_event_from_proto(kind: str | None, msg: Message, raw: Message) -> TranslationEvent | None:
    """Convert one ``TranslateTextResponse`` event (``kind`` is the oneof field set, ``msg`` its message)."""
    if kind == "started":
        st = cast(pb.TranslateTextStarted, msg)
        return TranslateTextStarted(
            _engine(st.translator), tuple(st.ignored_options), tuple(st.target_language_codes), raw
        )
    return _translation_event(kind, msg, raw)


def _translation_event(
    kind: str | None, msg: Message, raw: Message
) -> TranslationToken | TranslationComplete | TranslationReset | Notice | TranslationAudio | None:
    """The translation events Interpret and TranslateText share."""
    if kind == "translation_token":
        t = cast(pb.TranslationToken, msg)
        return TranslationToken(t.utterance_id, t.source_language_code, t.target_language_code, t.text, raw)
    if kind == "translation_complete":
        c = cast(pb.TranslationComplete, msg)
        return TranslationComplete(c.utterance_id, c.source_language_code, c.target_language_code, c.text, raw)
    if kind == "translation_reset":
        r = cast(pb.TranslationReset, msg)
        return TranslationReset(r.utterance_id, r.target_language_code, r.reason, raw)
    if kind == "notice":
        return _notice(cast(pb.Notice, msg), raw)
    if kind == "translation_audio":
        a = cast(pb.TranslationAudio, msg)
        encoding = pb.SpeechEncoding.Name(a.encoding) if a.encoding in pb.SpeechEncoding.values() else str(a.encoding)
        return TranslationAudio(
            a.utterance_id,
            a.target_language_code,
            a.sequence_number,
            a.audio,
            a.last_chunk,
            encoding.removeprefix("SPEECH_ENCODING_"),
            a.sample_rate_hertz,
            raw,
        )
    return None


def event_from_proto(response: pb.InterpretResponse) -> Event | None:
    """Convert one ``InterpretResponse`` to its event; ``None`` for an event kind this client does not know."""
    kind = response.WhichOneof("event")
    if kind == "session_started":
        s = response.session_started
        return SessionStarted(
            s.session_id,
            s.effective_config,
            _engine(s.recognizer),
            _engine(s.translator),
            tuple(s.ignored_options),
            response,
            transcript_stored=s.transcript_stored,
            simultaneous_directions=tuple(
                SimultaneousDirection(
                    d.source_language_code,
                    d.target_language_code,
                    pb.SimultaneousLatency.Name(d.latency).removeprefix("SIMULTANEOUS_LATENCY_").lower(),
                    d.holdback_words,
                    d.agreement,
                    d.max_requests_per_speech_second,
                )
                for d in s.simultaneous_directions
            ),
        )
    if kind == "session_resumed":
        r = response.session_resumed
        return SessionResumed(r.session_id, r.resend_from_byte, _seconds(r.detached_for), r.moved, response)
    if kind == "interim_transcript":
        i = response.interim_transcript
        return InterimTranscript(
            i.utterance_id,
            i.text,
            i.language_code,
            i.stability,
            _seconds(i.audio_start_offset),
            _seconds(i.audio_end_offset),
            response,
            stable_text=i.stable_text,
        )
    if kind == "final_transcript":
        f = response.final_transcript
        return FinalTranscript(
            f.utterance_id,
            f.text,
            f.language_code,
            f.confidence,
            _seconds(f.audio_start_offset),
            _seconds(f.audio_end_offset),
            tuple(f.target_language_codes),
            response,
        )
    if kind == "translation_tentative":
        t = response.translation_tentative
        return TranslationTentative(t.utterance_id, t.source_language_code, t.target_language_code, t.text, response)
    if kind == "voice_activity":
        v = response.voice_activity
        kinds: dict[int, Literal["begin", "end"]] = {
            pb.VOICE_ACTIVITY_TYPE_SPEECH_BEGIN: "begin",
            pb.VOICE_ACTIVITY_TYPE_SPEECH_END: "end",
        }
        return VoiceActivity(kinds.get(v.type, "unspecified"), _seconds(v.audio_offset), response)
    if kind is None:
        return None
    return _translation_event(kind, getattr(response, kind), response)


def languages_from_proto(r: pb.ListLanguagesResponse) -> Languages:
    """Convert a ``ListLanguagesResponse``."""
    return Languages(
        _engine(r.recognizer),
        _engine(r.translator),
        tuple(r.recognition_language_codes),
        tuple((p.source_language_code, p.target_language_code) for p in r.translation_pairs),
        r.max_source_languages,
        r,
    )
