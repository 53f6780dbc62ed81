"""Every instance vacuums PostgreSQL's busiest tables, the outbox and the conversations, every
`BYOC_STORE_VACUUM_INTERVAL_SECONDS` (`byoc.store.upkeep`); on SQLite there is nothing to do."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from byoc.clock import SystemClock
from byoc.outbox import rows
from byoc.store import Database, migrations, now_ms
from byoc.store.upkeep import BUSIEST_TABLES, StoreUpkeep
from tests.support.waiting import wait_for_async

_VACUUM_COUNTS = text("SELECT relname, vacuum_count FROM pg_stat_user_tables")


@pytest.fixture
async def pg(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(postgres_url)
    await migrations.upgrade(database)
    try:
        yield database
    finally:
        await database.close()


async def vacuum_counts(db: Database) -> dict[str, int]:
    """How many times each of the busiest tables was vacuumed by hand (not by autovacuum)."""

    def read(conn: Connection) -> dict[str, int]:
        counts = {str(name): int(count) for name, count in conn.execute(_VACUUM_COUNTS)}
        return {table: counts[table] for table in BUSIEST_TABLES}

    return await db.run_read(read)


async def test_on_sqlite_there_is_nothing_to_do(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        upkeep = StoreUpkeep(db, SystemClock(), interval_seconds=0.01)
        assert not upkeep.active
        await upkeep.vacuum()  # nothing to do, and no error
        await asyncio.wait_for(upkeep.run(), 10)  # returns at once
        assert upkeep.vacuums == 0
    finally:
        await db.close()


@pytest.mark.postgres
async def test_a_pass_vacuums_the_outbox_and_the_conversations(pg: Database) -> None:
    upkeep = StoreUpkeep(pg, SystemClock(), interval_seconds=5)
    assert upkeep.active

    def churn(conn: Connection) -> None:  # dead row versions: rows inserted, then deleted
        ids = [
            rows.enqueue(conn, lane=f"l:{i}", kind="k", payload={}, now=now_ms()) for i in range(50)
        ]
        rows.complete_many(conn, ids)

    await pg.run_write(churn)
    before = await vacuum_counts(pg)
    await upkeep.vacuum()
    after = await vacuum_counts(pg)
    assert upkeep.vacuums == 1
    assert {table: after[table] - before[table] for table in BUSIEST_TABLES} == {
        "outbox": 1,
        "conversations": 1,
    }


@pytest.mark.postgres
async def test_the_loop_vacuums_every_interval_until_stopped(pg: Database) -> None:
    upkeep = StoreUpkeep(pg, SystemClock(), interval_seconds=0.05)
    task = asyncio.create_task(upkeep.run())

    async def vacuumed_twice() -> bool:
        return upkeep.vacuums >= 2

    await wait_for_async(vacuumed_twice, what="two vacuums")
    upkeep.stop()
    await asyncio.wait_for(task, 10)  # the wait ends at once


@pytest.mark.postgres
async def test_an_interval_of_zero_leaves_it_to_autovacuum(pg: Database) -> None:
    upkeep = StoreUpkeep(pg, SystemClock(), interval_seconds=0)
    assert not upkeep.active
    await asyncio.wait_for(upkeep.run(), 10)
    assert upkeep.vacuums == 0
