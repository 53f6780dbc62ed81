"""OAuth clients: what CXone authenticates with when it calls the box API.

Named queries on the caller's `Connection`: run them with `Database.run_read` / `run_write`,
alone or inside a transaction function (see `byoc.store`).

Every instance keeps the active clients in memory (`byoc.box.credentials.ActiveClients`). A
change (a client created, its secret rotated, the client revoked) is announced on the bus in
the transaction that makes it, so on PostgreSQL every instance hears of it at the commit and
reads the clients again; instances that miss it (SQLite serves one process, and the CLI is
another) read them again within a few seconds anyway.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from byoc.bus import CHANNEL, CLIENTS_CHANGED, notify_payload
from byoc.store import schema as t
from byoc.store.db import now_ms
from byoc.store.dialect import announce
from byoc.store.records import OAuthClient


def _client(row: Row[Any]) -> OAuthClient:
    m = row._mapping
    return OAuthClient(**{k: m[k] for k in OAuthClient.__dataclass_fields__})


def _changed(conn: Connection) -> None:
    announce(conn, CHANNEL, notify_payload(CLIENTS_CHANGED, {"kind": "clients"}))


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
    _changed(conn)


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
    _changed(conn)
    return result.rowcount > 0


def rotate_secret(conn: Connection, client_id: str, secret_hash: str) -> bool:
    """Give an active client a new secret; the old one stops working."""
    result = conn.execute(
        update(t.oauth_clients)
        .where(t.oauth_clients.c.client_id == client_id, t.oauth_clients.c.revoked_at.is_(None))
        .values(secret_hash=secret_hash)
    )
    _changed(conn)
    return result.rowcount > 0


def active_clients(conn: Connection) -> dict[str, OAuthClient]:
    """The clients not revoked, by id."""
    query = select(t.oauth_clients).where(t.oauth_clients.c.revoked_at.is_(None))
    return {client.client_id: client for client in map(_client, conn.execute(query))}
