"""Prometheus metrics: one `Metrics` object (and one `CollectorRegistry`) per app.

Families, all prefixed `byoc_`:

    http_request_duration_seconds{method,route,status_class}   histogram, route = template
    cxone_request_duration_seconds{method,path,outcome}        histogram, path = template
    cxone_token_refreshes_total                                 counter
    box_tokens_issued_total                                     counter
    retention_purged_total{kind}                                counter (message, attachment,
                                                                conversation)
    outbox_rows{state}                                          gauge (queried at scrape)
    outbox_oldest_pending_age_seconds                           gauge (queried at scrape)
    outbox_deliveries_total{result}                             counter
    open_websockets, pending_timers                             gauges other code sets
    build_info{version}                                         gauge, always 1

Nothing registers with prometheus_client's global default registry: several apps share one
test process, and each must report only its own traffic.

Several worker processes (`byoc serve --workers N`) answer one port, and a scrape reaches any
one of them. For them prometheus_client's multiprocess mode is on: the parent names a fresh
directory in `PROMETHEUS_MULTIPROC_DIR` before it starts the workers, every value lives in a
per-process file there, and a scrape merges all files (counters and histograms summed, each
gauge by its `multiprocess_mode`). prometheus_client decides once, when first imported,
whether values live in memory or in files; `MULTIPROCESS` reads that decision. The
per-process `process_*` and `python_gc_*` families have no meaning summed and are left out in
that mode.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from byoc import __version__

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Latency budget is 500 ms end to end; the buckets are dense below it and sparse above.
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CXONE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

OUTBOX_STATES = ("pending", "dead")
DELIVERY_RESULTS = ("delivered", "retried", "dead_lettered", "expired")

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# True when prometheus_client keeps values in the files of a multiprocess directory.
MULTIPROCESS = values.ValueClass is not values.MutexValue

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


@dataclass
class RuntimeSources:
    """What the scrape reads from the running app; attached once the runtime exists.

    A callable, so that this bottom-layer module knows nothing of the store:
    `store_readings` answers None when the store could not be read (`byoc.store.gauges`).
    """

    store_readings: Callable[[], Awaitable[StoreReadings | None]]


@dataclass(eq=False)  # collectors are registry keys: hashed by identity
class _ScrapeCollector(Collector):
    metrics: Metrics
    snapshot: OutboxSnapshot | None = None

    def collect(self) -> Iterable[Metric]:
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
        self.token_refreshes = Counter(
            "byoc_cxone_token_refreshes",
            "CXone access tokens fetched from the token endpoint (all tenants).",
            registry=r,
        )
        self.outbox_deliveries = Counter(
            "byoc_outbox_deliveries",
            "Outbox delivery attempts by result: delivered, retried (rescheduled), "
            "dead_lettered, expired (stale ephemeral signal dropped).",
            ["result"],
            registry=r,
        )
        for result in DELIVERY_RESULTS:
            self.outbox_deliveries.labels(result)
        # The gauges' multiprocess modes: how the workers' values combine (ignored in one process).
        self.open_sockets = Gauge(
            "byoc_open_websockets",
            "Web chat widget sockets open on this instance.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pending_timers = Gauge(
            "byoc_pending_timers",
            "Conversation timers (idle warnings, countdowns) pending.",
            registry=r,
            multiprocess_mode="mostrecent",  # one database count, set at each scrape
        )
        build = Gauge(
            "byoc_build_info",
            "The running version; always 1.",
            ["version"],
            registry=r,
            multiprocess_mode="max",
        )
        build.labels(__version__).set(1)
        self.sources: RuntimeSources | None = None
        self._scrape = _ScrapeCollector(self)
        self._exposed = self._exposition_registry()
        self._scrape_lock = asyncio.Lock()

    def _exposition_registry(self) -> CollectorRegistry:
        """What a scrape renders: this app's registry, or, in multiprocess mode, every worker's
        files; the outbox families queried at scrape are added to either."""
        if MULTIPROCESS:
            exposed = CollectorRegistry()
            MultiProcessCollector(exposed)  # type: ignore[no-untyped-call]
        else:
            exposed = self.registry
            ProcessCollector(registry=exposed)
            GCCollector(registry=exposed)
        exposed.register(self._scrape)
        return exposed

    def attach(self, sources: RuntimeSources) -> None:
        self.sources = sources

    def count_delivery(self, result: str) -> None:
        """The outbox worker's observer: one count per attempt settled (`DELIVERY_RESULTS`)."""
        self.outbox_deliveries.labels(result).inc()

    def count_token_refresh(self) -> None:
        self.token_refreshes.inc()

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
            return generate_latest(self._exposed)


@contextmanager
def multiprocess_directory() -> Iterator[str]:
    """A fresh, empty directory for the metric files of the worker processes started inside
    the block (named in their environment as `PROMETHEUS_MULTIPROC_DIR`); removed afterwards.
    It must be set before a worker imports prometheus_client."""
    previous = os.environ.get(MULTIPROCESS_DIR_ENV)
    with tempfile.TemporaryDirectory(prefix="byoc-metrics-") as path:
        os.environ[MULTIPROCESS_DIR_ENV] = path
        try:
            yield path
        finally:
            if previous is None:
                os.environ.pop(MULTIPROCESS_DIR_ENV, None)
            else:
                os.environ[MULTIPROCESS_DIR_ENV] = previous


# prometheus_client's file of one process's `live*` gauges: gauge_livesum_1234.db.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def forget_exited_processes(running: Collection[int], directory: str) -> set[int]:
    """The processes with `live*` gauge files in `directory`, but those `running`, have
    exited: their sockets are gone, so those files go too (their counters and histograms stay,
    so that the server's totals never go backwards). The processes forgotten."""
    exited = {
        int(match.group(1))
        for name in os.listdir(directory)
        if (match := _LIVE_GAUGE_FILE.fullmatch(name))
    } - set(running)
    for pid in exited:
        mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    return exited


def sample_names(exposition: str) -> Iterator[str]:
    """Every sample name in exposition text (tests and tools check names against it)."""
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            yield re.split(r"[{ ]", line, maxsplit=1)[0]
