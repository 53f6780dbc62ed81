"""Migrations: Alembic revisions against the metadata, old databases, replicas starting together.

Each test runs on SQLite and on PostgreSQL, each time in a database of its own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Index, MetaData, Row, inspect, text

from byoc.store import Database, StoreError
from byoc.store.alembic_runner import head_revision
from byoc.store.migrations import BASELINE, HEAD, current_version, latest_version, upgrade
from byoc.store.schema import metadata
from tests.support.legacy_schema import build_legacy_database
from tests.support.postgres import fresh_database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture
async def db(database_url: str) -> Any:
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.close()


async def drift(db: Database, target: MetaData = metadata) -> list[Any]:
    """What `alembic check` reports: every difference between the database and `target`."""

    def compare(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return [
            diff
            for diff in compare_metadata(context, target)
            # Alembic's own bookkeeping is not part of the application's metadata.
            if not (diff[0] == "remove_table" and diff[1].name == "alembic_version")
        ]

    return await db.run_read(compare)


async def test_a_fresh_database_migrates_to_exactly_the_metadata(db: Database) -> None:
    assert await current_version(db) is None
    steps = await upgrade(db)
    assert steps[0].id == BASELINE
    assert steps[-1].id == latest_version()
    assert not any(step.stamped for step in steps)
    assert await current_version(db) == latest_version()
    assert await drift(db) == []
    assert await upgrade(db) == []  # a second start applies nothing


def test_head_names_the_newest_revision() -> None:
    """`migrations.HEAD`, the newest revision file's number, lets a start at the head skip
    Alembic: a revision must be numbered after the last and named after its id."""
    assert head_revision() == HEAD, (
        f"Alembic's head is {head_revision()}, the newest revision file {HEAD}: number the new"
        " revision after the last (alembic revision --rev-id NNNN)"
    )


async def test_the_drift_check_sees_a_difference(db: Database) -> None:
    await upgrade(db)
    changed = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    Index("outbox_by_kind", changed.tables["outbox"].c.kind)
    changed.tables["customers"].c.opted_out.nullable = True
    diffs = await drift(db, changed)
    assert ("add_index", "outbox_by_kind") in [
        (d[0], d[1].name) for d in diffs if isinstance(d, tuple)
    ]
    # Column changes come as a list of one tuple: ("modify_nullable", schema, table, column, ...).
    modified = [d[0][:4] for d in diffs if isinstance(d, list)]
    assert modified == [("modify_nullable", None, "customers", "opted_out")]


LEGACY_ROWS: dict[str, list[dict[str, Any]]] = {
    "tenants": [
        {
            "id": "default", "name": "Default", "brand_id": 1001, "cxone_tenant_id": "t-1",
            "business_unit_id": 7, "api_url": "https://api.invalid", "token_url": "https://t.invalid",
            "access_key_id": "k", "access_key_secret": "s", "client_id": "c",
            "client_secret": "cs", "created_at": 1_700_000_000_000,
        }
    ],
    "oauth_clients": [
        {"client_id": "byoc_1", "name": "cxone", "secret_hash": "h", "created_at": 1,
         "revoked_at": None}
    ],
    "channels": [
        {"id": "chat", "tenant_id": "default", "adapter": "webhook", "name": "Chat",
         "webhook_url": "https://p.invalid/hook", "secret": "x", "created_at": 2,
         "deleted_at": None, "settings": '{"theme": "dark"}'}
    ],
    "customers": [
        {"id": "cus_1", "channel_id": "chat", "external_id": "ext-1", "first_name": "Ada",
         "last_name": None, "nickname": None, "image": None, "custom_fields": "[]",
         "created_at": 3, "opted_out": 1}
    ],
    "conversations": [
        {"id": "con_1", "channel_id": "chat", "customer_id": "cus_1", "state": "open",
         "origin": "customer", "de_thread_id": "th_1", "de_contact_id": None, "next_seq": 2,
         "last_customer_activity_at": 4, "created_at": 4, "ended_at": None,
         "ended_reason": None, "idle_deadline": 9_000, "countdown_deadline": None,
         "de_checked_at": None, "dismissed_at": None}
    ],
    "messages": [
        {"id": "msg_1", "channel_id": "chat", "conversation_id": "con_1", "seq": 1,
         "direction": "inbound", "sender": "customer", "text": "hello", "content": "{}",
         "attachments": None, "author": None, "platform_message_id": "p-1",
         "de_message_id": None, "status": "sent", "created_at": 5}
    ],
    "attachments": [
        {"id": "att_1", "channel_id": "chat", "customer_id": "cus_1", "access_token": "tok",
         "friendly_name": "a.png", "mime_type": "image/png", "size": 3,
         "data": b"\x89PN", "created_at": 6}
    ],
    "outbox": [
        {"lane": "con_1", "kind": "message", "payload": "{}", "state": "pending",
         "next_attempt_at": 7, "created_at": 7, "updated_at": 7}
    ],
}  # fmt: skip


async def insert_rows(db: Database) -> None:
    def insert(conn: Connection) -> None:
        for table, rows in LEGACY_ROWS.items():
            for row in rows:
                columns = ", ".join(row)
                values = ", ".join(f":{name}" for name in row)
                conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({values})"), row)

    await db.run_write(insert)


async def test_a_database_of_the_hand_written_migrations_upgrades_in_place(db: Database) -> None:
    await build_legacy_database(db)
    await insert_rows(db)

    steps = await upgrade(db)

    assert steps[0].id == BASELINE
    assert steps[0].stamped  # recognised, not created again
    assert not any(step.stamped for step in steps[1:])
    assert await current_version(db) == latest_version()
    assert await drift(db) == []

    def read_back(conn: Connection) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
        stored = {
            table: [dict(r) for r in conn.execute(text(f"SELECT * FROM {table}")).mappings()]
            for table in LEGACY_ROWS
        }
        return inspect(conn).get_table_names(), stored

    tables, stored_rows = await db.run_read(read_back)
    assert "schema_migrations" not in tables
    for table, rows in LEGACY_ROWS.items():
        stored = stored_rows[table]
        assert len(stored) == len(rows)
        for key, value in rows[0].items():
            assert stored[0][key] == value, (table, key)
    # The outbox's id keeps counting (BIGSERIAL's sequence, SQLite's AUTOINCREMENT: never an
    # id given before, not even that of a deleted row) and the server default fills `attempts`.
    insert = text(
        "INSERT INTO outbox (lane, kind, payload, state, next_attempt_at, created_at, updated_at)"
        " VALUES ('l', 'k', '{}', 'pending', 8, 8, 8) RETURNING id, attempts"
    )

    def insert_and_delete(conn: Connection) -> Row[Any]:
        row = conn.execute(insert).one()
        conn.execute(text("DELETE FROM outbox WHERE id = :id"), {"id": row.id})
        return row

    first = await db.run_write(insert_and_delete)
    second = await db.run_write(lambda conn: conn.execute(insert).one())
    assert first.attempts == second.attempts == 0
    assert second.id > first.id > 1
    assert await upgrade(db) == []


async def test_an_older_hand_written_schema_is_refused_untouched(db: Database) -> None:
    await build_legacy_database(db, up_to=3)
    with pytest.raises(StoreError, match="says version 3"):
        await upgrade(db)
    tables = await db.run_read(lambda conn: inspect(conn).get_table_names())
    assert "schema_migrations" in tables
    assert "alembic_version" not in tables
    assert await current_version(db) is None


def test_replicas_starting_together_migrate_once(database_url: str, tmp_path: Path) -> None:
    """Three processes run `byoc db upgrade` (what start-up does) on one fresh database."""
    env = {**os.environ, "BYOC_DATABASE_URL": database_url}
    replicas = [
        subprocess.Popen(
            [sys.executable, "-m", "byoc.cli", "db", "upgrade"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [replica.communicate(timeout=120) for replica in replicas]
    assert [replica.returncode for replica in replicas] == [0, 0, 0], outputs
    migrated = [out for out, _err in outputs if "applying revision" in out]
    assert len(migrated) == 1, outputs  # one migrated; the others waited, then found it done
    assert f"applying revision {latest_version()}" in migrated[0]

    async def check() -> None:
        db = Database(database_url)
        try:
            rows = await db.run_read(
                lambda conn: conn.execute(text("SELECT version_num FROM alembic_version")).all()
            )
            assert [row[0] for row in rows] == [latest_version()]
            assert await drift(db) == []
        finally:
            await db.close()

    asyncio.run(check())
