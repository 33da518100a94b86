"""What a caller asked speech output to do, validated and engine-neutral."""

from __future__ import annotations

import enum
from dataclasses import dataclass

DEFAULT_SAMPLE_RATE_HZ = 24000
MIN_SAMPLE_RATE_HZ = 8000
MAX_SAMPLE_RATE_HZ = 48000
# The rates the Opus codec runs at; anything else would be resampled inside the codec anyway.
OPUS_SAMPLE_RATES_HZ = (8000, 12000, 16000, 24000, 48000)
MIN_SPEAKING_RATE = 0.5
MAX_SPEAKING_RATE = 2.0
DEFAULT_VOICE = "default"


class SpeechEncoding(enum.Enum):
    """Mirrors ``tongyeok.v1.SpeechEncoding``."""

    LINEAR16 = "LINEAR16"
    OGG_OPUS = "OGG_OPUS"
    MULAW = "MULAW"
    ALAW = "ALAW"


@dataclass(frozen=True)
class SpeechOutput:
    """Speech output of one stream or request.

    ``voices`` maps each target language to speak (as the stream names it)
    to the voice asked for ("default" for the synthesizer's choice); the
    extension resolves it against the engine.
    """

    voices: tuple[tuple[str, str], ...]
    encoding: SpeechEncoding = SpeechEncoding.LINEAR16
    sample_rate_hz: int = DEFAULT_SAMPLE_RATE_HZ
    speaking_rate: float = 1.0

    def voice_for(self, language: str) -> str | None:
        """The voice asked for ``language``, or None if it is not spoken."""
        for lang, voice in self.voices:
            if lang == language:
                return voice
        return None

    @property
    def languages(self) -> tuple[str, ...]:
        """The target languages spoken."""
        return tuple(lang for lang, _ in self.voices)
