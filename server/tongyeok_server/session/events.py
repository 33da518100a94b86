"""What a session tells its caller, before it is put on the wire."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition.base import SpeechActivity, Transcript


class NoticeCode(enum.Enum):
    """Mirrors ``tongyeok.v1.NoticeCode``."""

    TRANSLATION_FAILED = 1
    RECOGNIZER_RETRYING = 2
    RECOGNIZER_RESTARTED = 3
    RECOGNITION_BEHIND = 4
    RECORD_INCOMPLETE = 5
    RECORD_RESTORED = 6
    SYNTHESIS_FAILED = 7
    ECHO_HEARD = 10
    LIMITS_LOCAL = 15
    LIMITS_SHARED = 16


@dataclass(frozen=True)
class Interim:
    """A hypothesis for utterance ``utterance_id``."""

    utterance_id: int
    transcript: Transcript


@dataclass(frozen=True)
class Final:
    """The final text of utterance ``utterance_id`` and where it will be translated."""

    utterance_id: int
    transcript: Transcript
    target_languages: tuple[str, ...]
    #: Non-zero: this is the session's own speech of that utterance coming back (``echo/``): not translated.
    echo_of: int = 0


@dataclass(frozen=True)
class Token:
    """The next piece of a translation."""

    utterance_id: int
    source_language: str
    target_language: str
    text: str


@dataclass(frozen=True)
class Tentative:
    """Simultaneous mode: what a translation would say now after its committed tokens (replaces the previous)."""

    utterance_id: int
    source_language: str
    target_language: str
    text: str


@dataclass(frozen=True)
class Complete:
    """A whole translation."""

    utterance_id: int
    source_language: str
    target_language: str
    text: str


@dataclass(frozen=True)
class Reset:
    """Discard the tokens so far of one translation."""

    utterance_id: int
    target_language: str
    reason: str


@dataclass(frozen=True)
class Activity:
    """Speech began or ended."""

    activity: SpeechActivity


@dataclass(frozen=True)
class Notice:
    """A recoverable problem."""

    code: NoticeCode
    message: str
    utterance_id: int = 0
    target_language: str = ""


@dataclass(frozen=True)
class Audio:
    """A piece of the spoken translation of one utterance into one language (speech output)."""

    utterance_id: int
    target_language: str
    sequence_number: int
    audio: bytes
    last: bool
    encoding: str  # a ``session.speech.SpeechEncoding`` value, e.g. "LINEAR16"
    sample_rate_hz: int
    voice: str = ""  # the voice's name (the meeting record keeps it)


@dataclass(frozen=True)
class End:
    """The session is over: OK when ``error`` is None; ``moved``: it goes on on another server (``continuation()``)."""

    error: ServiceError | None = None
    moved: bool = False


SessionEvent = Interim | Final | Token | Tentative | Complete | Reset | Activity | Notice | Audio | End
