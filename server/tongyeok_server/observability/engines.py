"""The engines as the server sees them, observed: recogniser failures counted, engine calls traced.

``ObservedRecognizer`` and ``TracedTranslator`` wrap an engine behind its
own interface (``Recognizer``, ``Translator``) and delegate everything, so
no engine knows about metrics or traces. What they add:

- metrics (when on): a recogniser stream that ends with an error counts in
  ``tongyeok_engine_errors_total{engine="recognizer"}``: one Python call per
  recognition event (the listener), nothing per audio chunk;
- tracing (when on): a ``recognize`` span per recogniser stream, a child of
  the RPC's span (``open_stream`` runs in the RPC's task), with the
  recogniser's notices as span events; a ``translate`` span per
  translation, a child of its session's ``recognize`` span (translations
  run in the session's lane tasks, not the RPC's, so the parent is found by
  session id), with the first token as an event and the token count.

Translation failures are counted from the sessions' ``TRANSLATION_FAILED``
notices (``observability/session_metrics.py``), so the translator is only
wrapped for tracing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tongyeok_server.audio.format import AudioSpec
from tongyeok_server.engines import EngineDescription
from tongyeok_server.errors import ServiceError
from tongyeok_server.observability.metrics import Metrics
from tongyeok_server.recognition.base import (
    RecognitionConfig,
    RecognitionEnded,
    RecognitionEvent,
    RecognitionListener,
    Recognizer,
    RecognizerNotice,
    RecognizerStream,
)
from tongyeok_server.translation.base import (
    TokenDelta,
    TranslationOptions,
    TranslationRequest,
    TranslationStream,
    Translator,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer


class SessionSpans:
    """The ``recognize`` span context of each open session, for the translations to hang under."""

    def __init__(self) -> None:
        self._contexts: dict[str, Context] = {}
        self._lock = threading.Lock()

    def put(self, session_id: str, context: Context) -> None:
        with self._lock:
            self._contexts[session_id] = context

    def get(self, session_id: str) -> Context | None:
        with self._lock:
            return self._contexts.get(session_id)

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._contexts.pop(session_id, None)


def _error_status(span: Span, error: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    code = error.code.name if isinstance(error, ServiceError) else type(error).__name__
    span.set_attribute("tongyeok.error_code", code)
    span.set_status(Status(StatusCode.ERROR, code))


class ObservedRecognizer(Recognizer):
    """``inner`` with its failures counted (``metrics``) and its streams traced (``tracer``)."""

    def __init__(
        self, inner: Recognizer, metrics: Metrics | None, tracer: Tracer | None, spans: SessionSpans | None = None
    ) -> None:
        self.inner = inner
        self._errors = metrics.engine_errors if metrics is not None else None
        self._tracer = tracer
        self._spans = spans or SessionSpans()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # an engine's own attributes (capacity, ...)

    @property
    def description(self) -> EngineDescription:
        return self.inner.description

    @property
    def max_source_languages(self) -> int:
        return self.inner.max_source_languages

    def language_codes(self) -> Sequence[str]:
        return self.inner.language_codes()

    def resolve_language(self, code: str) -> str | None:
        return self.inner.resolve_language(code)

    def check_audio(self, audio: AudioSpec) -> None:
        self.inner.check_audio(audio)

    def close(self) -> None:
        self.inner.close()

    def open_stream(self, config: RecognitionConfig, listener: RecognitionListener) -> RecognizerStream:
        span = self._start_span(config) if self._tracer is not None else None
        errors = self._errors
        ended = False

        def end_span(error: BaseException | None = None) -> None:
            nonlocal ended
            if span is None or ended:
                return
            ended = True
            if error is not None:
                _error_status(span, error)
            self._spans.drop(config.session_id)
            span.end()

        def observed(event: RecognitionEvent) -> None:
            if isinstance(event, RecognitionEnded):
                if event.error is not None and errors is not None:
                    errors.labels("recognizer", event.error.code.name).inc()
                end_span(event.error)
            elif span is not None and isinstance(event, RecognizerNotice):
                span.add_event(f"recognizer_{event.kind.value}")
            listener(event)

        try:
            stream = self.inner.open_stream(config, observed)
        except ServiceError as error:
            end_span(error)  # e.g. no capacity: the servicer refuses the stream (counted there)
            raise
        return stream if span is None else _TracedRecognizerStream(stream, end_span)

    def _start_span(self, config: RecognitionConfig) -> Span:
        from opentelemetry import trace

        assert self._tracer is not None
        span = self._tracer.start_span(
            "recognize",
            attributes={
                "tongyeok.session_id": config.session_id,
                "tongyeok.recognizer": self.inner.description.name,
                "tongyeok.language_codes": list(config.language_codes),
                "tongyeok.sample_rate_hz": config.audio.sample_rate_hz,
            },
        )
        self._spans.put(config.session_id, trace.set_span_in_context(span))
        return span


class _TracedRecognizerStream(RecognizerStream):
    """Ends the stream's span when the session cancels it (no ``RecognitionEnded`` follows a cancel)."""

    def __init__(self, inner: RecognizerStream, end_span: Any) -> None:
        self._inner = inner
        self._end_span = end_span
        self.write_async = inner.write_async  # type: ignore[method-assign]  # no extra frame per chunk

    def write(self, audio: bytes) -> None:
        self._inner.write(audio)

    def finish(self) -> None:
        self._inner.finish()

    def cancel(self) -> None:
        self._inner.cancel()
        self._end_span()


class TracedTranslator(Translator):
    """``inner`` with a span per translation, under its session's ``recognize`` span."""

    def __init__(self, inner: Translator, tracer: Tracer, spans: SessionSpans) -> None:
        self.inner = inner
        self._tracer = tracer
        self._spans = spans
        # Class attributes, which __getattr__ would not reach.
        self.paid_per_request = inner.paid_per_request
        self.continues_committed = inner.continues_committed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def description(self) -> EngineDescription:
        return self.inner.description

    def language_pairs(self) -> Sequence[tuple[str, str]]:
        return self.inner.language_pairs()

    def supports(self, source: str, target: str) -> bool:
        return self.inner.supports(source, target)

    def ignored_options(self, options: TranslationOptions) -> list[str]:
        return self.inner.ignored_options(options)

    def effective_options(self, options: TranslationOptions) -> TranslationOptions:
        return self.inner.effective_options(options)

    async def warm_up(self) -> object:
        return await self.inner.warm_up()

    async def close(self) -> None:
        await self.inner.close()

    async def translate(self, request: TranslationRequest) -> TranslationStream:
        span = self._tracer.start_span(
            "translate",
            context=self._spans.get(request.session_id) if request.session_id else None,
            attributes={
                "tongyeok.session_id": request.session_id,
                "tongyeok.translator": self.inner.description.name,
                "tongyeok.source_language": request.source_language,
                "tongyeok.target_language": request.target_language,
            },
        )
        tokens = 0
        try:
            async with contextlib.aclosing(self.inner.translate(request)) as chunks:
                async for chunk in chunks:
                    if isinstance(chunk, TokenDelta):
                        if not tokens:
                            span.add_event("first_token")
                        tokens += 1
                    yield chunk
        except (GeneratorExit, asyncio.CancelledError):  # the session stopped reading: cancelled, not failed
            span.set_attribute("tongyeok.cancelled", True)
            raise
        except BaseException as error:
            _error_status(span, error)
            raise
        finally:
            span.set_attribute("tongyeok.tokens", tokens)
            span.end()
