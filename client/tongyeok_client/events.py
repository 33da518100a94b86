"""The events a Tongyeok stream yields, as small frozen dataclasses (offsets in float seconds).

Each keeps the proto message it came from in ``raw`` (the whole
``InterpretResponse`` / ``TranslateTextResponse``) for callers who want the
wire form, e.g. as JSON. Each class names the message it mirrors
(``@mirrors``): the conversion is derived from the message's descriptor
(``event_mapping.py``), field by name, so this module declares the types and
their documentation, never a second copy of the schema's wiring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias, cast

from google.protobuf.message import Message

from .event_mapping import MIRRORS, from_message, mirrors
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


def _activity(name: str) -> Literal["begin", "end", "unspecified"]:
    return "begin" if name == "SPEECH_BEGIN" else "end" if name == "SPEECH_END" else "unspecified"


def _pair(pair: pb.LanguagePair) -> tuple[str, str]:
    return (pair.source_language_code, pair.target_language_code)


@mirrors(pb.EngineInfo)
@dataclass(frozen=True)
class Engine:
    """An engine behind the service, e.g. ``Engine("pocketsphinx", "en-us model")``."""

    name: str
    detail: str = ""


@mirrors(pb.SimultaneousDirection)
@dataclass(frozen=True)
class SimultaneousDirection:
    """How a simultaneous session paces one direction (``source`` into ``target``), as the server chose it."""

    source_language_code: str
    target_language_code: str
    #: ``"low"``, ``"balanced"`` or ``"accurate"``.
    latency: str = field(metadata={"convert": str.lower})
    #: The last stable words of the speech that wait for the words after them before they are translated.
    holdback_words: int
    #: How many successive re-translations must agree before a word is committed.
    agreement: int
    #: The most translation requests per second of speech (0: no limit, a local engine).
    max_requests_per_speech_second: float


@mirrors(pb.SessionStarted, omitted=("resume_token", "resume_window", "echo_suppression"))
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
    #: The engine that speaks the translations (empty name when the session does not speak).
    synthesizer: Engine = Engine("")

    @property
    def simultaneous(self) -> bool:
        """Whether the session interprets simultaneously (translations while the speaker talks)."""
        return self.effective_config.translation_options.mode == pb.INTERPRETATION_MODE_SIMULTANEOUS


@mirrors(pb.InterimTranscript)
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


@mirrors(pb.FinalTranscript)
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
    #: The server judged this utterance the room hearing the session's own speech (echo suppression).
    echo: bool = False
    #: The utterance whose translation was heard, when ``echo``.
    echo_of_utterance_id: int = 0


@mirrors(pb.TranslationToken)
@dataclass(frozen=True)
class TranslationToken:
    """The next piece of a translation (with its leading space, if any)."""

    utterance_id: int
    source_language_code: str
    target_language_code: str
    text: str
    raw: Message = field(repr=False, compare=False)


@mirrors(pb.TranslationComplete)
@dataclass(frozen=True)
class TranslationComplete:
    """The whole translation of one utterance into one language."""

    utterance_id: int
    source_language_code: str
    target_language_code: str
    text: str
    raw: Message = field(repr=False, compare=False)


@mirrors(pb.TranslationTentative)
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


@mirrors(pb.TranslationReset)
@dataclass(frozen=True)
class TranslationReset:
    """Discard the tokens received so far for this translation; it starts again."""

    utterance_id: int
    target_language_code: str
    reason: str
    raw: Message = field(repr=False, compare=False)


@mirrors(pb.TranslationAudio)
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


@mirrors(pb.VoiceActivity)
@dataclass(frozen=True)
class VoiceActivity:
    """Speech began or ended at ``audio_offset_s``."""

    kind: Literal["begin", "end", "unspecified"] = field(metadata={"proto": "type", "convert": _activity})
    audio_offset_s: float
    raw: Message = field(repr=False, compare=False)


@mirrors(pb.Notice)
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
@mirrors(pb.SessionResumed, omitted=("resend_from_offset", "next_sequence_number"))
@dataclass(frozen=True)
class SessionResumed:
    """The stream broke and the session continues on a new one (the server's ``session_resumed``).

    Events missed meanwhile follow, each once, in order; the client resends the
    audio the server had not taken (from ``resend_from_byte``).
    """

    session_id: str
    resend_from_byte: int
    detached_s: float = field(metadata={"proto": "detached_for"})
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
@mirrors(pb.TranslateTextStarted)
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


@mirrors(pb.ListLanguagesResponse, omitted=("voices", "synthesizer"))
@dataclass(frozen=True)
class Languages:
    """What the running engines support (the answer of ``ListLanguages``)."""

    recognizer: Engine
    translator: Engine
    recognition_language_codes: tuple[str, ...]
    #: ``(source, target)`` translation directions.
    translation_pairs: tuple[tuple[str, str], ...] = field(metadata={"convert": _pair})
    max_source_languages: int
    raw: Message = field(repr=False, compare=False)


#: The classes ``event_from_proto`` and ``translation_event_from_proto`` may return.
_EVENTS: frozenset[type[object]] = frozenset(Event.__args__)
_TRANSLATION_EVENTS: frozenset[type[object]] = frozenset(TranslationEvent.__args__)


def event_from_proto(response: pb.InterpretResponse) -> Event | None:
    """Convert one ``InterpretResponse`` to its event; ``None`` for an event kind this client does not know."""
    kind = response.WhichOneof("event")
    if kind is None:
        return None
    message = getattr(response, kind)
    cls = MIRRORS.get(message.DESCRIPTOR.full_name)
    return cast(Event, from_message(cls, message, response)) if cls is not None and cls in _EVENTS else None


def translation_event_from_proto(kind: str | None, msg: Message, raw: Message) -> TranslationEvent | None:
    """Convert one ``TranslateTextResponse`` event (``kind`` is the oneof field set, ``msg`` its message)."""
    if kind is None:
        return None
    cls = MIRRORS.get(msg.DESCRIPTOR.full_name)
    return (
        cast(TranslationEvent, from_message(cls, msg, raw)) if cls is not None and cls in _TRANSLATION_EVENTS else None
    )


def languages_from_proto(r: pb.ListLanguagesResponse) -> Languages:
    """Convert a ``ListLanguagesResponse``."""
    return from_message(Languages, r, r)
