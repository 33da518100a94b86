"""Translation by an OpenAI chat model (or any OpenAI-compatible server), streamed token by token.

Threads and loop: the engine owns one asyncio event loop on one thread
(``openai-loop``, started by ``warm_up()`` or the first translation, stopped by
``close()``) and one ``AsyncOpenAI`` client on it, shared by all sessions; or,
after ``attach_loop(loop)``, it runs on a loop its owner runs (the server's),
so that a second busy Python thread does not fight the server's loop for the
GIL on every token. Each translation is a task on that loop; its tokens reach
the caller's translation thread through a queue, so the ``Translator``
interface stays synchronous. Why async: an HTTP/1.1 body read to its end
after ``[DONE]`` returns the connection to the pool, where the sync SDK
closes the response early and loses the connection, so every sentence paid a
new TCP and TLS handshake (two round trips, ~300 ms from Seoul to the US);
and a task can be cancelled wherever it waits, which no thread blocked in
``recv`` can.

Reading the stream: the SDK makes the request (``with_streaming_response``:
auth, headers, timeouts, HTTP errors as ``openai.APIStatusError``), and this
module reads the SSE body itself, ``json.loads`` on each event's data, instead
of the SDK's ``AsyncStream``, which builds a pydantic model per chunk and cost
a third of the client CPU of a translation. It follows the SDK's rules: stop
at ``[DONE]``, skip chunks without choices, an ``{"error": ...}`` event is a
failed stream; then it reads the rest of the body (for at most ``DRAIN_S``)
so the connection can be reused.

Retry policy: one budget per translation. The SDK's own retries are off
(``max_retries=0``) and this module retries everything itself — 408, 409, 429,
5xx, connection errors, timeouts, and a stream cut in the middle — at most
``openai_max_retries`` times in total. Two reasons: the SDK's retries and
ours would compound (a cut stream retried by us, each retry retried by the
SDK), and one budget is what an operator can reason about. When a retry
follows tokens the caller already has, ``TranslationRestart`` is sent first
so the caller replaces the partial text.

Cancellation: ``cancel()`` (any thread) wakes the iterator, which ends at once
without an error, and cancels the task on the loop. Wherever the task waits —
for the connection, the response headers, the next token, a back-off — the
cancellation closes the HTTP connection there and then (the server sees the
disconnect) and the task ends. A consumer that stops iterating early cancels
the same way. A body that breaks off, an error event or an event that is not
a chat completion chunk is retried like a cut stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import queue
import random
import re
import ssl
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import permutations
from urllib.parse import urlsplit

import anyio
import grpc
import openai
from openai import AsyncOpenAI
from openai.types.chat import (
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
# Idle connections are kept 30 s rather than httpx's 5 s, so that a pause in
# the conversation does not cost the next sentence a new TCP and TLS
# handshake. A server that closes one sooner is noticed before reuse (the
# socket reads EOF) and the connection is replaced.
KEEPALIVE_S = 30.0
# How long close() waits for the loop to cancel its tasks and close the pool.
CLOSE_TIMEOUT_S = 5.0
# How long the rest of a body is read after [DONE] (as the SDK does), so the
# connection can be reused; a server still sending then loses it.
DRAIN_S = 0.1
_RETRYABLE_STATUS = frozenset({408, 409, 429})
_KEY_LIKE = re.compile(r"\b(sk|key|Bearer)[-_ ][A-Za-z0-9_\-*.]{3,}", re.IGNORECASE)
# The HTTP library the SDK is built on (httpx2, or httpx before openai 3):
# reading the body ourselves, its errors reach us unwrapped. The same classes
# the SDK maps to APITimeoutError and APIConnectionError.
_http = importlib.import_module(type(openai.DEFAULT_CONNECTION_LIMITS).__module__.partition(".")[0])
_TIMEOUT_ERRORS: tuple[type[Exception], ...] = (_http.TimeoutException,)
_BODY_ERRORS: tuple[type[Exception], ...] = (_http.RequestError, ssl.SSLError, anyio.EndOfStream)


class OpenAITranslator(Translator):
    """Translates with a chat model; one ``AsyncOpenAI`` client on the engine's loop serves all sessions."""

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
        self._secrets = tuple(s for s in (client.api_key,) if s and len(s) >= 4)
        self._lock = threading.Lock()  # guards the four below
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None  # None with a loop: attach_loop()'s
        self._closed = False
        self._used = False  # a translation was submitted: the client's pool belongs to that loop
        self._tasks: set[asyncio.Task[None]] = set()  # touched on the loop only

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

    def translate(self, request: TranslationRequest) -> TranslationStream:
        """Start a streamed translation (the HTTP request starts on first iteration)."""
        return _OpenAIStream(self, request)

    def warm_up(self) -> None:
        """Start the event loop now, so that the first sentence does not wait for it."""
        with self._lock:
            if not self._closed and self._loop is None:
                self._start_loop()

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run translations on ``loop``, run by its owner (the server's), instead of on a thread of our own.

        One busy Python thread fewer: the two loops no longer pass the GIL
        back and forth on every token. Call it before the first translation;
        a loop thread ``warm_up()`` started is stopped. ``close()`` must then
        come while ``loop`` still runs: it cancels the translations and closes
        the pool there, and leaves the loop running.
        """
        with self._lock:
            if self._closed or self._loop is loop:
                return
            if self._used:
                raise RuntimeError("attach_loop() must come before the first translation")
            own, thread = self._loop, self._thread
            self._loop, self._thread = loop, None
        if own is not None and thread is not None:  # started by warm_up(); nothing ran on it
            own.call_soon_threadsafe(own.stop)
            thread.join()
            own.close()

    def close(self) -> None:
        """Cancel running translations, close the connection pool, stop the loop thread. Idempotent.

        Translations still running, and any asked for afterwards, fail with UNAVAILABLE.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread, used = self._loop, self._thread, self._used
            self._loop = self._thread = None
        if loop is None:
            return  # never used: the client holds no connection
        if thread is None:
            if used:
                self._close_on_attached_loop(loop)
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(CLOSE_TIMEOUT_S)
        except Exception:  # a timeout or a failing close: stop the loop all the same
            log.warning("closing the OpenAI client did not finish cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def _close_on_attached_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if not loop.is_running():
            log.warning("the OpenAI translator was closed after its loop stopped: its translations were not cancelled")
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(own_loop=False), loop)
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            return  # cannot wait for the loop from the loop: it runs as soon as this callback returns
        try:
            future.result(CLOSE_TIMEOUT_S)
        except Exception:
            log.warning("closing the OpenAI client did not finish cleanly", exc_info=True)

    def redact(self, text: str) -> str:
        """``text`` without the API key or anything that looks like a (masked) key."""
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _KEY_LIKE.sub("[redacted]", text)

    # -- the loop ------------------------------------------------------------

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        """Create the loop and its thread (caller holds ``_lock``)."""
        loop = asyncio.new_event_loop()
        # The SDK looks up platform details once and asyncio resolves host
        # names in the loop's default executor; name its threads after us.
        loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="openai-loop-executor"))
        thread = threading.Thread(target=loop.run_forever, name="openai-loop", daemon=True)
        thread.start()
        self._loop, self._thread = loop, thread
        return loop

    def _submit(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop (started if need be); ServiceError after ``close()``."""
        with self._lock:
            if self._closed:
                raise _shut_down()
            loop = self._loop or self._start_loop()
            self._used = True
            # Under the lock: close() cannot stop the loop between the check and this.
            try:
                loop.call_soon_threadsafe(callback)
            except RuntimeError:  # an attached loop its owner closed
                raise _shut_down() from None

    def _call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the loop if it still runs (for cancels: nothing to do otherwise)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # closed meanwhile: close() cancelled every task already
                loop.call_soon_threadsafe(callback)

    def _spawn(self, stream: _OpenAIStream) -> asyncio.Task[None]:
        """Start ``stream``'s translation as a task (on the loop); kept until done so close() can cancel it."""
        task = asyncio.get_running_loop().create_task(stream._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _shutdown(self, own_loop: bool = True) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.client.close()
        if not own_loop:
            return  # the owner's loop, async generators and executor are not ours
        loop = asyncio.get_running_loop()
        await loop.shutdown_asyncgens()
        await loop.shutdown_default_executor()


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


class _Retry(Exception):
    """An attempt failed in a way worth retrying."""

    def __init__(self, error: ServiceError, delay_s: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error  # raised if the budget is spent
        self.delay_s = delay_s  # the server's Retry-After, if any


class _OpenAIStream(TranslationStream):
    """One translation: a task on the engine's loop feeding a queue that ``__iter__`` reads.

    The queue carries chunks, then ``None`` (the end) or the exception to
    raise. ``cancel()`` puts ``None`` itself, so the iterator never waits for
    the loop to notice.
    """

    def __init__(self, engine: OpenAITranslator, request: TranslationRequest) -> None:
        self._engine = engine
        self._messages = _to_openai(prompts.build_messages(request))
        self._who = f"session {request.session_id}: " if request.session_id else ""  # for log lines
        self._queue: queue.SimpleQueue[TranslationChunk | BaseException | None] = queue.SimpleQueue()
        self._cancelled = False
        self._started = False  # __iter__ has asked the loop to start
        self._task: asyncio.Task[None] | None = None  # touched on the loop only
        self._yielded = False  # tokens were sent since the last (re)start

    def cancel(self) -> None:
        if self._cancelled:
            return
        self._cancelled = True  # before reading _started: see _start
        self._queue.put(None)
        if self._started:
            self._engine._call_soon(self._cancel_task)

    def __iter__(self) -> Iterator[TranslationChunk]:
        if self._cancelled:
            return
        self._started = True
        self._engine._submit(self._start)
        get = self._queue.get
        done = False
        try:
            while True:
                item = get()
                if item is None or self._cancelled:
                    done = True
                    return
                if isinstance(item, BaseException):
                    done = True
                    raise item
                yield item
        finally:
            if not done:
                self.cancel()  # the consumer stopped early: close the request too

    # -- on the loop --------------------------------------------------------

    def _start(self) -> None:
        # cancel() sets _cancelled before it reads _started, and __iter__ sets
        # _started before it submits this: a cancel that schedules no
        # _cancel_task, or one that runs before this, is seen here.
        if not self._cancelled:
            self._task = self._engine._spawn(self)

    def _cancel_task(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        try:
            await self._translate()
        except asyncio.CancelledError:
            # By cancel() (which already woke the iterator), or by close():
            # then the translation did not finish and must not pass for done.
            self._queue.put(None if self._cancelled else _shut_down())
            raise
        except BaseException as error:  # ServiceError, or a bug: raised by the iterator
            self._queue.put(error)
        else:
            self._queue.put(None)

    async def _translate(self) -> None:
        engine = self._engine
        retries = 0
        while True:
            try:
                await self._attempt()
                return
            except _Retry as failure:
                if retries >= engine.max_retries:
                    raise failure.error from None
                retries += 1
                delay = failure.delay_s
                if delay is None:
                    delay = min(engine.backoff_s * 2 ** (retries - 1), engine.max_backoff_s)
                    delay *= 1 - 0.25 * random.random()  # jitter: many sessions hit the same limit at once
                log.info(
                    "%stranslation attempt failed: %s (%s); retry %d of %d in %.2f s",
                    self._who,
                    failure.error.message,
                    failure.error.detail,
                    retries,
                    engine.max_retries,
                    delay,
                )
                if self._yielded:
                    # Tell the caller now, not when new tokens arrive: what it
                    # shows is wrong from this moment whatever happens next.
                    self._queue.put(TranslationRestart(f"{failure.error.message}; retrying"))
                    self._yielded = False
                await asyncio.sleep(delay)

    async def _attempt(self) -> None:
        """One request: queues content deltas; raises ``_Retry`` or ``ServiceError``."""
        engine = self._engine
        try:
            # The SDK makes the request (auth, headers, timeouts, status
            # errors); the body is read here: see _read.
            async with engine.client.chat.completions.with_streaming_response.create(
                model=engine.model,
                messages=self._messages,
                stream=True,
                temperature=TEMPERATURE,
            ) as response:
                finish_reason = await self._read(response.http_response.aiter_bytes())
        except openai.APIStatusError as err:
            raise self._status_failure(err) from None
        except openai.APITimeoutError:
            raise _Retry(self._timeout_error()) from None
        except openai.APIConnectionError as err:
            raise _Retry(self._connection_error(err)) from None
        if finish_reason is None:
            # The body ended cleanly but without a finish reason: a proxy or
            # server that closes a cut stream politely.
            raise _Retry(
                ServiceError(
                    grpc.StatusCode.UNAVAILABLE,
                    "the translation stream ended before the model finished",
                    detail=f"{engine.endpoint}: the body ended without a finish_reason",
                )
            )
        if finish_reason == "content_filter":
            raise ServiceError(
                grpc.StatusCode.INVALID_ARGUMENT, "the model's content filter refused to translate this sentence"
            )
        if finish_reason == "length":
            log.warning("%stranslation cut at the model's output limit (model %s)", self._who, engine.model)

    async def _read(self, body: AsyncGenerator[bytes, None]) -> str | None:
        """Queue the content deltas of an SSE body; returns the finish reason (``None``: there was none).

        Parsed here rather than by the SDK's stream, which builds a pydantic
        chunk per event (see the module docstring). Reads to
        ``[DONE]`` and then drains the body to its end (for at most
        ``DRAIN_S``), so the HTTP/1.1 connection goes back to the pool.
        Raises ``_Retry`` if the body breaks off or carries an error event.
        """
        put = self._queue.put
        events = _SSEEvents()
        finish_reason: str | None = None
        started = False
        done = False
        async with contextlib.aclosing(body):  # a generator left early is closed now, not by the GC
            try:
                async for data in body:
                    try:
                        for event in events.feed(data):
                            if event.startswith(b"[DONE]"):
                                done = True
                                break
                            chunk = json.loads(event)
                            if not isinstance(chunk, dict):
                                continue
                            if chunk.get("error"):
                                raise _Retry(self._stream_error(chunk["error"]))
                            choices = chunk.get("choices")
                            if not choices:  # usage chunks, keep-alives of some servers
                                continue
                            choice = choices[0]
                            delta = choice.get("delta")
                            content = delta.get("content") if delta else None
                            if content:
                                if not started:
                                    # Models sometimes open with a newline or space;
                                    # the caller's screen should not.
                                    content = content.lstrip()
                                    started = bool(content)
                                if content:
                                    put(TokenDelta(content))
                                    self._yielded = True
                            reason = choice.get("finish_reason")
                            if reason:
                                finish_reason = reason
                    except (ValueError, LookupError, AttributeError, TypeError) as err:
                        # Not JSON, or not chat completion chunks: a broken server or proxy.
                        raise _Retry(self._broke_off(f"a malformed event: {type(err).__name__}")) from None
                    if done:
                        break
            except _TIMEOUT_ERRORS:
                raise _Retry(self._timeout_error()) from None
            except _BODY_ERRORS as err:  # the connection dropped mid-body
                raise _Retry(self._broke_off(f"{type(err).__name__}: {err}")) from None
            if done:
                # Whatever follows [DONE] is ignored, but the body must end for
                # the connection to be reused. Usually it already has.
                with contextlib.suppress(TimeoutError, *_BODY_ERRORS):
                    async with asyncio.timeout(DRAIN_S):
                        async for _ in body:
                            pass
        return finish_reason

    # -- errors, in words for a person, never with the key -----------------

    def _status_failure(self, err: openai.APIStatusError) -> Exception:
        engine = self._engine
        status = err.status_code
        detail = f"{engine.endpoint}: HTTP {status}: {engine.redact(_upstream_message(err))}"
        if status in _RETRYABLE_STATUS or status >= 500:
            delay = _retry_after_s(err)
            if status == 429:
                error = ServiceError(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    "the translation server is rate-limiting requests (HTTP 429); try again shortly",
                    detail=detail,
                )
            else:
                error = ServiceError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"the translation server failed (HTTP {status}); try again shortly",
                    detail=detail,
                )
            if delay is not None and delay > MAX_RETRY_AFTER_S:
                too_long = f"it asks to wait {delay:.0f} s, too long for live interpretation"
                return ServiceError(error.code, f"{error.message}; {too_long}", detail=detail)
            return _Retry(error, delay)
        if status in (401, 403):
            # The server's credentials, not the caller's: the upstream message
            # (which quotes a masked key) is left out, of the log too.
            return ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the translation server refused the server's API key (HTTP {status}); "
                "the operator must check OPENAI_API_KEY and --openai-base-url",
                detail=f"{engine.endpoint}: HTTP {status}",
            )
        if status == 404:
            return ServiceError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the translation server does not know model {engine.model!r} or the chat completions endpoint "
                "(HTTP 404); the operator must check --openai-model and --openai-base-url",
                detail=detail,
            )
        return ServiceError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the translation server rejected the translation request (HTTP {status}); its words are in the server log",
            detail=detail,
        )

    def _timeout_error(self) -> ServiceError:
        engine = self._engine
        return ServiceError(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"the translation server did not answer within {engine.timeout_s:g} s",
            detail=engine.endpoint,
        )

    def _broke_off(self, reason: str) -> ServiceError:
        engine = self._engine
        return ServiceError(
            grpc.StatusCode.UNAVAILABLE,
            "the translation stream broke off",
            detail=f"{engine.endpoint}: {engine.redact(reason)}",
        )

    def _stream_error(self, error: object) -> ServiceError:
        # As the SDK reads an error event: its message, or a generic one.
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str) or not message:
            message = "An error occurred during streaming"
        return self._broke_off(f"an error event: {message[:300]}")

    def _connection_error(self, err: openai.APIConnectionError) -> ServiceError:
        engine = self._engine
        return ServiceError(
            grpc.StatusCode.UNAVAILABLE,
            "could not reach the translation server",
            detail=f"{engine.endpoint}: {engine.redact(_reason(err))}",
        )


class _SSEEvents:
    """Splits an SSE body, fed in pieces as they arrive, into the data of its events.

    As the SDK's decoder: lines end in LF, CRLF or CR; an event's ``data:``
    lines are joined by LF and it ends at a blank line; comments and other
    fields are ignored, and so is an event the body ends before.
    """

    __slots__ = ("_data", "_tail")

    def __init__(self) -> None:
        self._tail = b""  # an unfinished line
        self._data: list[bytes] = []  # the data lines of the unfinished event

    def feed(self, piece: bytes) -> list[bytes]:
        """The data of the events ``piece`` completes."""
        buffer = self._tail + piece if self._tail else piece
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):  # maybe half a CRLF: decide with the next piece
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._tail = lines.pop() + held
        events: list[bytes] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
            elif line.startswith(b"data:"):
                value = line[5:]
                data.append(value[1:] if value.startswith(b" ") else value)
        return events


def _shut_down() -> ServiceError:
    return ServiceError(grpc.StatusCode.UNAVAILABLE, "the translator is shut down (the server is stopping)")


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
