"""Optional OpenTelemetry tracing: spans for requests answered and calls made."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from byoc.app import create_app
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.servers import serve
from tests.support.stack import middleware_settings, running_stack
from tests.support.waiting import wait_for


def test_tracing_is_off_by_default(tmp_path: Path, emulator: Emulator) -> None:
    exporter = InMemorySpanExporter()
    settings = middleware_settings(tmp_path, emulator)
    with serve(create_app(settings, span_exporter=exporter)) as server:
        assert loopback.get(server.url + "/openapi.json").status_code == 200
    assert exporter.get_finished_spans() == ()


def test_spans_for_requests_and_cxone_calls(tmp_path: Path, emulator: Emulator) -> None:
    exporter = InMemorySpanExporter()
    with running_stack(tmp_path, emulator, otel_enabled=True, span_exporter=exporter) as stack:
        accepted = stack.customer_says("traced hello")
        stack.contact_for_thread(accepted["threadId"])

        def names() -> list[str]:
            return [s.name for s in exporter.get_finished_spans()]

        wait_for(lambda: any("/messages" in n and "POST" in n for n in names()), what="spans")
        spans = exporter.get_finished_spans()
        server_spans = [s for s in spans if s.kind.name == "SERVER"]
        client_spans = [s for s in spans if s.kind.name == "CLIENT"]
        assert any("/api/v1/channels/{channel_id}/messages" in s.name for s in server_spans)
        assert any(
            s.attributes
            and "dfo/3.0" in str(s.attributes.get("url.full", s.attributes.get("http.url", "")))
            for s in client_spans
        )
        assert all(s.resource.attributes["service.name"] == "byoc" for s in spans)
