"""Alembic's entry point, run for every Alembic command.

`byoc.store.alembic_runner` passes the connection it has already locked and opened a transaction
on (`config.attributes["connection"]`): the revisions then run inside that transaction. Run
from the `alembic` command line (drafting a revision with `--autogenerate`, `alembic check`),
there is no such connection, and this opens one on `BYOC_DATABASE_URL`. Upgrade with
`byoc db upgrade`, not `alembic upgrade`: only the former takes the lock replicas rely on and
takes over a database of the hand-written migrations.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from alembic import context
from sqlalchemy import Connection

from byoc.store import dialect
from byoc.store.schema import metadata


def run(connection: Connection) -> None:
    on_version_apply: Callable[..., None] | None = context.config.attributes.get("on_version_apply")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_server_default=True,
        render_as_batch=dialect.rebuilds_tables_to_alter(str(connection.engine.url)),
        transactional_ddl=True,
        on_version_apply=on_version_apply,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_on_url(url: str) -> None:
    from byoc.store.db import Database

    db = Database(url)
    try:
        await db.run_write(run)
    finally:
        await db.close()


def main() -> None:
    connection: Any = context.config.attributes.get("connection")
    if connection is not None:
        run(connection)
    elif context.is_offline_mode():
        raise SystemExit("offline (--sql) mode is not supported: run against a database")
    else:
        asyncio.run(run_on_url(os.environ.get("BYOC_DATABASE_URL", "sqlite:///./var/byoc.db")))


main()
