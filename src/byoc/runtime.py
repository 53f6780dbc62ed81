"""Everything a running app holds, built in the lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from byoc.api.readiness import CachedVerdict
from byoc.box.credentials import ActiveClients, TokenIssuer
from byoc.bus import LocalBus
from byoc.conversations.lifecycle import LifecycleLoops
from byoc.conversations.service import ConversationService
from byoc.http import HttpClient
from byoc.ops.metrics import Metrics
from byoc.outbox.worker import OutboxWorker
from byoc.settings import Settings
from byoc.store import Database
from byoc.tenancy import TenantClients


@dataclass
class Runtime:
    settings: Settings
    db: Database
    http: HttpClient
    tenants: TenantClients
    conversations: ConversationService
    worker: OutboxWorker
    token_issuer: TokenIssuer
    active_clients: ActiveClients
    metrics: Metrics
    cxone_readiness: CachedVerdict
    bus: LocalBus
    lifecycle: LifecycleLoops


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_runtime(request: Request) -> Runtime:
    # A coroutine, not a plain function: FastAPI runs a plain dependency on a worker thread,
    # a thread hop per request for a lookup.
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
