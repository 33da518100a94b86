"""OpenAI text-to-speech (``/v1/audio/speech``), or any OpenAI-compatible server through the base URL.

Selected with ``--synthesizer openai``; the key is ``OPENAI_API_KEY`` as for
translation, the server ``--openai-tts-base-url`` (default: the translation's
``--openai-base-url``, then OpenAI's). One streamed request per clause
(``response_format`` pcm: 24 kHz 16-bit mono, passed on as it arrives), on
the server's event loop through ``AsyncOpenAI``. Models that take
``instructions`` (gpt-4o-mini-tts) are told to sound like a calm,
professional interpreter (``--openai-tts-instructions``); tts-1 models are
not sent it. OpenAI's voices speak every language its models know, so each
voice is listed for each of them.

Retries: the SDK's own (``--openai-max-retries``), which happen before any
audio; a stream cut mid-clause is a failure of that utterance's speech
(``SYNTHESIS_FAILED``): its audio so far has been sent and cannot be taken
back. Cancel: leaving the response's context closes its connection at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

import grpc
import openai
from openai import AsyncOpenAI

from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition.base import EngineDescription
from tongyeok_server.settings import ServerSettings
from tongyeok_server.synthesis.base import ClauseSynthesizer, SpeechRequest, Voice

SAMPLE_RATE_HZ = 24000
VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
# The languages OpenAI documents for its speech models (those of Whisper).
LANGUAGES = [
    "af",
    "ar",
    "hy",
    "az",
    "be",
    "bs",
    "bg",
    "ca",
    "zh",
    "hr",
    "cs",
    "da",
    "nl",
    "en",
    "et",
    "fi",
    "fr",
    "gl",
    "de",
    "el",
    "he",
    "hi",
    "hu",
    "is",
    "id",
    "it",
    "ja",
    "kn",
    "kk",
    "ko",
    "lv",
    "lt",
    "mk",
    "ms",
    "mr",
    "mi",
    "ne",
    "no",
    "fa",
    "pl",
    "pt",
    "ro",
    "ru",
    "sr",
    "sk",
    "sl",
    "es",
    "sw",
    "sv",
    "tl",
    "ta",
    "th",
    "tr",
    "uk",
    "ur",
    "vi",
    "cy",
]
MISSING_KEY = "--synthesizer openai needs OPENAI_API_KEY in the server's environment"


class OpenAISynthesizer(ClauseSynthesizer):
    """Speaks each clause with one streamed ``audio.speech`` request."""

    def __init__(self, client: AsyncOpenAI, model: str, default_voice: str, instructions: str) -> None:
        self._client = client
        self.model = model
        self._instructions = instructions if not model.startswith("tts-1") else ""
        names = [default_voice, *(v for v in VOICES if v != default_voice)]
        self._voices = [Voice(name, tuple(LANGUAGES), f"OpenAI {name} ({model})") for name in names]
        url = urlsplit(str(client.base_url))
        self.endpoint = url.netloc or str(client.base_url)

    @property
    def description(self) -> EngineDescription:
        """Engine name, model and host (never the key)."""
        return EngineDescription("openai", f"{self.model} at {self.endpoint}")

    def voices(self) -> Sequence[Voice]:
        """OpenAI's voices, the default first; each speaks every listed language."""
        return self._voices

    def output_rate(self, request: SpeechRequest) -> int:
        """OpenAI's pcm format is 24 kHz."""
        return SAMPLE_RATE_HZ

    async def speak_clause(self, request: SpeechRequest, text: str) -> AsyncIterator[bytes]:
        """Stream one clause's audio."""
        extra = {"instructions": self._instructions} if self._instructions else {}
        try:
            async with self._client.audio.speech.with_streaming_response.create(
                model=self.model,
                voice=request.voice.name,
                input=text,
                response_format="pcm",
                speed=request.speaking_rate,
                **extra,  # type: ignore[arg-type]
            ) as response:
                async for chunk in response.iter_bytes():
                    yield chunk
        except asyncio.CancelledError:
            raise
        except openai.APIStatusError as err:
            code = (
                grpc.StatusCode.FAILED_PRECONDITION
                if err.status_code in (401, 403, 404)
                else grpc.StatusCode.RESOURCE_EXHAUSTED
                if err.status_code == 429
                else grpc.StatusCode.UNAVAILABLE
            )
            raise ServiceError(code, f"the speech server at {self.endpoint} answered HTTP {err.status_code}") from None
        except openai.APITimeoutError:
            raise ServiceError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"the speech server at {self.endpoint} timed out"
            ) from None
        except (openai.APIError, OSError) as err:
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE, f"the speech stream from {self.endpoint} broke off ({type(err).__name__})"
            ) from None
        except Exception as err:  # the HTTP library's own errors, read outside the SDK's wrapper
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE, f"the speech stream from {self.endpoint} broke off ({type(err).__name__})"
            ) from None

    def close(self) -> None:
        """The client's pool closes with the loop; nothing to hold on to."""


def create(settings: ServerSettings) -> OpenAISynthesizer:
    """Factory used by the registry (``--synthesizer openai``)."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise SystemExit(MISSING_KEY)
    client = AsyncOpenAI(
        api_key=key,
        base_url=settings.openai_tts_base_url or settings.openai_base_url or None,
        max_retries=settings.openai_max_retries,
        timeout=openai.Timeout(settings.openai_timeout_s, connect=min(5.0, settings.openai_timeout_s)),
    )
    return OpenAISynthesizer(
        client, settings.openai_tts_model, settings.openai_tts_voice, settings.openai_tts_instructions
    )
