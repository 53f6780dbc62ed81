"""Narrow dependencies: a handler names what it uses (`ConversationsDep`, `SettingsDep`, ...),
never the whole application.

The lifespan (`byoc.app`) builds one `Services` and yields it as lifespan state
(`lifespan_state`); only this module reads it back. Each `...Dep` alias is resolved by a
coroutine (`get_...`): FastAPI runs a plain-function dependency on a worker thread, a thread
hop per request for a lookup. The `..._of(connection)` functions are the same lookups for code
that FastAPI does not call with dependencies: the lean hot routes (`byoc.api.hot` calls them
with the request only) and the CORS middleware. Two dict lookups each, nothing built per
request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from byoc.api.readiness import CachedVerdict
from byoc.box.credentials import ActiveClients, TokenIssuer
from byoc.box.token_throttle import TokenThrottle
from byoc.bus import LocalBus
from byoc.channels.webchat.abuse import WidgetLimits
from byoc.clock import Clock
from byoc.conversations.service import ConversationService
from byoc.ops.metrics import Metrics
from byoc.provisioning.link_throttle import LinkThrottle
from byoc.settings import Settings
from byoc.store import Database
from byoc.tenancy import TenantClients


@dataclass(frozen=True, slots=True)
class Services:
    """What request handlers may use, built once per app in the lifespan."""

    settings: Settings
    db: Database
    tenants: TenantClients
    conversations: ConversationService
    token_issuer: TokenIssuer
    active_clients: ActiveClients
    metrics: Metrics
    cxone_readiness: CachedVerdict
    bus: LocalBus
    token_throttle: TokenThrottle
    widget_limits: WidgetLimits
    link_throttle: LinkThrottle
    clock: Clock


_KEY = "byoc.services"


def lifespan_state(services: Services) -> dict[str, Services]:
    """What the lifespan yields. The server gives every connection a shallow copy of it as
    `scope["state"]`: one dict lookup away, where `app.state` costs an attribute hook."""
    return {_KEY: services}


def _services(connection: HTTPConnection) -> Services:
    services: Services = connection.scope["state"][_KEY]
    return services


def settings_of(connection: HTTPConnection) -> Settings:
    return _services(connection).settings


def database_of(connection: HTTPConnection) -> Database:
    return _services(connection).db


def conversations_of(connection: HTTPConnection) -> ConversationService:
    return _services(connection).conversations


def token_issuer_of(connection: HTTPConnection) -> TokenIssuer:
    return _services(connection).token_issuer


def active_clients_of(connection: HTTPConnection) -> ActiveClients:
    return _services(connection).active_clients


def metrics_of(connection: HTTPConnection) -> Metrics:
    return _services(connection).metrics


def token_throttle_of(connection: HTTPConnection) -> TokenThrottle:
    return _services(connection).token_throttle


async def get_settings(connection: HTTPConnection) -> Settings:
    return _services(connection).settings


async def get_database(connection: HTTPConnection) -> Database:
    return _services(connection).db


async def get_tenants(connection: HTTPConnection) -> TenantClients:
    return _services(connection).tenants


async def get_conversations(connection: HTTPConnection) -> ConversationService:
    return _services(connection).conversations


async def get_token_issuer(connection: HTTPConnection) -> TokenIssuer:
    return _services(connection).token_issuer


async def get_active_clients(connection: HTTPConnection) -> ActiveClients:
    return _services(connection).active_clients


async def get_metrics(connection: HTTPConnection) -> Metrics:
    return _services(connection).metrics


async def get_cxone_readiness(connection: HTTPConnection) -> CachedVerdict:
    return _services(connection).cxone_readiness


async def get_bus(connection: HTTPConnection) -> LocalBus:
    return _services(connection).bus


async def get_token_throttle(connection: HTTPConnection) -> TokenThrottle:
    return _services(connection).token_throttle


async def get_widget_limits(connection: HTTPConnection) -> WidgetLimits:
    return _services(connection).widget_limits


async def get_link_throttle(connection: HTTPConnection) -> LinkThrottle:
    return _services(connection).link_throttle


async def get_clock(connection: HTTPConnection) -> Clock:
    return _services(connection).clock


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
TenantsDep = Annotated[TenantClients, Depends(get_tenants)]
ConversationsDep = Annotated[ConversationService, Depends(get_conversations)]
TokenIssuerDep = Annotated[TokenIssuer, Depends(get_token_issuer)]
ActiveClientsDep = Annotated[ActiveClients, Depends(get_active_clients)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
CxoneReadinessDep = Annotated[CachedVerdict, Depends(get_cxone_readiness)]
BusDep = Annotated[LocalBus, Depends(get_bus)]
TokenThrottleDep = Annotated[TokenThrottle, Depends(get_token_throttle)]
WidgetLimitsDep = Annotated[WidgetLimits, Depends(get_widget_limits)]
LinkThrottleDep = Annotated[LinkThrottle, Depends(get_link_throttle)]
ClockDep = Annotated[Clock, Depends(get_clock)]
