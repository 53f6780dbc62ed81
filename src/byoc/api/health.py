"""Liveness (no I/O), readiness (store, schema, CXone token) and the Prometheus scrape."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from byoc.api.deps import CxoneReadinessDep, DatabaseDep, MetricsDep, TenantsDep
from byoc.ops.metrics import CONTENT_TYPE
from byoc.store import StoreError
from byoc.store.migrations import current_version, latest_version
from byoc.tenancy import DEFAULT_TENANT_ID

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
        checks["store"] = f"unreachable: {exc}"

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


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(await metrics.render(), media_type=CONTENT_TYPE)
