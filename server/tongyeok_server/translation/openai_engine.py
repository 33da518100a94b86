"""Translation by an OpenAI chat model (or any OpenAI-compatible server), streamed token by token.

On the server's event loop: a translation is an async generator iterated by
its consumer's task (the session's lane), with no thread and no loop of the
engine's own; one ``AsyncOpenAI`` client (one connection pool) serves all
sessions. The body of an HTTP/1.1 response is read to its end after
``[DONE]`` so the connection goes back to the pool (the sync SDK closed it
early and every sentence paid a new TCP and TLS handshake, ~300 ms from
Seoul to the US); connections idle up to ``KEEPALIVE_S``.

Reading the stream: the SDK makes the request (``with_streaming_response``:
auth, headers, timeouts, HTTP errors as ``openai.APIStatusError``), and
``openai_sse`` reads the SSE body. After ``[DONE]`` the rest of the body is
read for at most ``DRAIN_S``, so the connection can be reused.

Retry policy: one budget per translation. The SDK's own retries are off
(``max_retries=0``) and this module retries everything itself — 408, 409,
429, 5xx, connection errors, timeouts, and a stream cut in the middle — at
most ``openai_max_retries`` times in total: the SDK's retries and ours
would compound, and one budget is what an operator can reason about. When a
retry follows tokens the caller already has, ``TranslationRestart`` is sent
first so the caller replaces the partial text.

Cancellation: cancelling the consumer's task, or ``aclose()`` on the
stream, raises where the translation waits (the connection, the response
headers, the next token, a back-off) and the ``async with`` around the
response closes the HTTP connection there and then: the server sees the
disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import random
import ssl
from collections.abc import AsyncGenerator, Sequence
from itertools import permutations
from urllib.parse import urlsplit

import anyio
import openai
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)

from tongyeok_server import languages
from tongyeok_server.recognition.base import EngineDescription
from tongyeok_server.settings import ServerSettings
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
from tongyeok_server.translation.openai_sse import ChunkReader
from tongyeok_server.translation.running import RunningTranslations

log = logging.getLogger(__name__)

MISSING_KEY_MESSAGE = (
    "OPENAI_API_KEY is not set: export it, or point --openai-base-url at an OpenAI-compatible server "
    "(vLLM, Ollama, llama.cpp) and set OPENAI_API_KEY to any value it accepts"
)

# Low but not zero: a business register sometimes needs a less literal
# wording, and 0 makes some models loop on repeated phrases.
TEMPERATURE = 0.2
# Idle connections are kept 30 s rather than httpx's 5 s, so that a pause in
# the conversation does not cost the next sentence a new TCP and TLS
# handshake. A server that closes one sooner is noticed before reuse (the
# socket reads EOF) and the connection is replaced.
KEEPALIVE_S = 30.0
# How long the rest of a body is read after [DONE] (as the SDK does), so the
# connection can be reused; a server still sending then loses it.
DRAIN_S = 0.1
# The HTTP library the SDK is built on (httpx2, or httpx before openai 3):
# reading the body ourselves, its errors reach us unwrapped. The same classes
# the SDK maps to APITimeoutError and APIConnectionError.
_http = importlib.import_module(type(openai.DEFAULT_CONNECTION_LIMITS).__module__.partition(".")[0])
_TIMEOUT_ERRORS: tuple[type[Exception], ...] = (_http.TimeoutException,)
_BODY_ERRORS: tuple[type[Exception], ...] = (_http.RequestError, ssl.SSLError, anyio.EndOfStream)


class OpenAITranslator(Translator):
    """Translates with a chat model; one ``AsyncOpenAI`` client on the server's loop serves all sessions."""

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        model: str,
        max_retries: int = 2,
        timeout_s: float = 30.0,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        self.client = client
        self.model = model
        self.max_retries = max(0, max_retries)
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        url = urlsplit(str(client.base_url))
        # Host and port only: a base URL may carry user:password.
        self.endpoint = url.hostname + (f":{url.port}" if url.port else "") if url.hostname else "?"
        self.failures = Failures(self.endpoint, model, timeout_s, (client.api_key,))
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
        await self.client.close()

    async def translate(self, request: TranslationRequest) -> TranslationStream:
        """The streamed translation of ``request``; retried within one budget (see the module docstring)."""
        with self._running.track():
            messages = _to_openai(prompts.build_messages(request))
            who = f"session {request.session_id}: " if request.session_id else ""  # for log lines
            retries = 0
            while True:
                yielded = False  # tokens were sent since the last (re)start
                try:
                    # aclosing: a translation left at a yield closes its response now, not when collected.
                    async with contextlib.aclosing(self._attempt(messages, who)) as contents:
                        async for content in contents:
                            yielded = True
                            yield TokenDelta(content)
                    return
                except Retry as failure:
                    if retries >= self.max_retries:
                        raise failure.error from None
                    retries += 1
                    delay = failure.delay_s
                    if delay is None:
                        delay = min(self.backoff_s * 2 ** (retries - 1), self.max_backoff_s)
                        delay *= 1 - 0.25 * random.random()  # jitter: many sessions hit the same limit at once
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

    async def _attempt(self, messages: list[ChatCompletionMessageParam], who: str) -> AsyncGenerator[str, None]:
        """One request: yields content deltas; raises ``Retry`` or ``ServiceError``."""
        reader = ChunkReader(self.failures)
        try:
            async with self.client.chat.completions.with_streaming_response.create(
                model=self.model, messages=messages, stream=True, temperature=TEMPERATURE
            ) as response:
                body = response.http_response.aiter_bytes()
                async with contextlib.aclosing(body):  # a generator left early is closed now, not by the GC
                    try:
                        async for data in body:
                            for content in reader.feed(data):
                                yield content
                            if reader.done:
                                break
                    except _TIMEOUT_ERRORS:
                        raise Retry(self.failures.timeout()) from None
                    except _BODY_ERRORS as err:  # the connection dropped mid-body
                        raise Retry(self.failures.broke_off(f"{type(err).__name__}: {err}")) from None
                    if reader.done:
                        # Whatever follows [DONE] is ignored, but the body must end for
                        # the connection to be reused. Usually it already has.
                        with contextlib.suppress(TimeoutError, *_BODY_ERRORS):
                            async with asyncio.timeout(DRAIN_S):
                                async for _ in body:
                                    pass
        except openai.APIStatusError as err:
            raise self.failures.status(err.status_code, err.response.headers, _upstream_message(err)) from None
        except openai.APITimeoutError:
            raise Retry(self.failures.timeout()) from None
        except openai.APIConnectionError as err:
            raise Retry(self.failures.unreachable(_reason(err))) from None
        self._check_finish(reader.finish_reason, who)

    def _check_finish(self, finish_reason: str | None, who: str) -> None:
        if finish_reason is None:
            # The body ended cleanly but without a finish reason: a proxy or
            # server that closes a cut stream politely.
            raise Retry(self.failures.broke_off("the body ended without a finish_reason"))
        if finish_reason == "content_filter":
            raise self.failures.content_filter()
        if finish_reason == "length":
            log.warning("%stranslation cut at the model's output limit (model %s)", who, self.model)


def create(settings: ServerSettings) -> OpenAITranslator:
    """Build the translator from settings and ``OPENAI_API_KEY``; exits with a message if the key is missing."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise SystemExit(MISSING_KEY_MESSAGE)
    timeout = openai.Timeout(settings.openai_timeout_s, connect=min(5.0, settings.openai_timeout_s))
    pool = openai.DEFAULT_CONNECTION_LIMITS
    limits = type(pool)(
        max_connections=pool.max_connections,
        max_keepalive_connections=pool.max_keepalive_connections,
        keepalive_expiry=KEEPALIVE_S,
    )
    client = AsyncOpenAI(
        api_key=key,
        # "" means OPENAI_BASE_URL was unset too: the SDK's default (api.openai.com).
        base_url=settings.openai_base_url or None,
        max_retries=0,  # we retry ourselves, see the module docstring
        timeout=timeout,
        http_client=openai.DefaultAsyncHttpxClient(timeout=timeout, limits=limits),
    )
    translator = OpenAITranslator(
        client,
        model=settings.openai_model,
        max_retries=settings.openai_max_retries,
        timeout_s=settings.openai_timeout_s,
    )
    # The address is for the operator's log only; callers see the model (description).
    log.info("openai translator: model %s at %s", translator.model, translator.endpoint)
    return translator


def _to_openai(messages: list[prompts.ChatMessage]) -> list[ChatCompletionMessageParam]:
    out: list[ChatCompletionMessageParam] = []
    for m in messages:
        if m.role == "system":
            out.append(ChatCompletionSystemMessageParam(role="system", content=m.content))
        else:
            out.append(ChatCompletionUserMessageParam(role="user", content=m.content))
    return out


def _reason(err: openai.APIError) -> str:
    """Describe the cause of a connection-level error, which the SDK's message ("Connection error.") hides."""
    cause = err.__cause__
    return f"{type(cause).__name__}: {cause}" if cause else err.message


def _upstream_message(err: openai.APIStatusError) -> str:
    # The SDK passes the "error" object of the JSON body, or the raw body.
    body = err.body
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str) and message:
        return message
    return err.message or ""
