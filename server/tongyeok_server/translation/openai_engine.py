"""Translation by an OpenAI chat model (or any OpenAI-compatible server), streamed token by token.

On the server's event loop: a translation is an async generator iterated by
its consumer's task (the session's lane), with no thread and no loop of the
engine's own; one connection pool (``openai_http.ChatStream``, plain
``httpx``) serves all sessions. Each body is read to its end after
``[DONE]`` so the HTTP/1.1 connection goes back to the pool (a new TCP and
TLS handshake is ~300 ms from Seoul to the US).

Retry policy: one budget per translation — 408, 409, 429, 5xx, connection
errors, timeouts, a stream cut in the middle — at most
``openai_max_retries`` retries in total, which is what an operator can
reason about. When a retry follows tokens the caller already has,
``TranslationRestart`` is sent first so the caller replaces the partial
text. A content filter or the model's output limit fails the sentence at
once (the same sentence would get the same answer).

Cancellation: cancelling the consumer's task, or ``aclose()`` on the
stream, raises where the translation waits (the connection, the response
headers, the next token, a back-off) and the ``async with`` around the
response closes the HTTP connection there and then: the server sees the
disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from itertools import permutations
from urllib.parse import urlsplit

from tongyeok_client.backoff import Backoff
from tongyeok_server import languages
from tongyeok_server.engines import EngineDescription
from tongyeok_server.errors import StartError
from tongyeok_server.settings import OpenAISettings, TranslationSettings
from tongyeok_server.translation import prompts
from tongyeok_server.translation.base import (
    TokenDelta,
    TranslationOptions,
    TranslationRequest,
    TranslationRestart,
    TranslationStream,
    Translator,
)
from tongyeok_server.translation.openai_errors import Failures, Retry
from tongyeok_server.translation.openai_http import DEFAULT_BASE_URL, ChatStream
from tongyeok_server.translation.running import RunningTranslations

log = logging.getLogger(__name__)

MISSING_KEY_MESSAGE = (
    "OPENAI_API_KEY is not set: export it, or point --openai-base-url at an OpenAI-compatible server "
    "(vLLM, Ollama, llama.cpp) and set OPENAI_API_KEY to any value it accepts"
)

# Low but not zero: a business register sometimes needs a less literal
# wording, and 0 makes some models loop on repeated phrases.
TEMPERATURE = 0.2


class OpenAITranslator(Translator):
    """Translates with a chat model; one connection pool on the server's loop serves all sessions."""

    paid_per_request = True
    continues_committed = True

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        model: str,
        max_retries: int = 2,
        timeout_s: float = 30.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.model = model
        self.max_retries = max(0, max_retries)
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        url = urlsplit(base_url or DEFAULT_BASE_URL)
        # Host and port only: a base URL may carry user:password.
        self.endpoint = url.hostname + (f":{url.port}" if url.port else "") if url.hostname else "?"
        self.failures = Failures(self.endpoint, model, timeout_s, (api_key,))
        self.chat = ChatStream(base_url, api_key, self.failures, timeout_s)
        self._running = RunningTranslations("openai")

    @property
    def description(self) -> EngineDescription:
        """``openai`` with the model (not the server's address: callers see this)."""
        return EngineDescription(name="openai", detail=f"model {self.model}")

    def language_pairs(self) -> Sequence[tuple[str, str]]:
        """Every ordered pair of distinct supported languages."""
        return list(permutations(sorted(prompts.SUPPORTED_LANGUAGES), 2))

    def supports(self, source: str, target: str) -> bool:
        """Both languages known and different (regions and scripts are honoured in the prompt)."""
        s, t = languages.primary(source), languages.primary(target)
        return s != t and s in prompts.SUPPORTED_LANGUAGES and t in prompts.SUPPORTED_LANGUAGES

    def ignored_options(self, options: TranslationOptions) -> list[str]:
        """None: style, glossary and context all go into the prompt."""
        return []

    def redact(self, text: str) -> str:
        """``text`` without the API key or anything that looks like a (masked) key."""
        return self.failures.redact(text)

    async def close(self) -> None:
        """Fail the translations still running (UNAVAILABLE) and close the connection pool. Idempotent."""
        if self._running.closed:
            return
        self._running.close()
        await asyncio.sleep(0)  # let the cancelled translations close their responses first
        await self.chat.close()

    def translate(self, request: TranslationRequest) -> TranslationStream:
        """The streamed translation of ``request``; retried within one budget (see the module docstring)."""
        return self._running.guard(self._translate(request))

    async def _translate(self, request: TranslationRequest) -> TranslationStream:
        body = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in prompts.build_messages(request)],
            "stream": True,
            "temperature": TEMPERATURE,
        }
        who = f"session {request.session_id}: " if request.session_id else ""  # for log lines
        retries = 0
        while True:
            yielded = False  # tokens were sent since the last (re)start
            try:
                # aclosing: a translation left at a yield closes its response now, not when collected.
                async with contextlib.aclosing(self.chat.contents(body)) as contents:
                    async for content in contents:
                        yielded = True
                        yield TokenDelta(content)
                return
            except Retry as failure:
                if retries >= self.max_retries:
                    raise failure.error from None
                retries += 1
                delay = failure.delay_s
                if delay is None:  # no Retry-After: the one policy (jittered: many sessions fail at once)
                    delay = Backoff(self.backoff_s, self.max_backoff_s).delay_s(retries)
                log.info(
                    "%stranslation attempt failed: %s (%s); retry %d of %d in %.2f s",
                    who,
                    failure.error.message,
                    failure.error.detail,
                    retries,
                    self.max_retries,
                    delay,
                )
                if yielded:
                    # Tell the caller now, not when new tokens arrive: what it
                    # shows is wrong from this moment whatever happens next.
                    yield TranslationRestart(f"{failure.error.message}; retrying")
                await asyncio.sleep(delay)


def create(settings: TranslationSettings, openai: OpenAISettings) -> OpenAITranslator:
    """Build the translator from settings and ``OPENAI_API_KEY``; exits with a message if the key is missing."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise StartError(MISSING_KEY_MESSAGE)
    translator = OpenAITranslator(
        # "" means OPENAI_BASE_URL was unset too: OpenAI's own API.
        openai.openai_base_url,
        key,
        model=settings.openai_model,
        max_retries=openai.openai_max_retries,
        timeout_s=openai.openai_timeout_s,
    )
    # The address is for the operator's log only; callers see the model (description).
    log.info("openai translator: model %s at %s", translator.model, translator.endpoint)
    return translator
