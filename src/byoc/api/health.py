"""Liveness (no I/O), readiness (store, schema, CXone token) and the Prometheus scrape (behind
`BYOC_METRICS_TOKEN` when set; `byoc.api.listeners` keeps it off the main listener when
`BYOC_OPS_PORT` is set)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from byoc.api.deps import CxoneReadinessDep, DatabaseDep, MetricsDep, SettingsDep, TenantsDep
from byoc.compare import bearer_matches
from byoc.errors import Unauthenticated
from byoc.ops.metrics import CONTENT_TYPE
from byoc.store import StoreError
from byoc.store.migrations import current_version, latest_version
from byoc.tenancy import DEFAULT_TENANT_ID

log = logging.getLogger(__name__)

router = APIRouter(tags=["Operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(
    db: DatabaseDep, tenants: TenantsDep, cxone_readiness: CxoneReadinessDep
) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        version = await current_version(db)
        checks["store"] = "ok"
        checks["migrations"] = "ok" if version == latest_version() else f"at {version}"
    except StoreError as exc:
        # The probe is public: the reason (database names, statements) goes to the log only.
        log.warning("readiness: store unreachable: %s", exc)
        checks["store"] = "unreachable"

    async def cxone_token_obtainable() -> None:
        # One light authenticated call: a cached token alone would say nothing about CXone.
        client = await tenants.for_tenant(DEFAULT_TENANT_ID)
        await client.ping()

    checks["cxone"] = await cxone_readiness.get(cxone_token_obtainable)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


async def metrics_reader(request: Request, settings: SettingsDep) -> None:
    """With BYOC_METRICS_TOKEN, only a caller with `Authorization: Bearer <token>` may scrape."""
    expected = settings.metrics_token.get_secret_value()
    if expected and not bearer_matches(request.headers.get("authorization", ""), expected):
        raise Unauthenticated("the metrics bearer token is missing or wrong")


@router.get("/metrics", include_in_schema=False)
async def metrics(
    metrics: MetricsDep, _reader: Annotated[None, Depends(metrics_reader)]
) -> Response:
    return Response(await metrics.render(), media_type=CONTENT_TYPE)
