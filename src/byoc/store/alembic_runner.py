"""Alembic at work: the revisions in `byoc/store/alembic/versions/`, applied under a lock.

`byoc.store.migrations` is the way in: it loads this module (and Alembic with it, ~0.2 s of
start-up) only when the database is not at the head revision already.

`schema.metadata` is the schema's one definition; each revision moves a database one step
towards it, and the suite compares a freshly migrated database with the metadata. Replicas
starting together each call `upgrade()`; one migrates while the others wait for it:

- PostgreSQL: a transaction-scoped advisory lock, then every pending revision in that same
  transaction (PostgreSQL's DDL is transactional: a failing revision leaves nothing behind);
- SQLite: `BEGIN IMMEDIATE` takes the database file's write lock for the whole upgrade.
  SQLite alters a table mostly by rebuilding it (Alembic's batch mode), which dropping a
  referenced table would trip over: foreign keys are off on the migrating connection, and
  `PRAGMA foreign_key_check` must come back empty before the upgrade commits.

A database created by the hand-written migrations that came before Alembic (a
`schema_migrations` table at version 4) holds exactly the baseline revision's schema: it is
stamped at the baseline, that table dropped, and upgraded from there, its rows untouched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Mapping
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from byoc.store import dialect
from byoc.store.db import Database
from byoc.store.errors import StoreError, store_error
from byoc.store.migrations import BASELINE, Step

SCRIPT_LOCATION = "byoc.store:alembic"

# The version the hand-written migrations had reached when Alembic replaced them.
LEGACY_TABLE = "schema_migrations"
LEGACY_LAST_VERSION = 4


def _config(
    connection: Connection | None = None,
    on_version_apply: Callable[..., None] | None = None,
) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["connection"] = connection
    config.attributes["on_version_apply"] = on_version_apply
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    """The head revision as Alembic reads it from the revision files (`migrations.HEAD` must
    name it)."""
    head = _script().get_current_head()
    if head is None:
        raise StoreError(f"no Alembic revision found in {SCRIPT_LOCATION}")
    return head


async def upgrade(db: Database, progress: Callable[[Step], None] | None = None) -> list[Step]:
    """Bring the database to the head revision, under the lock; returns the steps taken.

    `progress` hears of each step as it is taken (all of them commit together at the end).
    """
    steps: list[Step] = []

    def on_version_apply(
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: Collection[Any],
        run_args: Mapping[str, Any],
    ) -> None:
        script = step.up_revision
        if not isinstance(script, Script) or not step.is_upgrade:
            return
        taken = Step(script.revision, script.doc, stamped=step.is_stamp)
        steps.append(taken)
        if progress is not None:
            progress(taken)

    # The database's lock comes before any Alembic code runs: Alembic keeps the running
    # migration's context in module globals, so not even two upgrades in one process may overlap.
    without_foreign_keys = dialect.rebuilds_tables_to_alter(db.url)

    def run(conn: Connection) -> None:
        dialect.take_migration_lock(conn, db.url)
        config = _config(conn, on_version_apply)
        if _is_legacy(conn):
            command.stamp(config, BASELINE)
            conn.execute(text("DROP TABLE schema_migrations"))
        command.upgrade(config, "head")
        if without_foreign_keys:
            broken = dialect.broken_foreign_keys(conn)
            if broken:
                raise StoreError(f"the upgrade would break foreign keys: {broken[:5]}")

    if without_foreign_keys:
        await _run_without_foreign_keys(db, run)
    else:
        await db.run_write(run)
    return steps


async def _run_without_foreign_keys(db: Database, run: Callable[[Connection], None]) -> None:
    """SQLite: `run` in a `BEGIN IMMEDIATE` transaction on a connection without foreign keys.

    The pragma is a no-op inside a transaction, so it goes to the driver before BEGIN, and is
    restored before the connection returns to the pool.
    """
    try:
        async with db.engine.connect() as conn:
            await conn.run_sync(dialect.set_foreign_keys, False)
            try:
                immediate = await conn.execution_options(**dialect.write_options(db.url))
                async with immediate.begin():
                    await immediate.run_sync(run)
            finally:
                await conn.run_sync(dialect.set_foreign_keys, True)
    except SQLAlchemyError as exc:
        raise store_error(exc) from exc


def _is_legacy(conn: Connection) -> bool:
    """Whether the hand-written migrations created this database (see the module docstring)."""
    inspector = inspect(conn)
    if inspector.has_table("alembic_version") or not inspector.has_table(LEGACY_TABLE):
        return False
    version = conn.execute(text("SELECT MAX(version) FROM schema_migrations")).scalar()
    if version != LEGACY_LAST_VERSION:
        raise StoreError(
            f"{LEGACY_TABLE} says version {version}: only a database at version"
            f" {LEGACY_LAST_VERSION}, the last hand-written migration, can be taken over;"
            " upgrade it with the release that created it first"
        )
    return True
