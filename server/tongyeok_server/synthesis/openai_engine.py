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
back. A failure's notice says the status, what failed and what to do; the
speech server's address and its own words go to the server log only
(``ServiceError.detail``), as for translation. Cancel: leaving the response's context closes its connection at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

import grpc
import openai
from openai import AsyncOpenAI, Timeout

from tongyeok_server.engines import EngineDescription, Voice
from tongyeok_server.errors import ServiceError, StartError
from tongyeok_server.settings import GoogleSettings, OpenAISettings, SynthesisSettings
from tongyeok_server.synthesis.base import ClauseSynthesizer, SpeechRequest
from tongyeok_server.translation.openai_errors import KEY_LIKE

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

    def __init__(
        self, client: AsyncOpenAI, model: str, default_voice: str, instructions: str, timeout_s: float = 60.0
    ) -> None:
        self._client = client
        self.model = model
        self._instructions = instructions if not model.startswith("tts-1") else ""
        names = [default_voice, *(v for v in VOICES if v != default_voice)]
        self._voices = [Voice(name, tuple(LANGUAGES), f"OpenAI {name} ({model})") for name in names]
        url = urlsplit(str(client.base_url))
        self.endpoint = url.netloc or str(client.base_url)  # for the server's log only
        self._key = client.api_key if len(client.api_key or "") >= 4 else ""
        self._timeout_s = timeout_s

    @property
    def description(self) -> EngineDescription:
        """Engine name and model (never the key, nor the server's address: that is for the log)."""
        return EngineDescription("openai", f"model {self.model}")

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
            raise self._status_error(err) from None
        except openai.APITimeoutError:
            raise ServiceError(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the speech server did not answer within {self._timeout_s:g} s; try again shortly",
                detail=self.endpoint,
            ) from None
        except openai.APIConnectionError as err:
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                "could not reach the speech server; try again shortly",
                detail=f"{self.endpoint}: {self._redact(_reason(err))}",
            ) from None
        except Exception as err:  # a cut body: the SDK's, the HTTP library's or the socket's own errors
            raise ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                "the speech stream broke off; the rest of this translation is not spoken",
                detail=f"{self.endpoint}: {type(err).__name__}: {self._redact(str(err))[:300]}",
            ) from None

    # -- errors, in words for a person: the address and the server's words only in the log --

    def _status_error(self, err: openai.APIStatusError) -> ServiceError:
        status = err.status_code
        detail = f"{self.endpoint}: HTTP {status}: {self._redact(_upstream_message(err))}"
        if status in (401, 403):
            # The upstream message quotes a masked key: left out, of the log too.
            return ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the speech server refused the server's API key (HTTP {status}); "
                "the operator must check OPENAI_API_KEY and --openai-tts-base-url",
                detail=f"{self.endpoint}: HTTP {status}",
            )
        if status == 404:
            return ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the speech server does not know model {self.model!r} or its speech endpoint (HTTP 404); "
                "the operator must check --openai-tts-model and --openai-tts-base-url",
                detail=detail,
            )
        if status == 429:
            return ServiceError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "the speech server is rate-limiting requests (HTTP 429); try again shortly",
                detail=detail,
            )
        if status >= 500 or status in (408, 409):
            return ServiceError(
                grpc.StatusCode.UNAVAILABLE,
                f"the speech server failed (HTTP {status}); try again shortly",
                detail=detail,
            )
        return ServiceError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the speech server rejected the request (HTTP {status}); its words are in the server log",
            detail=detail,
        )

    def _redact(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "[redacted]")
        return KEY_LIKE.sub("[redacted]", text)

    def close(self) -> None:
        """The client's pool closes with the loop; nothing to hold on to."""


def create(settings: SynthesisSettings, google: GoogleSettings, openai: OpenAISettings) -> OpenAISynthesizer:
    """Factory used by the registry (``--synthesizer openai``)."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise StartError(MISSING_KEY)
    client = AsyncOpenAI(
        api_key=key,
        base_url=settings.openai_tts_base_url or openai.openai_base_url or None,
        max_retries=openai.openai_max_retries,
        timeout=Timeout(openai.openai_timeout_s, connect=min(5.0, openai.openai_timeout_s)),
    )
    return OpenAISynthesizer(
        client,
        settings.openai_tts_model,
        settings.openai_tts_voice,
        settings.openai_tts_instructions,
        openai.openai_timeout_s,
    )


def _reason(err: openai.APIError) -> str:
    """Describe the cause of a connection-level error, which the SDK's message ("Connection error.") hides."""
    cause = err.__cause__
    return f"{type(cause).__name__}: {cause}" if cause else err.message


def _upstream_message(err: openai.APIStatusError) -> str:
    # The SDK passes the "error" object of the JSON body, or the raw body.
    body = err.body
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str) and message:
        return message[:300]
    return (err.message or "no detail")[:300]
