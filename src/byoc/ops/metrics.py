"""Prometheus metrics: one `Metrics` object (and one `CollectorRegistry`) per app.

Families, all prefixed `byoc_`:

    http_request_duration_seconds{method,route,status_class}   histogram, route = template
    cxone_request_duration_seconds{method,path,outcome}        histogram, path = template
    cxone_token_refreshes_total                                 counter (read at scrape)
    box_tokens_issued_total                                     counter
    retention_purged_total{kind}                                counter (message, attachment,
                                                                conversation)
    outbox_rows{state}                                          gauge (queried at scrape)
    outbox_oldest_pending_age_seconds                           gauge (queried at scrape)
    outbox_deliveries_total{result}                             counter (read at scrape)
    open_websockets, pending_timers                             gauges other code sets
    build_info{version}                                         gauge, always 1

Nothing registers with prometheus_client's global default registry: several apps share one
test process, and each must report only its own traffic.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from byoc import __version__

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Latency budget is 500 ms end to end; the buckets are dense below it and sparse above.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CXONE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

OUTBOX_STATES = ("pending", "dead")

# DE API collections whose next path segment is an identifier (contract §3).
_ID_AFTER = {
    "channels": "{channelId}",
    "messages": "{messageId}",
    "threads": "{threadId}",
    "contacts": "{contactId}",
}
# Segments after a collection that are sub-resources, not identifiers.
_NOT_IDS = frozenset({"custom-field-definitions"})
_SEGMENT = re.compile(r"[^/]+")


def cxone_path_template(path: str) -> str:
    """`/channels/chat_1/messages/m9/status` -> `/channels/{channelId}/messages/{messageId}/status`.

    Metric labels must come from a small set; raw DE paths carry ids.
    """
    segments = _SEGMENT.findall(path.split("?", 1)[0])
    templated: list[str] = []
    previous = ""
    for segment in segments:
        placeholder = _ID_AFTER.get(previous)
        templated.append(placeholder if placeholder and segment not in _NOT_IDS else segment)
        previous = segment
    return "/" + "/".join(templated)


@dataclass(frozen=True)
class OutboxSnapshot:
    rows: dict[str, int]
    oldest_pending_age_seconds: float


@dataclass(frozen=True)
class StoreReadings:
    outbox: OutboxSnapshot
    pending_timers: int


class DeliveryCounts(Protocol):
    """The outbox worker's running totals (`byoc.outbox.worker.WorkerStats`)."""

    @property
    def delivered(self) -> int: ...
    @property
    def retried(self) -> int: ...
    @property
    def dead(self) -> int: ...
    @property
    def expired(self) -> int: ...


@dataclass
class RuntimeSources:
    """What the scrape reads from the running app; attached once the runtime exists.

    Callables, so that this bottom-layer module knows nothing of the store or the worker:
    `store_readings` answers None when the store could not be read (`byoc.store.gauges`).
    """

    store_readings: Callable[[], Awaitable[StoreReadings | None]]
    worker_stats: Callable[[], DeliveryCounts]
    token_refreshes: Callable[[], int]


@dataclass(eq=False)  # collectors are registry keys: hashed by identity
class _ScrapeCollector(Collector):
    metrics: Metrics
    snapshot: OutboxSnapshot | None = None

    def collect(self) -> Iterable[Metric]:
        sources = self.metrics.sources
        if sources is None:
            return
        refreshes = CounterMetricFamily(
            "byoc_cxone_token_refreshes",
            "CXone access tokens fetched from the token endpoint (all tenants).",
        )
        refreshes.add_metric([], sources.token_refreshes())
        yield refreshes

        stats = sources.worker_stats()
        deliveries = CounterMetricFamily(
            "byoc_outbox_deliveries",
            "Outbox delivery attempts by result: delivered, retried (rescheduled), "
            "dead_lettered, expired (stale ephemeral signal dropped).",
            labels=["result"],
        )
        deliveries.add_metric(["delivered"], stats.delivered)
        deliveries.add_metric(["retried"], stats.retried)
        deliveries.add_metric(["dead_lettered"], stats.dead)
        deliveries.add_metric(["expired"], stats.expired)
        yield deliveries

        if self.snapshot is not None:
            rows = GaugeMetricFamily(
                "byoc_outbox_rows",
                "Outbox rows by state; dead rows are dead letters awaiting `byoc outbox retry`.",
                labels=["state"],
            )
            for state in sorted({*OUTBOX_STATES, *self.snapshot.rows}):
                rows.add_metric([state], self.snapshot.rows.get(state, 0))
            yield rows
            yield GaugeMetricFamily(
                "byoc_outbox_oldest_pending_age_seconds",
                "Age of the oldest pending outbox row (0 when none is pending).",
                value=self.snapshot.oldest_pending_age_seconds,
            )


class Metrics:
    """The app's instruments. Other code sets the gauges, e.g. `metrics.open_sockets.inc()`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_request_duration = Histogram(
            "byoc_http_request_duration_seconds",
            "HTTP request latency by route template and status class.",
            ["method", "route", "status_class"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.cxone_request_duration = Histogram(
            "byoc_cxone_request_duration_seconds",
            "CXone DE API call latency by method, path template and outcome "
            "(ok, unavailable, rejected, auth_error, error).",
            ["method", "path", "outcome"],
            buckets=CXONE_BUCKETS,
            registry=r,
        )
        self.box_tokens_issued = Counter(
            "byoc_box_tokens_issued",
            "Access tokens issued to CXone by the box token endpoint.",
            registry=r,
        )
        self.retention_purged = Counter(
            "byoc_retention_purged",
            "What the retention purge deleted, by kind: message, attachment, conversation "
            "(an ended conversation whose last content went).",
            ["kind"],
            registry=r,
        )
        self.open_sockets = Gauge(
            "byoc_open_websockets", "Web chat widget sockets open on this instance.", registry=r
        )
        self.pending_timers = Gauge(
            "byoc_pending_timers",
            "Conversation timers (idle warnings, countdowns) pending.",
            registry=r,
        )
        build = Gauge("byoc_build_info", "The running version; always 1.", ["version"], registry=r)
        build.labels(__version__).set(1)
        ProcessCollector(registry=r)
        GCCollector(registry=r)
        self.sources: RuntimeSources | None = None
        self._scrape = _ScrapeCollector(self)
        r.register(self._scrape)
        self._scrape_lock = asyncio.Lock()

    def attach(self, sources: RuntimeSources) -> None:
        self.sources = sources

    def observe_cxone_call(self, method: str, path: str, outcome: str, seconds: float) -> None:
        """The `DeClient` observer: one sample per DE call, after any token retry."""
        self.cxone_request_duration.labels(method, cxone_path_template(path), outcome).observe(
            seconds
        )

    async def render(self) -> bytes:
        """The exposition text: one cheap outbox query, then the (fast, in-memory) rendering."""
        async with self._scrape_lock:
            if self.sources is not None:
                readings = await self.sources.store_readings()
                # Report what we can; the missing outbox families are the alert.
                self._scrape.snapshot = readings.outbox if readings else None
                if readings is not None:
                    self.pending_timers.set(readings.pending_timers)
            return generate_latest(self.registry)


def sample_names(exposition: str) -> Iterator[str]:
    """Every sample name in exposition text (tests and tools check names against it)."""
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            yield re.split(r"[{ ]", line, maxsplit=1)[0]
