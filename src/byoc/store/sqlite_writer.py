"""The SQLite writer: one `sqlite3` connection, group commit, run on the event loop's thread.

Every write queued while the loop was busy goes into the next transaction, each job inside
its own SAVEPOINT, so a failing job rolls back alone and gets its own exception while the
others commit. A job's result is handed back only after the COMMIT has returned.

Where it runs. A group runs on the event loop's thread, between two of the loop's callbacks,
as any request handler's own work does. It used to run on a thread of its own; but a group is
CPU work under the GIL except inside SQLite's calls, the two threads then took the GIL from
each other at every statement, and that hand-over cost more than the thread saved: the same
deliveries took about a fifth less CPU without it, and deliveries no longer fell behind under
load (bench/README.md, "The SQLite writer on the event loop's thread"). What the loop must not
wait for stays off it:

- the disk's flushes: with WAL and `synchronous=NORMAL` a COMMIT appends to the WAL and
  flushes nothing; flushes happen only when the WAL is copied into the database file (a
  checkpoint), and the writer's connection makes none (`wal_autocheckpoint=0`): a thread of
  its own does, after commits, at most every `CHECKPOINT_EVERY_SECONDS` (`_Checkpointer`);
- another process's write lock (a `byoc` command on the same file): the writer's connection
  does not wait for it (`busy_timeout=0`); a group whose `BEGIN IMMEDIATE` finds the lock
  taken runs on a fallback thread instead, which waits up to `BUSY_TIMEOUT_MS` for it.

So a group holds the loop for its statements only: a few hundred microseconds per job on the
hot path, and at most `MAX_GROUP_COMMIT` jobs per group. A job must be such a function: it
must not block on anything but the database (see `Database.run_write`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from byoc.store.errors import StoreError, store_error

log = logging.getLogger(__name__)

T = TypeVar("T")

# A burst larger than this is split over several transactions, so one commit's latency and the
# size of what one failure could take down stay bounded.
MAX_GROUP_COMMIT = 256
# How long the fallback thread waits for another connection's write lock.
BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_EVERY_SECONDS = 0.25


def job_error(exc: Exception) -> Exception:
    return store_error(exc) if isinstance(exc, SQLAlchemyError) else exc


class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Any, future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future


class _Busy(Exception):
    """`BEGIN IMMEDIATE` found the write lock taken: nothing of the group ran."""


class SqliteWriter:
    """One `sqlite3` connection, group commit on the loop's thread (see the module docstring)."""

    def __init__(self, engine: Engine, lock: asyncio.Lock, options: dict[str, Any]) -> None:
        self._engine = engine
        self._lock = lock
        self._options = options
        self._queue: list[_Job] = []
        self._drainer: asyncio.Task[None] | None = None
        self._fallback: ThreadPoolExecutor | None = None  # for a group that must wait for a lock
        self._conn: Connection | None = None
        self._checkpointer = _Checkpointer(engine)
        self._closed = False
        self.transactions = 0  # committed group transactions, for tests and metrics
        self.jobs = 0
        self.waited = 0  # groups that found another connection's write lock

    async def submit(self, fn: Callable[[Connection], T]) -> T:
        if self._closed:
            raise StoreError("the database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append(_Job(fn, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain(), name="sqlite-group-commit")
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            # One turn of the loop first: the callbacks ready now queue their writes too.
            await asyncio.sleep(0)
            async with self._lock:
                # Taken under the lock: whatever queued while a `write()` block held it joins in.
                batch = [job for job in self._queue[:MAX_GROUP_COMMIT] if not job.future.done()]
                del self._queue[:MAX_GROUP_COMMIT]
                if not batch:
                    continue
                jobs = [job.fn for job in batch]
                try:
                    try:
                        outcomes = self._run_batch(jobs, wait=False)
                    except _Busy:
                        self.waited += 1
                        if self._fallback is None:
                            self._fallback = ThreadPoolExecutor(
                                1, thread_name_prefix="byoc-sqlite-wait"
                            )
                        run = partial(self._run_batch, jobs, wait=True)
                        outcomes = await loop.run_in_executor(self._fallback, run)
                except BaseException as exc:
                    failure = exc if isinstance(exc, Exception) else StoreError("interrupted")
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(failure)
                    raise
            self._checkpointer.wanted()
            for job, (ok, value) in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue  # the caller went away; its work committed unacknowledged
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect().execution_options(**self._options)
            raw = conn.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)
            raw.execute("PRAGMA wal_autocheckpoint=0")  # `_Checkpointer` copies the WAL
            raw.execute("PRAGMA busy_timeout=0")  # a lock taken elsewhere: `_Busy`
            self._conn = conn
        return self._conn

    def _run_batch(self, jobs: list[Any], *, wait: bool) -> list[tuple[bool, Any]]:
        """One transaction, one SAVEPOINT per job when there are several. Raises `_Busy`,
        with nothing run, when not to `wait` for a write lock another connection holds.

        A job that raises is rolled back (its savepoint, or the transaction when it is alone)
        and gets its exception; a failure of the transaction itself (BEGIN, a savepoint, the
        COMMIT) fails every job of the group, and nothing of the group is stored.
        """
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn = self._connection()
            raw = conn.connection.driver_connection
            assert isinstance(raw, sqlite3.Connection)
            transaction = _begin(conn, raw, wait=wait)
            if len(jobs) == 1:
                try:
                    result = jobs[0](conn)
                except Exception as exc:
                    transaction.rollback()
                    return [(False, job_error(exc))]
                outcomes.append((True, result))
            else:
                # Savepoints straight on the driver: through SQLAlchemy each one is a
                # compiled statement, which cost as much as a job's own queries.
                for fn in jobs:
                    raw.execute("SAVEPOINT job")
                    try:
                        result = fn(conn)
                    except Exception as exc:
                        raw.execute("ROLLBACK TO job")
                        raw.execute("RELEASE job")
                        outcomes.append((False, job_error(exc)))
                    else:
                        raw.execute("RELEASE job")
                        outcomes.append((True, result))
            transaction.commit()
        except _Busy:
            raise
        except Exception as exc:
            # Whatever state the failure left the connection in (a COMMIT that failed leaves
            # the transaction open), start the next group on a fresh one.
            self._discard_connection()
            failure = job_error(exc)
            if not isinstance(failure, StoreError):
                failure = StoreError(f"database error: {exc.__class__.__name__}: {exc}")
            return [(False, failure) for _ in jobs]
        self.transactions += 1
        self.jobs += len(jobs)
        return outcomes

    def _discard_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
            self._conn = None

    async def close(self) -> None:
        self._closed = True
        if self._drainer is not None and not self._drainer.done():
            with contextlib.suppress(Exception):  # each job's caller got the error already
                await self._drainer
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._fallback is not None:
            self._fallback.shutdown(wait=True)
            self._fallback = None
        await asyncio.to_thread(self._checkpointer.close)


def _begin(conn: Connection, raw: sqlite3.Connection, *, wait: bool) -> Any:
    """The group's transaction begun (`BEGIN IMMEDIATE`, by `dialect`'s begin hook); `_Busy`
    when the write lock is taken and not to `wait` (the connection is left outside any
    transaction then)."""
    if wait:
        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        return conn.begin()
    except OperationalError as exc:
        busy = getattr(exc.orig, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
        if busy and not wait:
            with contextlib.suppress(Exception):
                conn.rollback()  # SQLAlchemy's side: no transaction began
            raise _Busy from exc
        raise
    finally:
        if wait:
            raw.execute("PRAGMA busy_timeout=0")


class _Checkpointer:
    """Copies the WAL into the database file on a thread of its own, after commits
    (`wanted`), at most every `CHECKPOINT_EVERY_SECONDS`: `PRAGMA wal_checkpoint(PASSIVE)`,
    which waits for no reader or writer, as SQLite's own automatic checkpoint does. The thread
    starts at the first commit and ends at `close`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._wanted = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0

    def wanted(self) -> None:
        """Called after a commit (on the loop's thread)."""
        if self._thread is None and not self._closed.is_set():
            self._thread = threading.Thread(
                target=self._run, name="byoc-sqlite-checkpoint", daemon=True
            )
            self._thread.start()
        self._wanted.set()

    def _run(self) -> None:
        conn: Connection | None = None
        while True:
            self._wanted.wait()
            if self._closed.is_set():
                break
            self._wanted.clear()
            try:
                if conn is None:
                    conn = self._engine.connect()
                raw = conn.connection.driver_connection
                assert isinstance(raw, sqlite3.Connection)
                raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                self.checkpoints += 1
            except Exception:
                log.exception("sqlite: checkpoint failed; trying again after the next commit")
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.invalidate()
                    conn = None
            if self._closed.wait(CHECKPOINT_EVERY_SECONDS):  # at most this often
                break
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        self._closed.set()
        self._wanted.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
