"""`byoc db`: the database schema."""

from __future__ import annotations

import argparse
import asyncio

from byoc.cli._common import SubParsers, add
from byoc.settings import Settings
from byoc.store import Database
from byoc.store.migrations import current_version, latest_version, upgrade


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    async def work() -> int:
        db = Database(settings.database_url)
        try:
            before = await current_version(db)
            applied = await upgrade(db)
        finally:
            await db.close()
        for migration in applied:
            print(f"applied migration {migration.version}: {migration.name}")
        print(f"schema at version {latest_version()} (was {before})")
        return 0

    return asyncio.run(work())


def cmd_db_status(settings: Settings, _args: argparse.Namespace) -> int:
    async def work() -> int:
        db = Database(settings.database_url)
        try:
            version = await current_version(db)
        finally:
            await db.close()
        print(f"schema version {version}, latest {latest_version()}")
        return 0 if version == latest_version() else 1

    return asyncio.run(work())


def register(sub: SubParsers) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True
    )
    add(db, "upgrade", cmd_db_upgrade, "apply pending migrations")
    add(db, "status", cmd_db_status, "show the schema version (exit 1 when behind)")
