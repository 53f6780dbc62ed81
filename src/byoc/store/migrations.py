"""Schema migrations: which revision a database is at, and `upgrade()` to the head revision.

The revisions are Alembic's, in `byoc/store/alembic/versions/`; `byoc.store.alembic_runner`
applies them under a lock (its docstring says how replicas starting together migrate once).
A database already at `HEAD` (the newest revision file's id), which is what nearly every start
finds, is recognised by reading Alembic's version table here, without loading Alembic: that
costs a `byoc` process ~0.2 s of start-up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, inspect, text

from byoc.store.db import Database
from byoc.store.errors import StoreError

# The revisions are numbered and linear, each file named after its id (`0005_….py`), so the
# newest file names the head: the schema this code runs on. `tests/byoc/test_migrations.py`
# checks that it is Alembic's head.
VERSIONS = Path(__file__).resolve().parent / "alembic" / "versions"
HEAD = max(name[:4] for name in os.listdir(VERSIONS) if re.fullmatch(r"\d{4}_\w+\.py", name))
BASELINE = "0001"

# Where Alembic records a database's revision (its default names).
VERSION_TABLE = "alembic_version"


class SchemaBehind(StoreError):
    """The database is behind the head revision, and this process may not migrate it."""


@dataclass(frozen=True)
class Step:
    """One step an upgrade took: a revision applied, or (`stamped`) recorded as already there."""

    id: str
    doc: str
    stamped: bool = False


def latest_version() -> str:
    """The head revision: where `upgrade()` brings every database."""
    return HEAD


def read_version(conn: Connection) -> str | None:
    """The revision in Alembic's version table; None without one (an empty database, or one
    Alembic has not taken over)."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    version: str | None = conn.execute(
        text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 (a constant)
    ).scalar_one_or_none()
    return version


async def current_version(db: Database) -> str | None:
    """The database's revision; None for an empty one (or one Alembic has not taken over)."""
    return await db.run_read(read_version)


async def upgrade(db: Database, progress: Callable[[Step], None] | None = None) -> list[Step]:
    """Bring the database to the head revision, under the lock; returns the steps taken.

    `progress` hears of each step as it is taken (all of them commit together at the end).
    """
    if await current_version(db) == HEAD:
        return []
    # Loaded only when there is something to migrate (start-up time, see the docstring).
    from byoc.store.alembic_runner import upgrade as run_upgrade

    return await run_upgrade(db, progress)


async def bring_current(db: Database, *, migrate: bool) -> None:
    """Before a process uses the store: `upgrade()` when it may migrate (`BYOC_AUTO_MIGRATE`),
    else `SchemaBehind`, saying what to run, for a database that is not at the head."""
    if migrate:
        await upgrade(db)
        return
    version = await current_version(db)
    if version != HEAD:
        raise SchemaBehind(
            f"the database schema is at revision {version or 'none'}, this byoc needs {HEAD}:"
            " run `byoc db upgrade` (BYOC_AUTO_MIGRATE is off)"
        )
