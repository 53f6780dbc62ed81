"""A store for tests that run once on SQLite and once on PostgreSQL: its URL, and the store
itself, migrated and emptied."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from byoc.store import Database, migrations
from tests.support.seed import clean


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite file, or the module's PostgreSQL database (`postgres_url`)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield request.getfixturevalue("postgres_url")


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """The store at `db_url`, migrated, with no rows a seeded test writes (`seed.clean`)."""
    database = Database(db_url)
    await migrations.upgrade(database)
    await database.run_write(clean)
    try:
        yield database
    finally:
        await database.close()
