"""The validated configuration of one Interpret session (engine-neutral)."""

from __future__ import annotations

from dataclasses import dataclass

from tongyeok_server import languages
from tongyeok_server.audio.format import AudioSpec
from tongyeok_server.session.speech import SpeechOutput
from tongyeok_server.simultaneous.options import SimultaneousConfig
from tongyeok_server.translation.base import TranslationOptions


@dataclass(frozen=True)
class SessionConfig:
    """What a caller asked for, checked and normalised."""

    audio: AudioSpec
    source_languages: tuple[str, ...]  # as the recogniser names them, e.g. ("ko-KR", "en-US")
    target_languages: tuple[str, ...]
    interim_results: bool
    voice_activity_events: bool
    translation: TranslationOptions
    speech: SpeechOutput | None = None  # speak the translations (synthesis/); None: text only
    #: Whether the caller asked for the meeting record to be kept; None = the server's default.
    store_transcript: bool | None = None
    #: Simultaneous interpretation (translate while the speaker talks); None: consecutive.
    simultaneous: SimultaneousConfig | None = None

    #: Whether the caller asked for echo suppression (``echo/``); None = the server's default.
    echo_suppression: bool | None = None

    @property
    def mode(self) -> str:
        """``"simultaneous"`` or ``"consecutive"`` (for logs and the meeting record)."""
        return "simultaneous" if self.simultaneous is not None else "consecutive"

    @property
    def two_way(self) -> bool:
        """Whether the caller speaks two languages in turn."""
        return len(self.source_languages) == 2

    def targets_for(self, spoken_language: str) -> tuple[str, ...]:
        """The languages a sentence spoken in ``spoken_language`` is translated into."""
        return tuple(t for t in self.target_languages if not languages.same_language(t, spoken_language))
