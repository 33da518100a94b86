"""The interface every speech recogniser implements.

A recogniser opens one ``RecognizerStream`` per Interpret stream. The session
writes the caller's audio bytes into it, unchanged and in the caller's
format; the engine converts what it must. Results come back through the
listener callback, called on the server's event loop (the Google engine
lives there; the embedded engines' pipe readers hand each event to it), so
a session's state changes in one place and a stream cancelled on the loop
hears nothing after its cancel.

The server serves streams on one asyncio event loop. ``open_stream`` is
called from a coroutine on that loop and audio arrives through
``write_async``; an engine that lives on the loop (Google) overrides it and
adds no thread hop per chunk; the default runs ``write`` on a worker thread
so the loop never waits on an engine whose ``write`` may block (the embedded
engines' pool overrides it too, with its ordered writer per worker). ``finish`` and ``cancel`` are called from any thread
and must not block.

Every stream ends with exactly one ``RecognitionEnded`` event, unless it was
cancelled (after ``cancel()`` the listener is never called again).
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tongyeok_server.audio.format import AudioSpec
from tongyeok_server.engines import EngineDescription
from tongyeok_server.errors import ServiceError


@dataclass(frozen=True)
class RecognitionConfig:
    """What a recogniser needs to know about one stream."""

    audio: AudioSpec
    language_codes: tuple[str, ...]
    interim_results: bool = True
    voice_activity_events: bool = False
    session_id: str = ""  # for the engine's log lines (never sent to a backend)


@dataclass(frozen=True)
class Transcript:
    """A hypothesis (``is_final`` False) or the final text of one utterance.

    Offsets are seconds from the start of the stream's audio, as the caller
    sent it, whatever the engine did underneath (restarts, resampling).
    """

    text: str
    language_code: str
    is_final: bool
    start_offset_s: float
    end_offset_s: float
    stability: float = 0.0
    confidence: float = 0.0
    #: Of an interim: the prefix of ``text`` the engine will not change any more (grows within an
    #: utterance, never shrinks; ``text`` starts with it). Empty when the engine cannot tell.
    stable_text: str = ""


@dataclass(frozen=True)
class SpeechActivity:
    """Speech began (``began``) or ended at ``offset_s``."""

    began: bool
    offset_s: float


class RecognizerNoticeKind(enum.Enum):
    """Recoverable things an engine tells the caller about."""

    RETRYING = "retrying"
    RESTARTED = "restarted"
    BEHIND = "behind"


@dataclass(frozen=True)
class RecognizerNotice:
    """A recoverable event the caller should hear about."""

    kind: RecognizerNoticeKind
    message: str


@dataclass(frozen=True)
class RecognitionEnded:
    """The last event of a stream: all results delivered, or ``error``."""

    error: ServiceError | None = None


RecognitionEvent = Transcript | SpeechActivity | RecognizerNotice | RecognitionEnded
RecognitionListener = Callable[[RecognitionEvent], None]


class RecognizerStream(abc.ABC):
    """One stream of audio into an engine."""

    @abc.abstractmethod
    def write(self, audio: bytes) -> None:
        """Queue audio (whole frames, caller's format). May block briefly for flow control."""

    async def write_async(self, audio: bytes) -> None:
        """``write`` for a caller on the event loop: returns when the engine has taken the audio.

        Awaiting is the flow control: a full engine delays the next read from
        the caller, and gRPC's window slows the caller down. The default runs
        ``write`` on a worker thread (one hop per chunk), which suits engines
        whose ``write`` may block.
        """
        await asyncio.to_thread(self.write, audio)

    def caller_away(self, away: bool) -> None:  # noqa: B027 - optional hook
        """The caller's connection broke (``True``) or is back (``False``); any thread, must not block.

        While away, a missing chunk is not a pause: the audio goes on, after a
        resume, from where it stopped, possibly mid-word. An engine that would
        finalise what it heard after a while without audio (Google's idle
        rule) must not; one that waits for audio anyway needs nothing.
        """

    @abc.abstractmethod
    def finish(self) -> None:
        """No more audio: deliver the remaining results, then ``RecognitionEnded``."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """The caller is gone: release everything now. Idempotent; no more events."""


class Recognizer(abc.ABC):
    """A speech recognition engine, shared by all sessions of a server."""

    @property
    @abc.abstractmethod
    def description(self) -> EngineDescription:
        """Engine name and detail for callers."""

    @property
    def max_source_languages(self) -> int:
        """How many languages one stream may be recognised in at once."""
        return 1

    @abc.abstractmethod
    def language_codes(self) -> Sequence[str]:
        """BCP-47 codes this engine recognises (as it names them, e.g. ``en-US``)."""

    def resolve_language(self, code: str) -> str | None:
        """The engine's own code for a caller's ``code``, or None if unsupported.

        The default accepts an exact match (case-insensitive) or a bare
        language (``en``) that matches exactly one supported code.
        """
        from tongyeok_server import languages

        wanted = languages.normalize(code)
        supported = list(self.language_codes())
        if wanted in supported:
            return wanted
        if "-" not in wanted:
            matches = [c for c in supported if languages.primary(c) == wanted]
            if len(matches) == 1:
                return matches[0]
        return None

    def check_audio(self, audio: AudioSpec) -> None:  # noqa: B027 - optional hook
        """Raise ``ServiceError`` if this engine cannot take ``audio``."""

    @abc.abstractmethod
    def open_stream(self, config: RecognitionConfig, listener: RecognitionListener) -> RecognizerStream:
        """Start recognising. Raises ``ServiceError`` (e.g. RESOURCE_EXHAUSTED)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release shared resources at server shutdown."""
