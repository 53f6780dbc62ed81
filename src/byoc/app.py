"""The application factory. Nothing is built at import time: `create_app(settings)` wires the
routers, and the lifespan opens the store, the HTTP client and the outbox worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.routing import APIRoute

from byoc import __version__
from byoc.admin.router import router as admin_router
from byoc.api import deps, problems
from byoc.api.deps import Services
from byoc.api.health import router as health_router
from byoc.api.hot import HotRoutes
from byoc.api.limits import BodyLimitMiddleware
from byoc.api.listeners import ListenerSplit
from byoc.api.readiness import CachedVerdict
from byoc.api.text_guard import TextGuardMiddleware
from byoc.box.credentials import ActiveClients, TokenIssuer, follow_changes
from byoc.box.router import dfo3_outbound, issue_token, legacy_reply
from byoc.box.router import router as box_router
from byoc.box.token_throttle import TokenThrottle
from byoc.bus import LocalBus, PostgresBus
from byoc.channels import WEBCHAT, WEBHOOK
from byoc.channels.attachment_store import AttachmentRehoster
from byoc.channels.platform_api import post_customer_message
from byoc.channels.platform_api import router as platform_router
from byoc.channels.webchat.abuse import WidgetLimits
from byoc.channels.webchat.adapter import WebchatAdapter
from byoc.channels.webchat.attachments import MAX_UPLOAD_BYTES
from byoc.channels.webchat.attachments import router as attachments_router
from byoc.channels.webchat.cors import WidgetCorsMiddleware
from byoc.channels.webchat.route import router as widget_socket_router
from byoc.channels.webchat.script import WidgetScript, widget_script_router
from byoc.channels.webchat.upload_sweeper import UploadSweeper
from byoc.channels.webhook import WebhookAdapter
from byoc.clock import Clock, SystemClock
from byoc.conversations.lifecycle import LifecycleLoops
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.retention import RetentionPurger
from byoc.conversations.service import ConversationService
from byoc.delivery import Deliveries
from byoc.http import HttpClient
from byoc.ids import new_id
from byoc.ops.metrics import Metrics, RuntimeSources
from byoc.ops.middleware import RequestTelemetryMiddleware
from byoc.ops.rate_limits import RateLimits
from byoc.ops.tracing import configure_tracing, trace_client
from byoc.outbound import OutboundPolicy
from byoc.outbox.gauges import store_readings
from byoc.outbox.outcome import RetryPolicy
from byoc.outbox.worker import OutboxWorker
from byoc.provisioning.action_pages import router as action_pages_router
from byoc.provisioning.link_throttle import LinkThrottle
from byoc.settings import Settings
from byoc.store import Database, StoreError, clients, dialect, tenants
from byoc.store.migrations import bring_current
from byoc.store.records import OAuthClient
from byoc.store.upkeep import StoreUpkeep
from byoc.tenancy import TenantClients, default_tenant

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

log = logging.getLogger(__name__)

UPLOAD_PATH = re.compile(r"^/webchat/v1/channels/[^/]+/attachments$")


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the lifespan starts and stops. Handlers see `services` only, through `byoc.api.deps`."""

    services: Services
    http: HttpClient  # CXone and addresses the operator configured
    outbound: HttpClient  # addresses someone else chose: guarded (byoc.outbound)
    worker: OutboxWorker
    lifecycle: LifecycleLoops
    upload_sweeper: UploadSweeper
    retention: RetentionPurger | None  # None: BYOC_RETENTION_DAYS unset, everything is kept
    upkeep: StoreUpkeep  # PostgreSQL's VACUUM of the busiest tables


async def build_runtime(
    settings: Settings, metrics: Metrics | None = None, clock: Clock | None = None
) -> Runtime:
    metrics = metrics or Metrics()
    clock = clock or SystemClock()
    db = Database(settings.database_url)
    try:
        await bring_current(db, migrate=settings.auto_migrate)
    except StoreError:
        await db.close()
        raise
    await db.run_write(tenants.upsert_tenant, default_tenant(settings))

    http = HttpClient(max_connections=200)
    # Agent attachments and platform webhooks: addresses someone else chose (byoc.outbound).
    outbound = HttpClient(max_connections=200, guard=OutboundPolicy.of(settings))
    rate_limits = RateLimits()
    tenant_clients = TenantClients(
        db,
        http,
        timeout=settings.cxone_timeout_seconds,
        observer=metrics.observe_cxone_call,
        on_token_refresh=metrics.count_token_refresh,
    )
    bus: LocalBus
    notify_dsn = dialect.notify_dsn(settings.database_url)
    if notify_dsn is None:
        bus = LocalBus()
    else:
        bus = PostgresBus(notify_dsn)
        await bus.start()
    policy = LifecyclePolicy.from_settings(settings)
    wake_worker: list[Callable[[], None]] = []  # filled once the worker exists

    def wake() -> None:
        for callback in wake_worker:
            callback()

    lifecycle = LifecycleLoops(db, tenant_clients, policy, settings, wake, clock)
    # The outbox worker and its deliveries do not queue behind the requests for the database.
    pipeline_db = db.reserved()
    deliveries = Deliveries(
        pipeline_db,
        tenant_clients,
        {
            WEBHOOK: WebhookAdapter(outbound, timeout=settings.webhook_timeout_seconds),
            WEBCHAT: WebchatAdapter(bus),
        },
        lifecycle,
        end_check_min_interval_ms=int(settings.end_check_min_interval_seconds * 1000),
        rehoster=AttachmentRehoster(
            pipeline_db, outbound, settings.public_url, timeout=settings.webhook_timeout_seconds
        ),
        clock=clock,
    )
    worker = OutboxWorker(
        pipeline_db,
        deliveries.handlers(),
        owner=f"{socket.gethostname()}:{new_id('w')}",
        policy=RetryPolicy(
            max_attempts=settings.outbox_max_attempts,
            base_seconds=settings.outbox_backoff_base_seconds,
            max_seconds=settings.outbox_backoff_max_seconds,
        ),
        poll_interval=settings.outbox_poll_interval_seconds,
        batch_size=settings.outbox_batch_size,
        lease_seconds=settings.outbox_lease_seconds,
        dead_letter_hooks=deliveries.dead_letter_hooks(),
        preloads=deliveries.preloads(),
        clock=clock,
        observer=metrics.count_delivery,
    )
    wake_worker.append(worker.wake)

    async def load_active_clients() -> dict[str, OAuthClient]:
        return await db.run_read(clients.active_clients)

    metrics.attach(RuntimeSources(store_readings=partial(store_readings, db)))
    services = Services(
        settings=settings,
        db=db,
        tenants=tenant_clients,
        conversations=ConversationService(
            db, policy, on_enqueued=worker.wake, fresh_rows=worker, clock=clock
        ),
        token_issuer=TokenIssuer(
            settings.token_signing_key.get_secret_value(),
            settings.token_ttl_seconds,
            issuer=settings.public_url,
            audience=settings.public_url.rstrip("/") + "/integration/box",
        ),
        active_clients=ActiveClients(load_active_clients, clock=clock),
        metrics=metrics,
        cxone_readiness=CachedVerdict(timeout_seconds=min(3.0, settings.cxone_timeout_seconds)),
        bus=bus,
        token_throttle=TokenThrottle(rate_limits, settings),
        widget_limits=WidgetLimits(rate_limits, settings, clock),
        link_throttle=LinkThrottle(rate_limits, settings),
        clock=clock,
    )
    sweeper = UploadSweeper(
        db,
        clock,
        grace_seconds=settings.widget_upload_grace_seconds,
        interval_seconds=settings.widget_upload_sweep_interval_seconds,
        batch_size=settings.widget_upload_sweep_batch,
    )
    retention = None
    if settings.retention_days is not None:
        retention = RetentionPurger(
            db,
            clock,
            days=settings.retention_days,
            interval_seconds=settings.retention_interval_seconds,
            batch_size=settings.retention_batch,
            on_purged=lambda kind, n: metrics.retention_purged.labels(kind).inc(n),
        )
    return Runtime(
        services=services,
        http=http,
        outbound=outbound,
        worker=worker,
        lifecycle=lifecycle,
        upload_sweeper=sweeper,
        retention=retention,
        upkeep=StoreUpkeep(db, clock, interval_seconds=settings.store_vacuum_interval_seconds),
    )


def create_app(
    settings: Settings | None = None,
    *,
    span_exporter: SpanExporter | None = None,
    clock: Clock | None = None,
) -> FastAPI:
    """The application. `span_exporter` replaces the OTLP exporter when tracing is on (tests);
    `clock` the machine's clock (tests, to move time forward rather than wait for it)."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Services]]:
        runtime = await build_runtime(settings, metrics, clock)
        trace_client(runtime.http, tracer_provider)
        trace_client(runtime.outbound, tracer_provider)
        worker_task = asyncio.create_task(runtime.worker.run(), name="outbox-worker")
        lifecycle_task = asyncio.create_task(runtime.lifecycle.run(), name="lifecycle")
        sweeper_task = asyncio.create_task(runtime.upload_sweeper.run(), name="upload-sweeper")
        upkeep_task = asyncio.create_task(runtime.upkeep.run(), name="store-upkeep")
        tasks = [worker_task, lifecycle_task, sweeper_task, upkeep_task]
        if runtime.retention is not None:
            tasks.append(asyncio.create_task(runtime.retention.run(), name="retention"))
        tasks.append(
            asyncio.create_task(
                follow_changes(runtime.services.bus, runtime.services.active_clients),
                name="client-changes",
            )
        )
        try:
            yield deps.lifespan_state(runtime.services)
        finally:
            runtime.lifecycle.stop()
            runtime.upload_sweeper.stop()
            runtime.upkeep.stop()
            if runtime.retention is not None:
                runtime.retention.stop()
            await runtime.worker.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if isinstance(runtime.services.bus, PostgresBus):
                await runtime.services.bus.stop()
            await runtime.http.aclose()
            await runtime.outbound.aclose()
            if tracer_provider is not None:
                tracer_provider.shutdown()
            await runtime.services.db.close()

    app = FastAPI(
        # FastAPI's own OpenTelemetry hooks look up the global providers on every request;
        # metrics are ours (`byoc.ops`) and tracing is opt-in through `byoc.ops.tracing`.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        title="byoc",
        version=__version__,
        summary="Bring Your Own Channel middleware for NICE CXone Digital Engagement",
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(box_router)
    app.include_router(admin_router)
    app.include_router(platform_router)
    app.include_router(widget_socket_router)
    app.include_router(attachments_router)
    app.include_router(widget_script_router(WidgetScript.load()))
    app.include_router(action_pages_router)
    app.include_router(health_router)
    # Innermost first: the busiest routes skip routing and FastAPI's request handling.
    hot = (post_customer_message, legacy_reply, dfo3_outbound, issue_token)
    declared = [*platform_router.routes, *box_router.routes]  # included without a prefix
    app.add_middleware(
        HotRoutes,
        routes=[r for r in declared if isinstance(r, APIRoute) and r.endpoint in hot],
    )
    app.add_middleware(TextGuardMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        larger_for=((UPLOAD_PATH, MAX_UPLOAD_BYTES),),
    )
    app.add_middleware(WidgetCorsMiddleware)
    if settings.ops_port is not None:
        # Before anything else of ours: the operations listener serves its paths only.
        app.add_middleware(ListenerSplit, ops_port=settings.ops_port)
    # Outermost of ours: every answer, a 413 included, is timed and carries a request id.
    app.add_middleware(RequestTelemetryMiddleware, metrics=metrics)
    tracer_provider = configure_tracing(app, settings, span_exporter)
    return app
