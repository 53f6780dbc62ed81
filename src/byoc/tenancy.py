"""One CXone client per tenant (brand), each with its own credentials and token cache."""

from __future__ import annotations

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
    ) -> None:
        self._db = db
        self._http = http
        self._timeout = timeout
        self._observer = observer
        self._on_token_refresh = on_token_refresh
        self._clients: dict[str, tuple[Tenant, DeClient]] = {}

    async def for_tenant(self, tenant_id: str) -> DeClient:
        cached = self._clients.get(tenant_id)
        if cached is not None:
            return cached[1]
        from byoc.cxone import DeClient, TokenManager

        tenant = await self._db.run_read(tenants.get_tenant, tenant_id)
        if tenant is None:
            raise LookupError(f"unknown tenant {tenant_id!r}")
        tokens = TokenManager(
            self._http,
            tenant.token_url,
            tenant.access_key_id,
            tenant.access_key_secret,
            tenant.client_id,
            tenant.client_secret,
            on_refresh=self._on_token_refresh,
        )
        client = DeClient(
            self._http, tenant.api_url, tokens, timeout=self._timeout, observer=self._observer
        )
        self._clients[tenant_id] = (tenant, client)
        return client

    def forget(self, tenant_id: str) -> None:
        self._clients.pop(tenant_id, None)
