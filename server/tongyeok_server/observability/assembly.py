"""What ``app.py`` gets from ``observability/``, built from the settings in one place.

Metrics are on with ``--metrics-port`` (and in every server process of a
``--processes`` supervisor that serves them); tracing with ``--otel``. With
both off nothing is wrapped or attached: no cost per event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tongyeok_server.auth.refusals import IGNORE, RefusalObserver
from tongyeok_server.observability.engines import ObservedRecognizer, SessionSpans, TracedTranslator
from tongyeok_server.observability.exporter import MetricsExporter
from tongyeok_server.observability.metrics import Metrics
from tongyeok_server.observability.session_metrics import MetricsExtension
from tongyeok_server.observability.tracing import Tracing
from tongyeok_server.recognition.base import Recognizer
from tongyeok_server.session.extension import SessionExtension
from tongyeok_server.settings import ObservabilitySettings
from tongyeok_server.translation.base import Translator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


class Observability:
    """The metrics, their extension and endpoint, and tracing, of one server."""

    def __init__(
        self,
        settings: ObservabilitySettings,
        *,
        host: str = "",
        serve_metrics: bool = True,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """Metrics, their port and tracing as ``settings`` say.

        ``host``: where the metrics port listens unless --metrics-host says;
        ``serve_metrics`` False: a supervised process, whose supervisor serves the sum.
        """
        self.settings = settings
        self.metrics = Metrics(caller_labels=settings.metrics_callers) if settings.metrics_port else None
        self.tracing = Tracing.from_settings(settings, tracer_provider)
        self._spans = SessionSpans()
        self._exporter: MetricsExporter | None = None
        if self.metrics is not None and serve_metrics:
            self._exporter = MetricsExporter(
                self.metrics.registry, settings.metrics_host or host, settings.metrics_port
            )
        self.metrics_port = 0

    @property
    def refusals(self) -> RefusalObserver:
        """Who ``auth/`` tells about refused calls and limits."""
        return self.metrics if self.metrics is not None else IGNORE

    @property
    def extensions(self) -> list[SessionExtension]:
        """The session extensions: metrics, when on."""
        return [MetricsExtension(self.metrics)] if self.metrics is not None else []

    @property
    def interceptors(self) -> list[Any]:
        """Server interceptors, outermost first: tracing, when on (its span then covers authentication)."""
        return [self.tracing.interceptor()] if self.tracing is not None else []

    def recognizer(self, recognizer: Recognizer) -> Recognizer:
        """``recognizer`` as the sessions should use it (observed when metrics or tracing are on)."""
        tracer = self.tracing.tracer if self.tracing is not None else None
        if self.metrics is None and tracer is None:
            return recognizer
        return ObservedRecognizer(recognizer, self.metrics, tracer, self._spans)

    def translator(self, translator: Translator) -> Translator:
        """``translator`` as the sessions should use it (traced when tracing is on)."""
        if self.tracing is None:
            return translator
        return TracedTranslator(translator, self.tracing.tracer, self._spans)

    def start(self) -> None:
        """Serve ``/metrics`` (when this process serves it)."""
        if self._exporter is not None:
            self.metrics_port = self._exporter.start()

    def close(self) -> None:
        """Stop serving metrics and flush the traces (server shutdown)."""
        if self._exporter is not None:
            self._exporter.stop()
        if self.tracing is not None:
            self.tracing.close()
