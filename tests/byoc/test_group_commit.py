"""`Database.run_write`: one transaction function per job, group commit on SQLite.

What must hold: a job's result comes back only after its transaction committed; a failing job
among several rolls back alone and gets its own exception; a commit that fails fails every job of
its group and stores nothing; a process killed before a job committed loses only that job.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from byoc.store import Database, DuplicateError, StoreError


def _create_tables(conn: Connection) -> None:
    conn.exec_driver_sql("DROP TABLE IF EXISTS gc_item")
    conn.exec_driver_sql("DROP TABLE IF EXISTS gc_parent")
    conn.exec_driver_sql("CREATE TABLE gc_parent (id INTEGER PRIMARY KEY)")
    conn.exec_driver_sql(
        "CREATE TABLE gc_item (id INTEGER PRIMARY KEY, note TEXT NOT NULL,"
        " parent_id INTEGER REFERENCES gc_parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )


def _drop_tables(conn: Connection) -> None:
    conn.exec_driver_sql("DROP TABLE gc_item")
    conn.exec_driver_sql("DROP TABLE gc_parent")


async def _database(url: str) -> Database:
    db = Database(url)
    await db.run_write(_create_tables)
    return db


def _insert(*ids: int) -> Callable[[Connection], list[int]]:
    def job(conn: Connection) -> list[int]:
        for item_id in ids:
            conn.execute(text("INSERT INTO gc_item (id, note) VALUES (:id, 'x')"), {"id": item_id})
        return list(ids)

    return job


def _stored_ids(conn: Connection) -> list[int]:
    return [row[0] for row in conn.exec_driver_sql("SELECT id FROM gc_item ORDER BY id")]


async def _stored(db: Database) -> list[int]:
    return await db.run_read(_stored_ids)


def _committed_on_disk(path: Path) -> list[int]:
    """What another process would see: a separate plain sqlite3 connection."""
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM gc_item ORDER BY id")]
    finally:
        conn.close()


async def test_a_failing_job_rolls_back_alone_and_gets_its_own_error(tmp_path: Path) -> None:
    db = await _database(f"sqlite:///{tmp_path / 'gc.db'}")
    try:
        await db.run_write(_insert(1))
        jobs = [
            db.run_write(_insert(10)),
            db.run_write(_insert(20, 1)),  # 20 first, then a duplicate
            db.run_write(_insert(30)),
        ]
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert results[0] == [10]
        assert isinstance(results[1], DuplicateError)
        assert results[2] == [30]
        assert await _stored(db) == [1, 10, 30]  # nothing of the failed job, not even 20
    finally:
        await db.close()


async def test_a_job_alone_that_raises_rolls_back_and_raises(tmp_path: Path) -> None:
    db = await _database(f"sqlite:///{tmp_path / 'gc.db'}")
    try:

        def refuses(conn: Connection) -> None:
            _insert(5)(conn)
            raise LookupError("no such thread")  # a domain error, after a write

        with pytest.raises(LookupError, match="no such thread"):
            await db.run_write(refuses)
        assert await db.run_write(_insert(6)) == [6]
        assert await _stored(db) == [6]
    finally:
        await db.close()


async def test_a_burst_is_committed_in_few_transactions(tmp_path: Path) -> None:
    db = await _database(f"sqlite:///{tmp_path / 'gc.db'}")
    try:
        assert db.writer is not None
        jobs, transactions = db.writer.jobs, db.writer.transactions  # creating the tables
        results = await asyncio.gather(*(db.run_write(_insert(i)) for i in range(200)))
        assert results == [[i] for i in range(200)]
        assert db.writer.jobs - jobs == 200
        assert db.writer.transactions - transactions < 20  # grouped, not one per job
        assert _committed_on_disk(tmp_path / "gc.db") == list(range(200))
    finally:
        await db.close()


async def test_results_come_back_only_after_the_commit(tmp_path: Path) -> None:
    path = tmp_path / "gc.db"
    db = await _database(f"sqlite:///{path}")
    seen_before_commit: list[list[int]] = []
    try:

        def peek(conn: Connection) -> None:
            # Inside the open transaction: another connection must not see the group yet.
            seen_before_commit.append(_committed_on_disk(path))

        first, _, last = await asyncio.gather(
            db.run_write(_insert(1)),
            db.run_write(peek),
            db.run_write(_insert(2)),
        )
        assert seen_before_commit == [[]]
        # Each answer arrived after its data was durable for everybody else.
        assert first == [1]
        assert last == [2]
        assert _committed_on_disk(path) == [1, 2]
    finally:
        await db.close()


async def test_a_failed_commit_fails_every_job_of_its_group(tmp_path: Path) -> None:
    db = await _database(f"sqlite:///{tmp_path / 'gc.db'}")
    try:

        def dangling(conn: Connection) -> str:
            # A deferred foreign key is checked at COMMIT: the whole group's COMMIT fails.
            conn.exec_driver_sql("INSERT INTO gc_item (id, note, parent_id) VALUES (99, 'x', 7)")
            return "unreachable"

        results = await asyncio.gather(
            db.run_write(_insert(1)),
            db.run_write(dangling),
            db.run_write(_insert(2)),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreError) for r in results), results
        assert await _stored(db) == []
        # The writer recovers: the next job commits.
        assert await db.run_write(_insert(3)) == [3]
        assert await _stored(db) == [3]
    finally:
        await db.close()


async def test_reads_see_every_commit_before_them_and_outlive_a_failed_read(
    tmp_path: Path,
) -> None:
    """The reader threads keep their connections between reads: each read is still a
    transaction of its own (no snapshot kept from the one before), and a read that fails
    leaves the next one working."""
    db = await _database(f"sqlite:///{tmp_path / 'gc.db'}")
    try:
        for item_id in range(1, 6):  # more reads than reader threads
            await db.run_write(_insert(item_id))
            assert await _stored(db) == list(range(1, item_id + 1))
        with pytest.raises(StoreError):
            await db.run_read(lambda conn: conn.exec_driver_sql("SELECT * FROM no_such_table"))
        assert await asyncio.gather(*(_stored(db) for _ in range(4))) == [[1, 2, 3, 4, 5]] * 4
    finally:
        await db.close()


async def test_close_stops_the_store_threads(tmp_path: Path) -> None:
    db = await _database(f"sqlite:///{tmp_path / 'gc.db'}")
    await db.run_write(_insert(1))
    await db.run_read(lambda conn: conn.exec_driver_sql("SELECT 1").scalar())
    names = {t.name.rpartition("_")[0] or t.name for t in threading.enumerate()}
    assert {"byoc-sqlite-checkpoint", "byoc-sqlite-read"} <= names
    await db.close()
    assert not any(t.name.startswith("byoc-sqlite") for t in threading.enumerate())
    with pytest.raises(StoreError):
        await db.run_write(_insert(2))


async def test_a_group_waits_for_another_connections_write_lock_off_the_loop(
    tmp_path: Path,
) -> None:
    """A `byoc` command writing to the same file holds SQLite's write lock: the group that
    finds it taken waits for it on a thread, and the event loop goes on meanwhile."""
    path = tmp_path / "gc.db"
    db = await _database(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    try:
        assert db.writer is not None
        other.execute("BEGIN IMMEDIATE")  # the other process's write, under way
        other.execute("INSERT INTO gc_parent (id) VALUES (1)")
        writing = asyncio.create_task(db.run_write(_insert(1)))
        loop = asyncio.get_running_loop()
        ticks = []
        for _ in range(40):  # 0.8 s of a loop that must keep turning
            ticks.append(loop.time())
            await asyncio.sleep(0.02)
        assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.5
        assert not writing.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(writing, 10) == [1]
        assert await db.run_write(_insert(2)) == [2]
        assert _committed_on_disk(path) == [1, 2]
    finally:
        other.close()
        await db.close()


async def test_the_wal_is_copied_into_the_database_file_by_the_checkpoint_thread(
    tmp_path: Path,
) -> None:
    """The writer's connection makes no checkpoint of its own; the checkpoint thread copies
    the WAL into the database file after commits."""
    path = tmp_path / "gc.db"
    db = await _database(f"sqlite:///{path}")
    try:
        await asyncio.gather(*(db.run_write(_insert(i)) for i in range(500)))

        def in_the_file() -> int:
            # `immutable`: the database file alone, without the WAL.
            conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
            try:
                return int(conn.execute("SELECT count(*) FROM gc_item").fetchone()[0])
            except sqlite3.OperationalError:  # the table is not in the file yet
                return 0
            finally:
                conn.close()

        async with asyncio.timeout(10):
            while in_the_file() < 500:
                await asyncio.sleep(0.05)
    finally:
        await db.close()


async def test_the_wal_stays_bounded_under_writes_that_never_pause(tmp_path: Path) -> None:
    """Writes back to back: a checkpoint alongside them never copies the whole WAL, so the
    writer stops for one of its own once the WAL's file is past `WAL_LIMIT_BYTES`."""
    path = tmp_path / "gc.db"
    db = await _database(f"sqlite:///{path}")
    wal = Path(f"{path}-wal")
    note = "x" * 8_000  # a row of about two pages
    written = largest = 0
    try:
        assert db.writer is not None
        for start in range(0, 6_000, 100):

            def rows(conn: Connection, start: int = start) -> None:
                for item_id in range(start, start + 100):
                    conn.execute(
                        text("INSERT INTO gc_item (id, note) VALUES (:id, :note)"),
                        {"id": item_id, "note": note},
                    )

            await db.run_write(rows)
            written += 100 * len(note)
            largest = max(largest, wal.stat().st_size)
        # 48 MB written; the WAL's file went past WAL_LIMIT_BYTES (8 MiB) by a group at most
        # (0.8 MB here), not by everything.
        assert written >= 48_000_000
        assert largest < 16 * 1024 * 1024, largest
        assert _committed_on_disk(path)[-1] == 5_999
    finally:
        await db.close()


async def test_a_bulk_job_runs_off_the_loop(tmp_path: Path) -> None:
    db = await _database(f"sqlite:///{tmp_path / 'gc.db'}")
    try:

        def slow(conn: Connection) -> list[int]:
            _insert(1)(conn)
            time.sleep(1.0)  # a purge reading cold pages, say
            return [1]

        bulk = asyncio.create_task(db.run_bulk_write(slow))
        loop = asyncio.get_running_loop()
        ticks = []
        for _ in range(40):
            ticks.append(loop.time())
            await asyncio.sleep(0.02)
        assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.5
        assert await bulk == [1]
        assert await db.run_write(_insert(2)) == [2]
        assert await _stored(db) == [1, 2]
    finally:
        await db.close()


async def test_a_commit_is_acknowledged_even_if_no_checkpoint_thread_can_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'gc.db'}")
    try:

        def refuse(self: threading.Thread) -> None:
            raise RuntimeError("can't start new thread")

        monkeypatch.setattr(threading.Thread, "start", refuse)
        await asyncio.wait_for(db.run_write(_create_tables), 10)
        assert await asyncio.wait_for(db.run_write(_insert(1)), 10) == [1]
        monkeypatch.undo()
        assert await _stored(db) == [1]
    finally:
        await db.close()


async def test_a_group_that_cannot_start_its_thread_fails_and_the_queue_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = await _database(f"sqlite:///{tmp_path / 'gc.db'}")

    def no_thread(self: ThreadPoolExecutor, *args: object, **kwargs: object) -> None:
        raise RuntimeError("can't start new thread")

    try:
        monkeypatch.setattr(ThreadPoolExecutor, "submit", no_thread)
        # One bulk job takes its whole group off the loop: the group fails, no caller hangs.
        results = await asyncio.wait_for(
            asyncio.gather(
                db.run_bulk_write(_insert(1)),
                *(db.run_write(_insert(i)) for i in range(10, 20)),
                return_exceptions=True,
            ),
            10,
        )
        assert all(isinstance(r, StoreError) for r in results), results
        # The drain lives on: the next write is taken (the thread may start again now: the
        # group that follows a complete checkpoint runs on it).
        monkeypatch.undo()
        assert await asyncio.wait_for(db.run_write(_insert(2)), 10) == [2]
        assert await _stored(db) == [2]
    finally:
        await db.close()


async def test_a_group_on_the_fallback_thread_keeps_the_connection_through_cancellations(
    tmp_path: Path,
) -> None:
    db = await _database(f"sqlite:///{tmp_path / 'gc.db'}")
    try:
        assert db.writer is not None
        started = threading.Event()

        def slow(conn: Connection) -> list[int]:
            _insert(1)(conn)
            started.set()
            time.sleep(0.3)
            return [1]

        bulk = asyncio.create_task(db.run_bulk_write(slow))
        await asyncio.to_thread(started.wait, 5)
        drainer = db.writer._drainer
        assert drainer is not None
        for _ in range(3):  # cancelled, and cancelled again while it waits for the thread
            drainer.cancel()
            await asyncio.sleep(0.02)
        with pytest.raises(StoreError, match="interrupted"):
            await bulk
        # The next group ran only once the thread was done with the connection.
        assert await asyncio.wait_for(db.run_write(_insert(2)), 10) == [2]
        assert await _stored(db) == [1, 2]  # the interrupted group had committed
    finally:
        await db.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    from sqlalchemy import text
    from byoc.store import Database

    async def main(url):
        db = Database(url)
        await db.run_write(lambda conn: conn.exec_driver_sql(
            "CREATE TABLE gc_item (id INTEGER PRIMARY KEY, note TEXT NOT NULL, parent_id INT)"
        ))

        def insert(item_id, hang=False):
            def job(conn):
                sql = text("INSERT INTO gc_item (id, note) VALUES (:i, 'x')")
                conn.execute(sql, {"i": item_id})
                if hang:
                    print("uncommitted", flush=True)
                    time.sleep(60)  # killed here: inserted, not committed, not acknowledged
                return item_id
            return job

        for item_id in (1, 2):
            await db.run_write(insert(item_id))
            print("acknowledged", item_id, flush=True)
        await db.run_write(insert(3, hang=True))

    asyncio.run(main(sys.argv[1]))
    """
)


def test_a_kill_before_commit_loses_only_unacknowledged_work(tmp_path: Path) -> None:
    path = tmp_path / "gc.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, f"sqlite:///{path}"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert child.stdout is not None
        lines = [child.stdout.readline().strip() for _ in range(3)]
        assert lines == ["acknowledged 1", "acknowledged 2", "uncommitted"]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert _committed_on_disk(path) == [1, 2]


@pytest.mark.postgres
async def test_run_write_on_postgres_rolls_back_a_failing_job(postgres_url: str) -> None:
    db = await _database(postgres_url)
    try:
        assert db.writer is None
        assert await db.run_write(_insert(1)) == [1]
        with pytest.raises(DuplicateError):
            await db.run_write(_insert(2, 1))
        results = await asyncio.gather(*(db.run_write(_insert(i)) for i in range(10, 20)))
        assert len(results) == 10
        assert await _stored(db) == [1, *range(10, 20)]
    finally:
        await db.run_write(_drop_tables)
        await db.close()
