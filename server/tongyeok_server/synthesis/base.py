"""The interface every speech synthesis engine implements.

A synthesizer turns the clauses of one translation, as they arrive, into
16-bit mono PCM at a rate of its choosing (``output_rate``), or, when it
can produce them itself (``output_encoding``), into the caller's encoding at
the caller's rate, which the speaker then passes on untouched. ``speak`` is an
async generator run on the server's event loop: an engine that blocks (Piper,
espeak-ng) does its work on threads or in processes, a cloud engine does its
I/O on the loop. Cancelling the task that iterates it (or closing it) must
stop the engine at once and close its backend connection or process.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from tongyeok_server import languages
from tongyeok_server.engines import EngineDescription, Voice
from tongyeok_server.session.speech import SpeechEncoding


@dataclass(frozen=True)
class SpeechRequest:
    """The translation of one utterance into one language, to be spoken."""

    language: str  # BCP-47 tag of the text
    voice: Voice
    speaking_rate: float = 1.0
    sample_rate_hz: int = 24000  # what the caller wants; an engine that can produce it directly does
    encoding: SpeechEncoding = SpeechEncoding.LINEAR16  # what the caller wants, likewise


class Synthesizer(abc.ABC):
    """A speech synthesis engine, shared by all sessions of a server."""

    @property
    @abc.abstractmethod
    def description(self) -> EngineDescription:
        """Engine name and detail for callers (never a credential)."""

    @abc.abstractmethod
    def voices(self) -> Sequence[Voice]:
        """Every voice, the default voice of each language before the others of that language."""

    def default_voice(self, language: str) -> Voice | None:
        """The voice "default" selects for ``language``: one for its exact tag, else its language's first."""
        candidates = [v for v in self.voices() if v.speaks(language)]
        tag = languages.normalize(language).lower()
        for voice in candidates:
            if any(code.lower() == tag for code in voice.language_codes):
                return voice
        return candidates[0] if candidates else None

    def find_voice(self, name: str, language: str) -> Voice | None:
        """The voice called ``name`` if it speaks ``language``."""
        for voice in self.voices():
            if voice.name == name and voice.speaks(language):
                return voice
        return None

    @abc.abstractmethod
    def output_rate(self, request: SpeechRequest) -> int:
        """The sample rate of the PCM ``speak`` yields for ``request``."""

    def output_encoding(self, request: SpeechRequest) -> SpeechEncoding:
        """What ``speak`` yields: LINEAR16 (PCM at ``output_rate``), or ``request.encoding`` itself.

        An engine that answers ``request.encoding`` yields the caller's bytes
        at ``request.sample_rate_hz`` (for OGG_OPUS: one Ogg stream per
        utterance, each chunk whole pages); the speaker sends them as they are.
        """
        return SpeechEncoding.LINEAR16

    @abc.abstractmethod
    def speak(self, request: SpeechRequest, clauses: AsyncIterator[str]) -> AsyncIterator[bytes]:
        """Speak each clause as it comes, in order; yields audio as ``output_encoding`` says (usually PCM).

        Raises ``ServiceError`` when synthesis fails (the utterance's audio
        ends there; the session goes on).
        """

    def warm_up(self) -> None:  # noqa: B027 - optional hook
        """Start loading what the first clause would otherwise wait for (must not block; called per session)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Once, on the server's event loop, before the port opens (Google: list the voices there)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release shared resources at server shutdown."""


class ClauseSynthesizer(Synthesizer):
    """A synthesizer that speaks one clause per call (no streaming input): implement ``speak_clause``."""

    async def speak(self, request: SpeechRequest, clauses: AsyncIterator[str]) -> AsyncIterator[bytes]:
        """Speak the clauses one after another."""
        async for clause in clauses:
            async for pcm in self.speak_clause(request, clause):
                yield pcm

    @abc.abstractmethod
    def speak_clause(self, request: SpeechRequest, text: str) -> AsyncIterator[bytes]:
        """Speak one clause; yields PCM at ``output_rate(request)``."""
