"""PostgreSQL connections: pinged only after being idle, replaced when the server drops them,
reads without a transaction around them."""

from __future__ import annotations

import asyncio
from functools import partial

import asyncpg
import pytest
from sqlalchemy import Connection, text

from byoc.store import Database, StoreError, dialect, tenants
from byoc.store.migrations import upgrade
from tests.support.postgres import SESSIONS_WAITING_ON_A_LOCK

pytestmark = pytest.mark.postgres


async def _drop_connections(url: str) -> int:
    """Terminate every other session on the test database, as a server restart would."""
    conn = await asyncpg.connect(dialect.notify_dsn(url))
    try:
        dropped = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(dropped)
    finally:
        await conn.close()


def _backend_pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


async def _open_two_connections(db: Database) -> None:
    """Two pooled connections, both just used."""

    def hold(conn: Connection) -> None:
        conn.execute(text("SELECT pg_sleep(0.2)"))

    await asyncio.gather(db.run_read(hold), db.run_read(hold))


async def test_an_idle_connection_dropped_by_the_server_is_replaced_unseen(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dialect, "PING_AFTER_IDLE_SECONDS", 0.0)  # every connection is idle
    db = Database(postgres_url)
    try:
        await upgrade(db)
        await _open_two_connections(db)
        assert await _drop_connections(postgres_url) >= 2
        # The ping at checkout finds each dead connection; the pool opens fresh ones.
        pids = {await db.run_write(_backend_pid) for _ in range(3)}
        assert all(pids)
        await db.run_read(_backend_pid)
    finally:
        await db.close()


@pytest.mark.parametrize("path", ["sqlalchemy", "driver"])
async def test_connections_in_use_dropped_by_the_server_cost_one_transaction(
    postgres_url: str, path: str
) -> None:
    def first_statement(conn: Connection) -> None:
        if path == "driver":
            tenants.get_tenant(conn, "nobody")  # a prebuilt statement: straight on asyncpg
        else:
            _backend_pid(conn)

    db = Database(postgres_url)
    try:
        await upgrade(db)
        await _open_two_connections(db)
        assert await _drop_connections(postgres_url) >= 2
        # Not idle, so not pinged: the first transaction runs on a dead connection and fails;
        # its failure discards the whole pool, and the next ones run on fresh connections.
        with pytest.raises(StoreError):
            await db.run_write(first_statement)
        for _ in range(3):
            assert await db.run_write(_backend_pid) > 0
            assert await db.run_read(_backend_pid) > 0
    finally:
        await db.close()


async def test_a_read_runs_outside_a_transaction_and_a_write_inside_one(
    postgres_url: str,
) -> None:
    def in_transaction(conn: Connection) -> bool:
        # Each transaction gets its own id; in autocommit every statement is a transaction.
        first, second = (conn.execute(text("SELECT txid_current()")).scalar_one() for _ in range(2))
        return bool(first == second)

    db = Database(postgres_url)
    try:
        await upgrade(db)
        assert await db.run_read(in_transaction) is False
        assert await db.run_write(in_transaction) is True
    finally:
        await db.close()


async def test_requests_that_fill_the_pool_leave_the_reserved_connections_free(
    postgres_url: str,
) -> None:
    """More transactions than the pool holds, all stuck (on a lock another session holds),
    take at most `admitted_transactions` of its connections: the reserved handle, which the
    outbox worker and its deliveries use, still gets one at once and is answered while every
    one of them still waits; they all finish once the lock is released."""
    admitted = dialect.admitted_transactions(postgres_url)
    assert admitted is not None
    assert admitted < dialect.POOL_SIZE
    db = Database(postgres_url)
    holder = await asyncpg.connect(dialect.notify_dsn(postgres_url))
    try:
        await upgrade(db)
        await holder.execute("SELECT pg_advisory_lock(42)")

        def stuck(conn: Connection) -> int:
            conn.execute(text("SELECT pg_advisory_xact_lock(42)"))
            return _backend_pid(conn)

        requests = [asyncio.create_task(db.run_write(stuck)) for _ in range(dialect.POOL_SIZE)]

        async def waiting_on_the_lock() -> int:
            return int(await holder.fetchval(SESSIONS_WAITING_ON_A_LOCK))

        async with asyncio.timeout(10):
            while await waiting_on_the_lock() < admitted:
                await asyncio.sleep(0.01)
        reserved = db.reserved()
        pid = await asyncio.wait_for(reserved.run_read(_backend_pid), timeout=10)
        written = await asyncio.wait_for(reserved.run_write(_backend_pid), timeout=10)
        assert pid
        assert written
        assert await waiting_on_the_lock() == admitted  # and no more: the rest queue in-process
        assert not any(task.done() for task in requests)
        await holder.execute("SELECT pg_advisory_unlock(42)")
        pids = await asyncio.wait_for(asyncio.gather(*requests), timeout=10)
        assert len(set(pids)) <= admitted
    finally:
        await holder.close()
        await db.close()


async def test_a_deadlock_victim_is_reported_as_contention(postgres_url: str) -> None:
    """Two transactions locking two rows in opposite orders: PostgreSQL aborts one of them,
    which the store reports as `Contention` (nothing written: safe to run again), not as a
    plain failure (the intake runs a message's transaction again on it, never answers 503)."""
    db = Database(postgres_url)
    try:
        await db.run_write(
            lambda conn: conn.execute(
                text("CREATE TABLE lock_order (id int PRIMARY KEY, n int NOT NULL DEFAULT 0)")
            )
        )
        await db.run_write(
            lambda conn: conn.execute(text("INSERT INTO lock_order VALUES (1), (2)"))
        )

        def both(first: int, second: int, conn: Connection) -> None:
            bump = text("UPDATE lock_order SET n = n + 1 WHERE id = :id")
            conn.execute(bump, {"id": first})
            conn.execute(text("SELECT pg_sleep(0.3)"))  # the other takes its first lock
            conn.execute(bump, {"id": second})

        outcomes = await asyncio.gather(
            db.run_write(partial(both, 1, 2)),
            db.run_write(partial(both, 2, 1)),
            return_exceptions=True,
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["Contention", "NoneType"]
        counts = await db.run_read(
            lambda conn: conn.execute(text("SELECT n FROM lock_order ORDER BY id")).scalars().all()
        )
        assert list(counts) == [1, 1]  # the victim wrote nothing
    finally:
        await db.close()
