"""Micro-benchmark: one prebuilt statement through SQLAlchemy vs `byoc.store.compiled.execute`.

    .venv/bin/python bench/statement_cost.py [--executions 5000] [--rounds 3]
                                             [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

Runs the store's prebuilt `get_conversation` SELECT and the customer-activity UPDATE
`--executions` times each inside one transaction, first with `Connection.execute`
(SQLAlchemy Core: cache key, execution context, result) and then with
`byoc.store.compiled.execute` (compiled once, run on the driver), and prints the median per
execution over `--rounds`:

- SQLite (always): a fresh file migrated as `byoc db upgrade` does, on a plain synchronous
  connection (what the store's writer and reader threads hold): µs of wall time;
- PostgreSQL (with `--postgres-url`, on a database made for the run and dropped afterwards):
  inside `AsyncConnection.run_sync` on asyncpg, as `Database.run_read` / `run_write` run a
  transaction: µs of wall time and µs of this process's CPU time (the wall time includes the
  round trip to the server, the same on both paths; the CPU time is what the path costs the
  middleware). Then what group commit would save on PostgreSQL: the CPU per job of 32 small
  write jobs (three prebuilt statements each) as 32 concurrent transactions, as one
  transaction with a SAVEPOINT per job, and as one transaction without savepoints. And what a
  one-statement intake would save: the CPU per job of a write transaction of two statements
  (BEGIN, UPDATE, UPDATE, COMMIT: the shape of a reply's intake), of one statement, and of one
  statement in autocommit (how `Database.run_read` runs), `GROUP` jobs at once.

Runtime: a few seconds per database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import postgres_server
from sqlalchemy import Connection, create_engine
from sqlalchemy.util import await_only

from byoc.store import Database, conversations
from byoc.store.compiled import execute
from byoc.store.dialect import asyncpg_driver
from byoc.store.migrations import upgrade

SELECT_PARAMS = {"id": "thr_missing"}
UPDATE_PARAMS = {"conversation_id": "thr_missing", "at": 1, "restart": None}
SELECT_ONE = conversations._GET_CONVERSATION
UPDATE_ONE = conversations._CUSTOMER_ACTIVE
CASES: list[tuple[str, Callable[[Connection], Any]]] = [
    ("SELECT, SQLAlchemy", lambda c: c.execute(SELECT_ONE, SELECT_PARAMS).first()),
    ("SELECT, driver", lambda c: execute(c, SELECT_ONE, SELECT_PARAMS).first()),
    ("UPDATE, SQLAlchemy", lambda c: c.execute(UPDATE_ONE, UPDATE_PARAMS)),
    ("UPDATE, driver", lambda c: execute(c, UPDATE_ONE, UPDATE_PARAMS)),
]


def per_execution(run: Callable[[], Any], executions: int) -> tuple[float, float]:
    """µs of wall time and of this process's CPU time per execution."""
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(executions):
        run()
    wall = (time.perf_counter() - started) / executions * 1e6
    return wall, (time.process_time() - cpu) / executions * 1e6


def measure(conn: Connection, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    results = {}
    for name, case in CASES:
        case(conn)  # the first run compiles and prepares
        costs = [
            per_execution(lambda case=case: case(conn), args.executions) for _ in range(args.rounds)
        ]
        results[name] = (
            statistics.median(wall for wall, _ in costs),
            statistics.median(cpu for _, cpu in costs),
        )
    return results


def on_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'cost.db'}"

        async def migrate() -> None:
            db = Database(url)
            await upgrade(db)
            await db.close()

        asyncio.run(migrate())
        engine = create_engine(url)
        with engine.begin() as conn:
            results = measure(conn, args)
        engine.dispose()
    print("SQLite, on the sqlite3 connection:")
    for name, (wall, _) in results.items():
        print(f"  {name:<20} {wall:6.1f} µs per execution", flush=True)


def on_postgresql(args: argparse.Namespace) -> None:
    async def run(url: str) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
        db = Database(url)
        try:
            await upgrade(db)
            async with db.engine.connect() as conn, conn.begin():
                statements = await conn.run_sync(measure, args)
            return statements, await transaction_shapes(db, args)
        finally:
            await db.close()

    with ExitStack() as cleanup:
        results, shapes = asyncio.run(
            run(postgres_server.fresh_database(args.postgres_url, cleanup))
        )
    print("PostgreSQL, on asyncpg inside run_sync (wall includes the round trip):")
    for case, (wall, cpu) in results.items():
        print(f"  {case:<20} {wall:6.1f} µs wall, {cpu:6.1f} µs CPU per execution", flush=True)
    print(f"PostgreSQL, {GROUP} jobs (the group-commit shapes: {len(JOB)} statements each):")
    for shape, cpu in shapes.items():
        print(f"  {shape:<34} {cpu:6.1f} µs CPU per job", flush=True)


# A job of a group-commit comparison: what a small write transaction runs.
JOB = (UPDATE_ONE, UPDATE_ONE, SELECT_ONE)
GROUP = 32


def job(conn: Connection) -> None:
    for statement in JOB:
        execute(conn, statement, SELECT_PARAMS if statement is SELECT_ONE else UPDATE_PARAMS)


def grouped(conn: Connection, *, savepoints: bool) -> None:
    raw = asyncpg_driver(conn)  # its transaction begun
    for _ in range(GROUP):
        if savepoints:
            await_only(raw.execute("SAVEPOINT job"))
        job(conn)
        if savepoints:
            await_only(raw.execute("RELEASE job"))


def two_statements(conn: Connection) -> None:
    execute(conn, UPDATE_ONE, UPDATE_PARAMS)
    execute(conn, UPDATE_ONE, UPDATE_PARAMS)


def one_statement(conn: Connection) -> None:
    execute(conn, UPDATE_ONE, UPDATE_PARAMS)


async def one_by_one(db: Database) -> None:
    for _ in range(GROUP):
        await db.run_write(job)


async def transaction_shapes(db: Database, args: argparse.Namespace) -> dict[str, float]:
    """Process CPU per job. Group commit: each job its own transaction (`GROUP` at once, on the
    pool), all in one transaction with a SAVEPOINT each (what group commit on SQLite does), all
    in one transaction without savepoints (one failure would undo all). An intake, `GROUP` at
    once: a write transaction of two statements, of one, and one statement in autocommit (the
    first two differ by a statement, the last two by BEGIN and COMMIT)."""
    shapes: dict[str, Callable[[], Any]] = {
        "a transaction each, concurrently": lambda: asyncio.gather(
            *(db.run_write(job) for _ in range(GROUP))
        ),
        "a transaction each, one by one": lambda: one_by_one(db),
        "one transaction, a savepoint each": lambda: db.run_write(grouped, savepoints=True),
        "one transaction, no savepoints": lambda: db.run_write(grouped, savepoints=False),
        "intake: BEGIN, 2 statements, COMMIT": lambda: asyncio.gather(
            *(db.run_write(two_statements) for _ in range(GROUP))
        ),
        "intake: BEGIN, 1 statement, COMMIT": lambda: asyncio.gather(
            *(db.run_write(one_statement) for _ in range(GROUP))
        ),
        "intake: 1 statement, autocommit": lambda: asyncio.gather(
            *(db.run_read(one_statement) for _ in range(GROUP))
        ),
    }
    results = {}
    repeats = max(1, args.executions // (GROUP * 10))
    for name, shape in shapes.items():
        await shape()  # prepares the statements on the connections it takes
        costs = []
        for _ in range(args.rounds):
            cpu = time.process_time()
            for _ in range(repeats):
                await shape()
            costs.append((time.process_time() - cpu) / (repeats * GROUP) * 1e6)
        results[name] = statistics.median(costs)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url", help="a PostgreSQL server to measure on as well")
    args = parser.parse_args()
    on_sqlite(args)
    if args.postgres_url:
        on_postgresql(args)


if __name__ == "__main__":
    main()
