"""OpenTelemetry traces of the RPCs and the engine calls: optional (``tongyeok[otel]``), off unless ``--otel``.

One span per RPC (``opentelemetry-instrumentation-grpc``'s asyncio server
interceptor; health checks left out, a probe every few seconds would drown
the traces), a ``recognize`` span per Interpret stream's recogniser stream
under it, and a ``translate`` span per translation under that (see
``observability/engines.py``). Spans carry the session id, engines and
languages, never text or credentials.

The exporter is configured the standard way, by the ``OTEL_*`` variables:
``OTEL_TRACES_EXPORTER`` (``otlp``, the default, over gRPC; ``console``;
``none``), ``OTEL_EXPORTER_OTLP_ENDPOINT`` and friends (read by the OTLP
exporter itself), ``OTEL_SERVICE_NAME`` (default ``tongyeok``),
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` (read by the SDK).
Spans are batched and sent from the SDK's own thread, never from the event
loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tongyeok_server.errors import StartError
from tongyeok_server.settings import ObservabilitySettings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

INSTRUMENTATION_NAME = "tongyeok_server"
DEFAULT_SERVICE_NAME = "tongyeok"
HEALTH_SERVICE = "grpc.health.v1.Health"


class Tracing:
    """A tracer provider and what the server needs from it."""

    def __init__(self, provider: TracerProvider) -> None:
        """Trace into ``provider`` (the tests give one with an in-memory exporter)."""
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer(INSTRUMENTATION_NAME)

    @classmethod
    def from_settings(
        cls,
        settings: ObservabilitySettings,
        provider: TracerProvider | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Tracing | None:
        """Tracing as ``--otel`` and the ``OTEL_*`` variables say, or None when off."""
        if provider is not None:
            return cls(provider)
        if not settings.otel:
            return None
        try:
            return cls(_provider_from_env(os.environ if environ is None else environ))
        except ImportError as e:
            raise StartError(f"--otel needs the OpenTelemetry packages: pip install 'tongyeok[otel]' ({e})") from None

    def interceptor(self) -> Any:
        """The gRPC asyncio server interceptor that starts a span per RPC (health checks excepted)."""
        from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

        return aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider, filter_=filters.negate(filters.service_name(HEALTH_SERVICE))
        )

    def close(self) -> None:
        """Send the spans still batched and stop the exporter (server shutdown)."""
        self.provider.shutdown()


def _provider_from_env(env: Mapping[str, str]) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    named = "OTEL_SERVICE_NAME" in env or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    # Attributes given here win over the environment's, so the default name only when none is set there.
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": DEFAULT_SERVICE_NAME}))
    kind = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    exporter: SpanExporter
    if kind == "none":
        return provider
    if kind == "console":
        exporter = ConsoleSpanExporter()
    elif kind == "otlp":
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"))
        if protocol.strip().lower() != "grpc":
            raise StartError(
                f"OTLP over {protocol!r} is not installed; tongyeok[otel] exports OTLP over gRPC "
                "(OTEL_EXPORTER_OTLP_PROTOCOL=grpc; a Collector listens for it on port 4317)"
            )
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    else:
        raise StartError(f"OTEL_TRACES_EXPORTER={kind!r}: use otlp, console or none")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider
