"""`byoc db`: the database schema (Alembic revisions, see `byoc.store.migrations`)."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from byoc.cli._common import SubParsers, add

# The store loads when a command runs: refused arguments stay cheap (start-up time).
if TYPE_CHECKING:
    from byoc.settings import Settings
    from byoc.store.migrations import Step


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    from byoc.store import Database
    from byoc.store.migrations import current_version, latest_version, upgrade

    def report(step: Step) -> None:
        if step.stamped:
            print(f"revision {step.id} already in place, stamped: {step.doc}", flush=True)
        else:
            print(f"applying revision {step.id}: {step.doc}", flush=True)

    async def work() -> int:
        db = Database(settings.database_url)
        try:
            before = await current_version(db)
            await upgrade(db, progress=report)
        finally:
            await db.close()
        print(f"schema at revision {latest_version()} (was {before or 'empty'})")
        return 0

    return asyncio.run(work())


async def _schema_revision(settings: Settings) -> str | None:
    from byoc.store import Database
    from byoc.store.migrations import current_version

    db = Database(settings.database_url)
    try:
        return await current_version(db)
    finally:
        await db.close()


def cmd_db_status(settings: Settings, _args: argparse.Namespace) -> int:
    from byoc.store.migrations import latest_version

    version = asyncio.run(_schema_revision(settings))
    print(f"schema revision {version or 'none'}, latest {latest_version()}")
    return 0 if version == latest_version() else 1


def cmd_db_current(settings: Settings, _args: argparse.Namespace) -> int:
    print(asyncio.run(_schema_revision(settings)) or "none")
    return 0


def register(sub: SubParsers) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    add(db, "upgrade", cmd_db_upgrade, "apply pending migrations (Alembic revisions)")
    add(db, "status", cmd_db_status, "show the schema revision (exit 1 when behind)")
    add(db, "current", cmd_db_current, "print the schema revision (none when empty)")
