"""One CXone client per tenant (brand), each with its own credentials and token cache."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from byoc.settings import Settings
from byoc.store import Database, tenants
from byoc.store.records import Tenant

if TYPE_CHECKING:  # imported when a client is made: the CLI's store commands need none
    from byoc.cxone import DeClient
    from byoc.cxone.client import CallObserver
    from byoc.http import HttpClient

DEFAULT_TENANT_ID = "default"
# How long a tenant's client serves before the tenant's row is read again: credentials or URLs
# an operator changed (`byoc tenants add`) reach every running process within this.
TENANT_REFRESH_SECONDS = 30.0


def default_tenant(settings: Settings) -> Tenant:
    """The tenant that the `BYOC_CXONE_*` environment variables describe."""
    return Tenant(
        id=DEFAULT_TENANT_ID,
        name="default",
        brand_id=settings.cxone_brand_id,
        cxone_tenant_id=settings.cxone_tenant_id,
        business_unit_id=settings.cxone_business_unit_id,
        api_url=settings.cxone_api_url,
        token_url=settings.cxone_token_url,
        access_key_id=settings.cxone_access_key_id,
        access_key_secret=settings.cxone_access_key_secret.get_secret_value(),
        client_id=settings.cxone_client_id,
        client_secret=settings.cxone_client_secret.get_secret_value(),
    )


class TenantClients:
    def __init__(
        self,
        db: Database,
        http: HttpClient,
        *,
        timeout: float,
        observer: CallObserver | None = None,
        on_token_refresh: Callable[[], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._http = http
        self._timeout = timeout
        self._observer = observer
        self._on_token_refresh = on_token_refresh
        self._monotonic = monotonic
        # Per tenant: its row as last read, its client, and when the row was read.
        self._clients: dict[str, tuple[Tenant, DeClient, float]] = {}

    async def for_tenant(self, tenant_id: str) -> DeClient:
        """The tenant's client: the same one (and its tokens) while the tenant's row is as it
        was, a new one once the row changed (read again every `TENANT_REFRESH_SECONDS`)."""
        now = self._monotonic()
        cached = self._clients.get(tenant_id)
        if cached is not None and now - cached[2] < TENANT_REFRESH_SECONDS:
            return cached[1]
        tenant = await self._db.run_read(tenants.get_tenant, tenant_id)
        if tenant is None:
            self._clients.pop(tenant_id, None)
            raise LookupError(f"unknown tenant {tenant_id!r}")
        client = cached[1] if cached is not None and cached[0] == tenant else self._client(tenant)
        self._clients[tenant_id] = (tenant, client, now)
        return client

    def _client(self, tenant: Tenant) -> DeClient:
        from byoc.cxone import DeClient, TokenManager

        tokens = TokenManager(
            self._http,
            tenant.token_url,
            tenant.access_key_id,
            tenant.access_key_secret,
            tenant.client_id,
            tenant.client_secret,
            on_refresh=self._on_token_refresh,
        )
        return DeClient(
            self._http, tenant.api_url, tokens, timeout=self._timeout, observer=self._observer
        )
