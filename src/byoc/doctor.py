"""`byoc doctor`: is this deployment able to work, and how far away is CXone?

Checks, each printed as PASS / WARN / FAIL with a reason:
  - store: reachable, schema at the latest migration (never migrates: it only looks);
  - outbox: dead letters waiting for `byoc outbox retry` (a warning, not a failure);
  - for each tenant the server calls CXone for (the stored ones, the default as `byoc serve`
    stored it; this environment's default while none is stored): a CXone access token can be
    obtained, then a few light authenticated DE calls (`GET /channels`) are timed: min /
    median / max in milliseconds. A stored default that differs from this environment's is a
    warning.
Exits 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from byoc.cxone import CxoneError, DeClient, TokenManager
from byoc.http import HttpClient
from byoc.outbox import rows as outbox_rows
from byoc.settings import Settings
from byoc.store import Connection, Database, StoreError, tenants
from byoc.store.migrations import current_version, latest_version
from byoc.store.records import Tenant
from byoc.tenancy import DEFAULT_TENANT_ID, default_tenant

Verdict = Literal["PASS", "WARN", "FAIL"]


@dataclass(frozen=True)
class CheckResult:
    name: str
    verdict: Verdict
    detail: str


async def check_store(db: Database) -> tuple[list[CheckResult], list[Tenant] | None]:
    """The store's health, and the tenants it holds (None when it cannot be read)."""
    try:
        version = await current_version(db)
    except StoreError as exc:
        return [CheckResult("store", "FAIL", f"unreachable: {exc}")], None
    latest = latest_version()
    if version != latest:
        detail = f"schema at revision {version or 'none'}, head is {latest}: run `byoc db upgrade`"
        return [CheckResult("store", "FAIL", detail)], None
    results = [CheckResult("store", "PASS", f"reachable, schema at revision {version} (latest)")]
    try:
        stored, dead = await db.run_read(_tenants_and_dead_letters)
    except StoreError as exc:
        return [*results, CheckResult("outbox", "FAIL", f"cannot be read: {exc}")], None
    if dead:
        hint = f"{dead} dead letter(s): inspect with `byoc outbox list --state dead`"
        results.append(CheckResult("outbox", "WARN", hint))
    else:
        results.append(CheckResult("outbox", "PASS", "no dead letters"))
    return results, stored


def _tenants_and_dead_letters(conn: Connection) -> tuple[list[Tenant], int]:
    return tenants.list_tenants(conn), outbox_rows.count_dead(conn)


async def check_tenant(
    http: HttpClient, tenant: Tenant, *, pings: int, call_timeout: float
) -> list[CheckResult]:
    label = f"cxone[{tenant.id}]"
    tokens = TokenManager(
        http,
        tenant.token_url,
        tenant.access_key_id,
        tenant.access_key_secret,
        tenant.client_id,
        tenant.client_secret,
        timeout=call_timeout,
    )
    started = time.perf_counter()
    try:
        await tokens.get()
    except CxoneError as exc:
        return [CheckResult(f"{label} token", "FAIL", f"{tenant.token_url}: {exc}")]
    token_ms = (time.perf_counter() - started) * 1000
    results = [CheckResult(f"{label} token", "PASS", f"obtained in {token_ms:.0f} ms")]
    client = DeClient(http, tenant.api_url, tokens, timeout=call_timeout)
    samples: list[float] = []
    try:
        for _ in range(max(1, pings)):
            samples.append(await client.ping() * 1000)
    except CxoneError as exc:
        detail = f"{tenant.api_url}: call {len(samples) + 1} failed: {exc}"
        return [*results, CheckResult(f"{label} api", "FAIL", detail)]
    detail = (
        f"{len(samples)} x GET /channels: min {min(samples):.1f} ms, "
        f"median {statistics.median(samples):.1f} ms, max {max(samples):.1f} ms ({tenant.api_url})"
    )
    return [*results, CheckResult(f"{label} api", "PASS", detail)]


def tenants_to_check(
    own: Tenant, stored: list[Tenant] | None
) -> tuple[list[Tenant], CheckResult | None]:
    """The tenants the server calls CXone for, the default first: the stored ones, which
    `byoc serve` writes (the default from its environment at each start), or this
    environment's default when the store holds none (a new store) or could not be read
    (`stored` None). A warning says which default is checked when that is not plain: the
    stored one differs from this environment's, or the store could not say."""
    if stored is None:
        note = CheckResult(
            f"tenant[{DEFAULT_TENANT_ID}]",
            "WARN",
            "the store could not be read; checking this environment's default tenant, which "
            "may not be the one the server stored",
        )
        return [own], note
    default = next((t for t in stored if t.id == DEFAULT_TENANT_ID), None)
    others = [t for t in stored if t.id != DEFAULT_TENANT_ID]
    if default is None:
        return [own, *others], None
    if default == own:
        return [default, *others], None
    note = CheckResult(
        f"tenant[{DEFAULT_TENANT_ID}]",
        "WARN",
        "the stored default tenant (the server's: `byoc serve` writes it at start) differs "
        "from this environment's BYOC_CXONE_* settings; checking the stored one",
    )
    return [default, *others], note


async def diagnose(settings: Settings, *, pings: int = 5) -> list[CheckResult]:
    db = Database(settings.database_url)
    try:
        results, stored = await check_store(db)
    finally:
        await db.close()
    checked, note = tenants_to_check(default_tenant(settings), stored)
    if note is not None:
        results.append(note)
    async with HttpClient(max_connections=4) as http:
        for tenant in checked:
            results += await check_tenant(
                http, tenant, pings=pings, call_timeout=settings.cxone_timeout_seconds
            )
    return results


async def run_doctor(
    settings: Settings, *, pings: int = 5, out: Callable[[str], None] | None = None
) -> int:
    write = out or (lambda line: print(line, file=sys.stdout, flush=True))
    results = await diagnose(settings, pings=pings)
    width = max(len(r.name) for r in results)
    for r in results:
        write(f"{r.verdict:4}  {r.name:{width}}  {r.detail}")
    failed = sum(r.verdict == "FAIL" for r in results)
    warned = sum(r.verdict == "WARN" for r in results)
    if failed:
        write(f"doctor: {failed} check(s) failed")
        return 1
    write("doctor: all checks passed" + (f" ({warned} warning(s))" if warned else ""))
    return 0
