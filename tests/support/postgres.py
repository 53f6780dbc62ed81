"""A fresh PostgreSQL database per test module (or per test), on BYOC_TEST_POSTGRES_URL's server."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from byoc.store import Database, migrations
from tests.support import seed
from tests.support.waiting import wait_for_async

BASE_URL = os.environ.get("BYOC_TEST_POSTGRES_URL")


# How many sessions of the current database wait on a lock (a row's, an advisory one).
SESSIONS_WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


async def until_waiting_or_done(
    watcher: asyncpg.Connection,
    task: asyncio.Task[Any] | None = None,
    *,
    what: str,
    query: str = SESSIONS_WAITING_ON_A_LOCK,
) -> None:
    """Until a session of `watcher`'s database waits on a lock (as `query` counts them), or
    `task` has ended (on the code before a fix, it may not wait at all). `watcher` is a plain
    asyncpg connection, in autocommit: inside a transaction `pg_stat_activity` is read once."""

    async def ready() -> bool:
        if task is not None and task.done():
            return True
        return int(await watcher.fetchval(query)) >= 1

    await wait_for_async(ready, what=what)


@asynccontextmanager
async def store_and_watcher(url: str) -> AsyncIterator[tuple[Database, asyncpg.Connection]]:
    """The store on `url`'s database, migrated and emptied (`seed.clean`), and a plain
    connection to watch its sessions (`until_waiting_or_done`)."""
    db = Database(url)
    watcher = await asyncpg.connect(url)
    try:
        await migrations.upgrade(db)
        await db.run_write(seed.clean)
        yield db, watcher
    finally:
        await watcher.close()
        await db.close()


@contextmanager
def fresh_database() -> Iterator[str]:
    if not BASE_URL:
        pytest.skip("BYOC_TEST_POSTGRES_URL is not set")
    name = "byoc_test_" + secrets.token_hex(4)
    admin = make_url(BASE_URL).set(drivername="postgresql").render_as_string(hide_password=False)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url
