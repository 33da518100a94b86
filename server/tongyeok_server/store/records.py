"""A meeting record as the rest of the server sees it: plain frozen data, no database types.

The exports are pure functions of these; the Transcripts servicer turns them
into ``tongyeok.v1.Session`` messages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from tongyeok_server import languages


class RecordState(enum.Enum):
    """How complete a record is (mirrors ``tongyeok.v1.RecordState``)."""

    OPEN = 1
    COMPLETE = 2
    INCOMPLETE = 3


@dataclass(frozen=True)
class SpeechRecord:
    """How a translation was spoken (speech output): what the caller received, not the audio."""

    voice: str
    encoding: str  # a ``SpeechEncoding`` value, e.g. "LINEAR16"
    sample_rate_hz: int
    audio_bytes: int
    chunks: int
    duration_s: float | None  # None for Ogg Opus (its length is not in its size)
    first_audio_after_final_s: float | None


@dataclass(frozen=True)
class TranslationRecord:
    """The translation of one utterance into one language."""

    language_code: str
    text: str
    failed: bool = False
    failure_message: str = ""
    speech: SpeechRecord | None = None  # spoken to its last chunk (speech output), else None


@dataclass(frozen=True)
class UtteranceRecord:
    """One final transcript and its translations (in the order of the session's target languages)."""

    utterance_id: int
    text: str
    language_code: str
    confidence: float
    start_s: float
    end_s: float
    final_at: datetime | None
    translations: tuple[TranslationRecord, ...] = ()

    def translation(self, language_code: str = "") -> TranslationRecord | None:
        """The translation into ``language_code`` (a bare language matches its regions), or the first one."""
        for t in self.translations:
            if not language_code or language_matches(language_code, t.language_code):
                return t
        return None

    def text_in(self, language_code: str = "") -> str | None:
        """The utterance in ``language_code``: its own text if spoken in it, else its translation's.

        With no language, the first translation. None if there is none (or it failed).
        """
        if language_code and language_matches(language_code, self.language_code):
            return self.text
        t = self.translation(language_code)
        return t.text if t is not None and not t.failed else None


@dataclass(frozen=True)
class SessionRecord:
    """One session's record; ``utterances`` is empty in the BASIC view (``utterance_count`` is not)."""

    session_id: str
    caller_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str
    config_json: str  # the effective InterpretConfig in proto3 JSON
    source_languages: tuple[str, ...]
    target_languages: tuple[str, ...]
    recognizer: str
    translator: str
    incomplete_reason: str
    audio_duration_s: float | None
    audio_stored: bool
    utterance_count: int
    utterances: tuple[UtteranceRecord, ...] = ()

    @property
    def state(self) -> RecordState:
        """OPEN until the end is written; INCOMPLETE if anything is known to be missing."""
        if self.incomplete_reason:
            return RecordState.INCOMPLETE
        return RecordState.OPEN if self.ended_at is None else RecordState.COMPLETE

    @property
    def duration_s(self) -> float | None:
        """Wall-clock length of the session, once it has ended."""
        if self.ended_at is None:
            return None
        return max(0.0, (self.ended_at - self.started_at).total_seconds())

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language of the session, spoken ones first, each language once."""
        out: list[str] = []
        for code in (*self.source_languages, *self.target_languages):
            if not any(languages.same_language(code, seen) for seen in out):
                out.append(code)
        return tuple(out)


def language_matches(wanted: str, code: str) -> bool:
    """``es`` matches ``es`` and ``es-MX``; ``es-MX`` matches ``es-MX`` only (case-insensitive)."""
    wanted, code = languages.normalize(wanted), languages.normalize(code)
    if "-" in wanted:
        return wanted == code
    return languages.primary(code) == wanted
