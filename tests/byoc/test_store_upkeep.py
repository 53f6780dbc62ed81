"""Every instance vacuums PostgreSQL's busiest tables, the outbox and the conversations, every
`BYOC_STORE_VACUUM_INTERVAL_SECONDS` (`byoc.store.upkeep`); on SQLite there is nothing to do."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from byoc.clock import SystemClock
from byoc.outbox import rows
from byoc.store import Database, now_ms
from byoc.store.upkeep import BUSIEST_TABLES, StoreUpkeep
from tests.support.waiting import wait_for_async


async def vacuum_counts(db_url: str) -> dict[str, int]:
    """How many times each of the busiest tables was vacuumed by hand (not by autovacuum)."""
    dsn = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        found = await conn.fetch(
            "SELECT relname, vacuum_count FROM pg_stat_user_tables WHERE relname = ANY($1)",
            list(BUSIEST_TABLES),
        )
    finally:
        await conn.close()
    return {row["relname"]: row["vacuum_count"] for row in found}


def is_sqlite(db_url: str) -> bool:
    return db_url.startswith("sqlite")


async def test_a_pass_vacuums_the_outbox_and_the_conversations(db: Database, db_url: str) -> None:
    upkeep = StoreUpkeep(db, SystemClock(), interval_seconds=5)
    if is_sqlite(db_url):
        assert not upkeep.active
        await upkeep.vacuum()  # nothing to do, and no error
        assert upkeep.vacuums == 0
        return
    assert upkeep.active

    def churn(conn: Connection) -> None:  # dead row versions: rows inserted, then deleted
        now = now_ms()
        ids = [rows.enqueue(conn, lane=f"l:{i}", kind="k", payload={}, now=now) for i in range(50)]
        rows.complete_many(conn, ids)

    await db.run_write(churn)
    before = await vacuum_counts(db_url)
    await upkeep.vacuum()
    after = await vacuum_counts(db_url)
    assert upkeep.vacuums == 1
    assert {table: after[table] - before.get(table, 0) for table in BUSIEST_TABLES} == {
        "outbox": 1,
        "conversations": 1,
    }


async def test_the_loop_vacuums_every_interval_until_stopped(db: Database, db_url: str) -> None:
    upkeep = StoreUpkeep(db, SystemClock(), interval_seconds=0.05)
    task = asyncio.create_task(upkeep.run())

    async def vacuumed_twice() -> bool:
        return upkeep.vacuums >= 2

    if not is_sqlite(db_url):
        await wait_for_async(vacuumed_twice, what="two vacuums")
    upkeep.stop()
    await asyncio.wait_for(task, 10)  # stops at once; on SQLite it returned straight away
    assert (upkeep.vacuums >= 2) is not is_sqlite(db_url)


async def test_an_interval_of_zero_leaves_it_to_autovacuum(db: Database) -> None:
    upkeep = StoreUpkeep(db, SystemClock(), interval_seconds=0)
    assert not upkeep.active
    await asyncio.wait_for(upkeep.run(), 10)
    assert upkeep.vacuums == 0
