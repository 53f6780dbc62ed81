"""OAuth clients: what CXone authenticates with when it calls the box API.

Named queries on the caller's `Connection`: run them with `Database.run_read` / `run_write`,
alone or inside a transaction function (see `byoc.store`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from byoc.store import schema as t
from byoc.store.db import now_ms
from byoc.store.records import OAuthClient


def _client(row: Row[Any]) -> OAuthClient:
    m = row._mapping
    return OAuthClient(**{k: m[k] for k in OAuthClient.__dataclass_fields__})


def insert_client(
    conn: Connection, client_id: str, name: str, secret_hash: str, tenant_id: str
) -> None:
    conn.execute(
        insert(t.oauth_clients).values(
            client_id=client_id,
            name=name,
            secret_hash=secret_hash,
            created_at=now_ms(),
            tenant_id=tenant_id,
        )
    )


def get_client(conn: Connection, client_id: str) -> OAuthClient | None:
    query = select(t.oauth_clients).where(t.oauth_clients.c.client_id == client_id)
    row = conn.execute(query).first()
    return _client(row) if row else None


def list_clients(conn: Connection) -> list[OAuthClient]:
    rows = conn.execute(select(t.oauth_clients).order_by(t.oauth_clients.c.created_at))
    return [_client(r) for r in rows]


def revoke_client(conn: Connection, client_id: str) -> bool:
    result = conn.execute(
        update(t.oauth_clients)
        .where(t.oauth_clients.c.client_id == client_id, t.oauth_clients.c.revoked_at.is_(None))
        .values(revoked_at=now_ms())
    )
    return result.rowcount > 0


def active_client_tenants(conn: Connection) -> dict[str, str]:
    """The clients not revoked, each with its tenant."""
    query = select(t.oauth_clients.c.client_id, t.oauth_clients.c.tenant_id).where(
        t.oauth_clients.c.revoked_at.is_(None)
    )
    return {row[0]: row[1] for row in conn.execute(query)}
