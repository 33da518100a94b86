"""The embedded synthesizer: Piper for the languages it has a voice for (English), espeak-ng for the rest.

Piper is an optional extra (GPL); without it every language, English too,
is spoken by espeak-ng. A voice name says which engine speaks it (Piper's
``joe``, espeak-ng's language tags), so a caller may also pick espeak-ng for
English.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from tongyeok_server.engines import EngineDescription, Voice
from tongyeok_server.settings import GoogleSettings, OpenAISettings, SynthesisSettings
from tongyeok_server.synthesis import espeak_engine, piper_engine
from tongyeok_server.synthesis.base import ClauseSynthesizer, SpeechRequest

log = logging.getLogger(__name__)


class EmbeddedSynthesizer(ClauseSynthesizer):
    """Each voice spoken by the engine it belongs to."""

    def __init__(self, engines: Sequence[ClauseSynthesizer]) -> None:
        self._engines = tuple(engines)
        self._by_voice: dict[str, ClauseSynthesizer] = {}
        self._voices: list[Voice] = []
        for engine in self._engines:  # earlier engines' voices come first: they are the defaults
            for voice in engine.voices():
                if voice.name not in self._by_voice:
                    self._by_voice[voice.name] = engine
                    self._voices.append(voice)
        self._voices.sort(key=lambda v: v.language_codes[0].split("-")[0])  # stable: earlier engines stay first

    @property
    def description(self) -> EngineDescription:
        """Which engines are in it."""
        names = "+".join(e.description.name for e in self._engines) or "nothing installed"
        return EngineDescription("embedded", f"{names}, {len(self._voices)} voices")

    def voices(self) -> Sequence[Voice]:
        """Piper's voices, then espeak-ng's, grouped by language."""
        return self._voices

    def output_rate(self, request: SpeechRequest) -> int:
        """The rate of the engine the voice belongs to."""
        return self._by_voice[request.voice.name].output_rate(request)

    def speak_clause(self, request: SpeechRequest, text: str) -> AsyncIterator[bytes]:
        """Speak with the voice's own engine."""
        return self._by_voice[request.voice.name].speak_clause(request, text)

    def warm_up(self) -> None:
        """Let each engine start loading."""
        for engine in self._engines:
            engine.warm_up()

    def close(self) -> None:
        """Close each engine."""
        for engine in self._engines:
            engine.close()


def create(settings: SynthesisSettings, google: GoogleSettings, openai: OpenAISettings) -> EmbeddedSynthesizer:
    """Factory used by the registry (``--synthesizer embedded``, the default)."""
    engines: list[ClauseSynthesizer] = []
    if piper_engine.available():
        engines.append(piper_engine.PiperSynthesizer(settings.synthesis_threads))
    else:
        log.info("piper-tts is not installed (pip install 'tongyeok[piper]'); English is spoken by espeak-ng")
    engines.append(espeak_engine.EspeakSynthesizer())
    return EmbeddedSynthesizer(engines)
