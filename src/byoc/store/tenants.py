"""Tenants: the CXone business units this installation serves, with their API credentials.

Named queries on the caller's `Connection`: run them with `Database.run_read` / `run_write`,
alone or inside a transaction function (see `byoc.store`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update

from byoc.store import schema as t
from byoc.store.compiled import execute
from byoc.store.db import now_ms
from byoc.store.dialect import insert_unless_present
from byoc.store.records import Tenant


def _tenant(row: Row[Any]) -> Tenant:
    m = row._mapping
    return Tenant(**{k: m[k] for k in Tenant.__dataclass_fields__})


def upsert_tenant(conn: Connection, tenant: Tenant) -> None:
    if add_tenant_if_missing(conn, tenant) != tenant:
        conn.execute(update(t.tenants).where(t.tenants.c.id == tenant.id).values(**_values(tenant)))


def add_tenant_if_missing(conn: Connection, tenant: Tenant) -> Tenant:
    """`tenant` inserted if no tenant has its id; the stored tenant either way (an existing
    one is left as it is, and so is one that a concurrent writer inserts meanwhile)."""
    existing = get_tenant(conn, tenant.id)
    if existing is not None:
        return existing
    insert = insert_unless_present(conn, t.tenants, "id")
    if conn.execute(insert.values(**_values(tenant), created_at=now_ms())).rowcount == 1:
        return tenant
    # Another instance inserted it after the read above and has committed (READ COMMITTED).
    stored = get_tenant(conn, tenant.id)
    assert stored is not None
    return stored


def _values(tenant: Tenant) -> dict[str, Any]:
    return {k: getattr(tenant, k) for k in Tenant.__dataclass_fields__}


_GET_TENANT = select(t.tenants).where(t.tenants.c.id == bindparam("id"))


def get_tenant(conn: Connection, tenant_id: str) -> Tenant | None:
    row = execute(conn, _GET_TENANT, {"id": tenant_id}).first()
    return _tenant(row) if row else None


def list_tenants(conn: Connection) -> list[Tenant]:
    rows = conn.execute(select(t.tenants).order_by(t.tenants.c.id))
    return [_tenant(r) for r in rows]
