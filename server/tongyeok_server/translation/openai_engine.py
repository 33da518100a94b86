"""Translation by an OpenAI chat model (or any OpenAI-compatible server), streamed token by token.

Retry policy: one budget per translation. The SDK's own retries are off
(``max_retries=0``) and this module retries everything itself — 408, 409, 429,
5xx, connection errors, timeouts, and a stream cut in the middle — at most
``openai_max_retries`` times in total. Two reasons: the SDK's retries and
ours would compound (a cut stream retried by us, each retry retried by the
SDK), and the SDK sleeps in ``time.sleep``, which ``cancel()`` cannot
interrupt, while our back-off waits on the stream's cancel event. When a retry
follows tokens the caller already has, ``TranslationRestart`` is yielded
first so the caller replaces the partial text.

Cancellation: ``cancel()`` sets the event and shuts the HTTP connection's
socket down (``shutdown`` wakes a thread blocked in ``recv``, where ``close``
alone would not), then closes the response; the iterating thread sees the
connection fail, notices the cancellation and returns without an error. A
cancel while the request is still waiting for response headers takes effect
as soon as they arrive (real servers send them before the first token).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import socket
import threading
from collections.abc import Iterator, Sequence
from itertools import permutations
from typing import Any
from urllib.parse import urlsplit

import grpc
import openai
from openai import OpenAI, Stream
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)

from tongyeok_server import languages
from tongyeok_server.errors import ServiceError
from tongyeok_server.recognition.base import EngineDescription
from tongyeok_server.settings import ServerSettings
from tongyeok_server.translation import prompts
from tongyeok_server.translation.base import (
    TokenDelta,
    TranslationChunk,
    TranslationOptions,
    TranslationRequest,
    TranslationRestart,
    TranslationStream,
    Translator,
)

log = logging.getLogger(__name__)

MISSING_KEY_MESSAGE = (
    "OPENAI_API_KEY is not set: export it, or point --openai-base-url at an OpenAI-compatible server "
    "(vLLM, Ollama, llama.cpp) and set OPENAI_API_KEY to any value it accepts"
)

# Low but not zero: a business register sometimes needs a less literal
# wording, and 0 makes some models loop on repeated phrases.
TEMPERATURE = 0.2
# A live interpreter cannot usefully wait longer than this for a rate limit
# to lift; a longer Retry-After fails the sentence at once.
MAX_RETRY_AFTER_S = 10.0
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_KEY_LIKE = re.compile(r"\b(sk|key|Bearer)[-_ ][A-Za-z0-9_\-*.]{3,}", re.IGNORECASE)


class OpenAITranslator(Translator):
    """Translates with a chat model; one ``OpenAI`` client (thread-safe) shared by all sessions."""

    def __init__(
        self,
        client: OpenAI,
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
        self._secrets = tuple(s for s in (client.api_key,) if s and len(s) >= 4)

    @property
    def description(self) -> EngineDescription:
        """``openai`` with the model and the server it talks to."""
        return EngineDescription(name="openai", detail=f"model {self.model} at {self.endpoint}")

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

    def translate(self, request: TranslationRequest) -> TranslationStream:
        """Start a streamed translation (the HTTP request starts on first iteration)."""
        return _OpenAIStream(self, request)

    def close(self) -> None:
        """Close the shared HTTP connection pool."""
        self.client.close()

    def redact(self, text: str) -> str:
        """``text`` without the API key or anything that looks like a (masked) key."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _KEY_LIKE.sub("[redacted]", text)


def create(settings: ServerSettings) -> OpenAITranslator:
    """Build the translator from settings and ``OPENAI_API_KEY``; exits with a message if the key is missing."""
    key = os.environ.get("OPENAI_API_KEY", "").strip()
    if not key:
        raise SystemExit(MISSING_KEY_MESSAGE)
    timeout = openai.Timeout(settings.openai_timeout_s, connect=min(5.0, settings.openai_timeout_s))
    client = OpenAI(
        api_key=key,
        # "" means OPENAI_BASE_URL was unset too: the SDK's default (api.openai.com).
        base_url=settings.openai_base_url or None,
        max_retries=0,  # we retry ourselves, see the module docstring
        timeout=timeout,
    )
    return OpenAITranslator(
        client,
        model=settings.openai_model,
        max_retries=settings.openai_max_retries,
        timeout_s=settings.openai_timeout_s,
    )


class _Retry(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, error: ServiceError, delay_s: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error  # raised if the budget is spent
        self.delay_s = delay_s  # the server's Retry-After, if any


class _OpenAIStream(TranslationStream):
    def __init__(self, engine: OpenAITranslator, request: TranslationRequest) -> None:
        self._engine = engine
        self._request = request
        self._messages = _to_openai(prompts.build_messages(request))
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._response: Stream[ChatCompletionChunk] | None = None

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            response = self._response
        if response is not None:
            _abort(response)

    def __iter__(self) -> Iterator[TranslationChunk]:
        engine = self._engine
        retries = 0
        yielded = False
        while not self._cancelled.is_set():
            try:
                for text in self._attempt():
                    yielded = True
                    yield TokenDelta(text)
                return
            except _Retry as failure:
                if self._cancelled.is_set():
                    return
                if retries >= engine.max_retries:
                    raise failure.error from None
                retries += 1
                delay = failure.delay_s
                if delay is None:
                    delay = min(engine.backoff_s * 2 ** (retries - 1), engine.max_backoff_s)
                    delay *= 1 - 0.25 * random.random()  # jitter: many sessions hit the same limit at once
                log.info(
                    "translation attempt failed (%s); retry %d of %d in %.2f s",
                    failure.error.message,
                    retries,
                    engine.max_retries,
                    delay,
                )
                if yielded:
                    # Tell the caller now, not when new tokens arrive: what it
                    # shows is wrong from this moment whatever happens next.
                    yield TranslationRestart(f"{failure.error.message}; retrying")
                    yielded = False
                if self._cancelled.wait(delay):
                    return

    def _attempt(self) -> Iterator[str]:
        """One request: yields content deltas; raises ``_Retry`` or ``ServiceError``."""
        engine = self._engine
        try:
            response = engine.client.chat.completions.create(
                model=engine.model,
                messages=self._messages,
                stream=True,
                temperature=TEMPERATURE,
            )
        except openai.APIStatusError as err:
            raise self._status_failure(err) from None
        except openai.APITimeoutError:
            raise _Retry(self._timeout_error()) from None
        except openai.APIConnectionError as err:
            raise _Retry(self._connection_error(err)) from None
        with self._lock:
            self._response = response
        if self._cancelled.is_set():
            # cancel() ran while we waited for the headers and saw no response.
            _abort(response)
            return
        finish_reason: str | None = None
        started = False
        try:
            for chunk in response:
                if not chunk.choices:  # usage chunks, keep-alives of some servers
                    continue
                choice = chunk.choices[0]
                content = choice.delta.content if choice.delta else None
                if content:
                    if not started:
                        # Models sometimes open with a newline or space; the
                        # caller's screen should not.
                        content = content.lstrip()
                        started = bool(content)
                    if content:
                        yield content
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
        except openai.APITimeoutError:
            if self._cancelled.is_set():
                return
            raise _Retry(self._timeout_error()) from None
        except openai.APIError as err:
            # Connection dropped mid-body, or an error event inside the stream.
            if self._cancelled.is_set():
                return
            raise _Retry(
                ServiceError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the translation stream from {engine.endpoint} broke off ({engine.redact(_reason(err))})",
                )
            ) from None
        except Exception:
            # cancel() closing the response under the reader can surface as
            # any exception of the HTTP stack; after a cancel none matters.
            if self._cancelled.is_set():
                return
            raise
        finally:
            with self._lock:
                self._response = None
            response.close()
        if self._cancelled.is_set():
            return
        if finish_reason is None:
            # The body ended cleanly but without a finish reason: a proxy or
            # server that closes a cut stream politely.
            raise _Retry(
                ServiceError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the translation stream from {engine.endpoint} ended before the model finished",
                )
            )
        if finish_reason == "content_filter":
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT, "the model's content filter refused to translate this sentence"
            )
        if finish_reason == "length":
            log.warning("translation cut at the model's output limit (model %s)", engine.model)

    # -- errors, in words for a person, never with the key -----------------

    def _status_failure(self, err: openai.APIStatusError) -> Exception:
        engine = self._engine
        status = err.status_code
        where = f"the translation server at {engine.endpoint}"
        detail = engine.redact(_upstream_message(err))
        if status in _RETRYABLE_STATUS or status >= 500:
            delay = _retry_after_s(err)
            if status == 429:
                error = ServiceError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{where} is rate-limiting requests (HTTP 429: {detail}); try again shortly",
                )
            else:
                error = ServiceError(
                    grpc.StatusCode.UNAVAILABLE, f"{where} failed (HTTP {status}: {detail}); try again shortly"
                )
            if delay is not None and delay > MAX_RETRY_AFTER_S:
                too_long = f"it asks to wait {delay:.0f} s, too long for live interpretation"
                return ServiceError(error.code, f"{error.message}; {too_long}")
            return _Retry(error, delay)
        if status in (401, 403):
            # The server's credentials, not the caller's: the upstream message
            # (which quotes a masked key) is left out.
            return ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{where} refused the server's API key (HTTP {status}); "
                "the operator must check OPENAI_API_KEY and --openai-base-url",
            )
        if status == 404:
            return ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{where} does not know model {engine.model!r} or the chat completions endpoint "
                f"(HTTP 404: {detail}); the operator must check --openai-model and --openai-base-url",
            )
        return ServiceError(
            grpc.StatusCode.INVALID_ARGUMENT, f"{where} rejected the translation request (HTTP {status}: {detail})"
        )

    def _timeout_error(self) -> ServiceError:
        engine = self._engine
        return ServiceError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the translation server at {engine.endpoint} did not answer within {engine.timeout_s:g} s",
        )

    def _connection_error(self, err: openai.APIConnectionError) -> ServiceError:
        engine = self._engine
        return ServiceError(
            grpc.StatusCode.UNAVAILABLE,
            f"could not reach the translation server at {engine.endpoint} ({engine.redact(_reason(err))})",
        )


def _to_openai(messages: list[prompts.ChatMessage]) -> list[ChatCompletionMessageParam]:
    out: list[ChatCompletionMessageParam] = []
    for m in messages:
        if m.role == "system":
            out.append(ChatCompletionSystemMessageParam(role="system", content=m.content))
        else:
            out.append(ChatCompletionUserMessageParam(role="user", content=m.content))
    return out


def _abort(response: Stream[ChatCompletionChunk]) -> None:
    """Close ``response`` from any thread so that a reader blocked on it wakes up now."""
    stream: Any = response.response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
    try:
        response.close()
    except Exception:  # closing from another thread may race the reader; either way the stream ends
        log.debug("closing a cancelled translation stream", exc_info=True)


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


def _retry_after_s(err: openai.APIStatusError) -> float | None:
    headers = err.response.headers
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if "retry-after" in headers:
            return max(0.0, float(headers["retry-after"]))
    except ValueError:
        pass  # an HTTP date: fall back to our own back-off
    return None
