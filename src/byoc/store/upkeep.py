"""Upkeep of PostgreSQL's busiest tables: their dead row versions reclaimed every few seconds.

A delivered outbox row leaves dead versions behind (its claim's UPDATE, its DELETE), and every
message rewrites its conversation's row (sequence number, deadlines). At hundreds of messages
a second that is tens of thousands of dead versions within a minute, autovacuum's default
interval between two visits, and the claims and lookups that then step over them slow the
whole store down (bench/README.md, "Dead row versions on PostgreSQL": a request's p99 went from
tens of milliseconds to seconds within a minute of load). So every instance vacuums these
tables itself, every `BYOC_STORE_VACUUM_INTERVAL_SECONDS` (0: never, autovacuum alone), each
table skipped while another instance vacuums it. Nothing on SQLite, which reuses the space of
deleted rows by itself.

The VACUUM takes one of the pool's connections for its few milliseconds, outside the limit on
ordinary transactions (`dialect.admitted_transactions`). The interval is measured on the
injected clock; a failed VACUUM is logged and tried again at the next interval.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Connection

from byoc.clock import Clock, Periodic
from byoc.store import dialect
from byoc.store.db import Database
from byoc.store.errors import StoreError

# The tables rewritten by every message: the outbox (a row per delivery) and the conversations.
BUSIEST_TABLES = ("outbox", "conversations")
# A VACUUM of these small tables takes milliseconds; one still running after this is cut off.
VACUUM_TIMEOUT_SECONDS = 30.0


class StoreUpkeep(Periodic):
    what = "store upkeep (vacuum)"

    def __init__(self, db: Database, clock: Clock, *, interval_seconds: float) -> None:
        super().__init__(clock, interval_seconds, expected=StoreError)
        self._db = db
        self._sql = dialect.vacuum_sql(db.url, BUSIEST_TABLES)
        self.vacuums = 0  # completed, for tests

    @property
    def active(self) -> bool:
        """Whether `run()` does anything: on PostgreSQL, with an interval."""
        return self._sql is not None and self._interval > 0

    async def vacuum(self) -> None:
        """One VACUUM of the busiest tables (on PostgreSQL; nothing on SQLite)."""
        if self._sql is None:
            return
        try:
            async with asyncio.timeout(VACUUM_TIMEOUT_SECONDS):
                # VACUUM cannot run inside a transaction: PostgreSQL's reads run in autocommit
                # (`dialect.read_options`), and the reserved handle skips the queue of requests.
                await self._db.reserved().run_read(_execute, self._sql)
        except TimeoutError as exc:
            raise StoreError(f"the vacuum took longer than {VACUUM_TIMEOUT_SECONDS} s") from exc
        self.vacuums += 1

    async def chore(self) -> None:
        await self.vacuum()

    async def run(self) -> None:
        if self.active:
            await super().run()


def _execute(conn: Connection, sql: str) -> None:
    conn.exec_driver_sql(sql)
