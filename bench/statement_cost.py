"""Micro-benchmark: one prebuilt statement through SQLAlchemy vs `byoc.store.compiled.execute`.

    .venv/bin/python bench/statement_cost.py [--executions 5000] [--rounds 3]

On a fresh SQLite file migrated as `byoc db upgrade` does, inside one transaction of a plain
synchronous connection (what the store's writer and reader threads hold), runs the store's
prebuilt `get_conversation` SELECT and the customer-activity UPDATE `--executions` times each,
first with `Connection.execute` (SQLAlchemy Core: cache key, execution context, result) and
then with `byoc.store.compiled.execute` (compiled once, run on the `sqlite3` connection), and
prints the median µs per execution over `--rounds`. Runtime: a few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine

from byoc.store import Database, conversations
from byoc.store.compiled import execute
from byoc.store.migrations import upgrade


def per_execution(run: Callable[[], Any], executions: int) -> float:
    started = time.perf_counter()
    for _ in range(executions):
        run()
    return (time.perf_counter() - started) / executions * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'cost.db'}"

        async def migrate() -> None:
            db = Database(url)
            await upgrade(db)
            await db.close()

        asyncio.run(migrate())
        engine = create_engine(url)
        select_params = {"id": "thr_missing"}
        update_params = {"conversation_id": "thr_missing", "at": 1}
        select_one = conversations._GET_CONVERSATION
        update_one = conversations._CUSTOMER_ACTIVE
        cases: list[tuple[str, Callable[[Connection], Any]]] = [
            ("SELECT, SQLAlchemy", lambda c: c.execute(select_one, select_params).first()),
            ("SELECT, driver", lambda c: execute(c, select_one, select_params).first()),
            ("UPDATE, SQLAlchemy", lambda c: c.execute(update_one, update_params)),
            ("UPDATE, driver", lambda c: execute(c, update_one, update_params)),
        ]
        with engine.begin() as conn:
            for name, case in cases:
                costs = [
                    per_execution(lambda case=case: case(conn), args.executions)
                    for _ in range(args.rounds)
                ]
                print(f"{name:<20} {statistics.median(costs):6.1f} µs per execution", flush=True)
        engine.dispose()


if __name__ == "__main__":
    main()
