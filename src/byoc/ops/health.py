"""Liveness (no I/O) and readiness (store reachable, schema current)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from byoc.runtime import RuntimeDep
from byoc.store import StoreError
from byoc.store.migrations import current_version, latest_version

router = APIRouter(tags=["Operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        version = await current_version(runtime.db)
        checks["store"] = "ok"
        checks["migrations"] = "ok" if version == latest_version() else f"at {version}"
    except StoreError as exc:
        checks["store"] = f"unreachable: {exc}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
