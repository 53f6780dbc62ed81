"""Optional OpenTelemetry tracing (the `otel` extra, off unless `BYOC_OTEL_ENABLED=true`).

Spans cover every HTTP request the service answers and every call it makes (CXone, webhooks).
They go to an OTLP/HTTP collector, configured by the standard `OTEL_EXPORTER_OTLP_*` variables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from fastapi import FastAPI

from byoc.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer


class TraceableClient(Protocol):
    """An outgoing-call client that can open a span per call (`byoc.http.HttpClient`)."""

    def trace_with(self, tracer: Tracer | None) -> None: ...


class TracingUnavailable(RuntimeError):
    """Tracing was asked for, but the `otel` extra is not installed."""


def configure_tracing(
    app: FastAPI, settings: Settings, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Instrument the app when tracing is enabled; returns the provider to shut down, or None."""
    if not settings.otel_enabled:
        return None
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            "BYOC_OTEL_ENABLED=true needs the otel extra: pip install 'byoc[otel]'"
        ) from exc
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.otel_service_name})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="healthz,readyz,metrics"
    )
    return provider


def trace_client(client: TraceableClient, provider: TracerProvider | None) -> None:
    """Spans for the calls the service makes (CXone, platform webhooks)."""
    if provider is None:
        return
    client.trace_with(provider.get_tracer("byoc.http"))
