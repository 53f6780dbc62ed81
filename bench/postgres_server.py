"""PostgreSQL for the benchmarks: a fresh database per stack, VACUUM, and readings of the
server's work (CPU of the backends and of the shared writer processes, WAL bytes, transaction
ids) so that a benchmark can report them per request.

`--database-url postgresql://postgres@127.0.0.1:5432/test` names the server and a database on
it to connect to: each stack gets its own database created next to it (`test_bench_<hex>`),
dropped when the stack ends (kept with `--keep`). A database left over from an earlier run
would otherwise carry its conversations (their timers and the agent-ended poll keep the server
busy) and its outbox rows into the next run.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from processes import process_cpu_seconds

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# The server-wide processes that write on behalf of every backend.
SHARED_PROCESSES = ("walwriter", "checkpointer", "background writer")


def make_url(url: str) -> URL:
    """SQLAlchemy's parse of `url`, imported when first needed: the client processes of the
    benchmarks import this module (through stack.py) and never use it, and SQLAlchemy is most
    of their start-up."""
    from sqlalchemy.engine import make_url

    return make_url(url)


def is_postgres(url: str | None) -> bool:
    return url is not None and url.startswith("postgresql")


def driver_url(url: str) -> str:
    """The URL as asyncpg takes it (no `+driver` in the scheme)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def database_name(url: str) -> str:
    return str(make_url(url).database)


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(driver_url(url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def execute(url: str, sql: str) -> None:
    asyncio.run(_execute(url, sql))


def fresh_database(url: str, cleanup: ExitStack, *, keep: bool = False) -> str:
    """A new, empty database on `url`'s server; its URL (same scheme as `url`)."""
    name = f"{database_name(url)}_bench_{secrets.token_hex(4)}"
    execute(url, f'CREATE DATABASE "{name}"')
    if not keep:
        cleanup.callback(execute, url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def vacuum(url: str) -> None:
    """`VACUUM (ANALYZE)` of the whole database: no dead rows from set-up, fresh planner
    statistics."""
    execute(url, "VACUUM (ANALYZE)")


@dataclass
class Reading:
    """One look at the server: CPU seconds per process, the WAL position, the next xid."""

    backends: dict[int, float] = field(default_factory=dict)
    shared: dict[int, float] = field(default_factory=dict)
    wal_bytes: int = 0
    next_xid: int = 0


async def _reading(url: str) -> Reading:
    conn = await asyncpg.connect(driver_url(url))
    try:
        rows = await conn.fetch(
            "SELECT pid, backend_type, datname = current_database() AS ours"
            " FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        )
        position = await conn.fetchrow(
            "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint AS wal,"
            " pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xid"
        )
    finally:
        await conn.close()
    reading = Reading(wal_bytes=int(position["wal"]), next_xid=int(position["xid"]))
    for row in rows:
        if row["ours"]:
            reading.backends[row["pid"]] = process_cpu_seconds(row["pid"])
        elif row["backend_type"] in SHARED_PROCESSES:
            reading.shared[row["pid"]] = process_cpu_seconds(row["pid"])
    return reading


def reading(url: str) -> Reading:
    return asyncio.run(_reading(url))


def _cpu_delta(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    # A process that started in between counts from 0; one that ended in between is lost
    # (the middleware's connection pool keeps its backends for the whole run).
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


def work_between(before: Reading, after: Reading) -> dict[str, Any]:
    """CPU of the database's backends and of the shared writers, WAL bytes and write
    transactions (xids assigned, server-wide) from one reading to the next."""
    return {
        "pg_backend_cpu_s": _cpu_delta(before.backends, after.backends),
        "pg_shared_cpu_s": _cpu_delta(before.shared, after.shared),
        "wal_bytes": after.wal_bytes - before.wal_bytes,
        "write_transactions": after.next_xid - before.next_xid,
    }
