"""The SQLite writer: one `sqlite3` connection, group commit, run on the event loop's thread.

Every write queued while the loop was busy goes into the next transaction, each job inside
its own SAVEPOINT, so a failing job rolls back alone and gets its own exception while the
others commit. A job's result is handed back only after the COMMIT has returned.

Where a group runs. On the event loop's thread, between two of the loop's callbacks, as any
request handler's own work does. It used to run on a thread of its own; but a group is CPU
work under the GIL except inside SQLite's calls, the two threads then took the GIL from each
other at every statement, and that hand-over cost more than the thread saved: the same
deliveries took about a fifth less CPU without it, and deliveries no longer fell behind under
load (bench/README.md, "The SQLite writer on the event loop's thread"). What the loop must not
wait for runs on a fallback thread (`_off_loop`, the writer's own connection, one group at a
time as before), while the loop goes on and later groups wait their turn:

- another process's write lock (a `byoc` command on the same file): the writer's connection
  does not wait for it on the loop (`busy_timeout=0`); a group whose `BEGIN IMMEDIATE` finds
  it taken (`_Busy`) runs on the fallback thread, which waits up to `BUSY_TIMEOUT_MS`;
- a bulk job (`submit(..., bulk=True)`: many rows or large files, such as a purge, an
  erasure, an attachment's bytes): its whole group runs there;
- the disk's flushes. With WAL and `synchronous=NORMAL` a COMMIT appends to the WAL and
  flushes nothing. Flushes happen when the WAL is copied into the database file (a
  checkpoint) and when a writer starts the WAL over after a complete checkpoint (its new
  header). The writer's connection makes no checkpoint of its own (`wal_autocheckpoint=0`):
  `_Checkpointer`'s thread does, after commits, at most every `CHECKPOINT_EVERY_SECONDS`,
  and tells the writer what it found (`take`). After a complete checkpoint the next group,
  which starts the WAL over, runs on the fallback thread. When checkpoints cannot keep up
  (new frames keep arriving while one runs, so none completes) and the WAL's file has grown
  past `WAL_LIMIT_BYTES` (which starting over cuts it back to: `journal_size_limit`), the
  writer stops for a checkpoint of its own on the fallback thread, with no write in between,
  and the next group starts the WAL over: it stays bounded, as SQLite's automatic
  checkpoint kept it.

Otherwise a group holds the loop for its statements only (a reply's transaction: a few
hundred microseconds), and a group is at most `MAX_GROUP_COMMIT` jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
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
# The WAL file's size past which the writer stops for a checkpoint of its own (about twice
# the 1,000 pages at which SQLite's automatic checkpoint would have run); also the size its
# file is cut back to when it starts over (`journal_size_limit`).
WAL_LIMIT_BYTES = 8 * 1024 * 1024
RESTART = "restart"  # what the checkpointer tells the writer: the WAL was copied whole


def job_error(exc: Exception) -> Exception:
    return store_error(exc) if isinstance(exc, SQLAlchemyError) else exc


class _Job:
    __slots__ = ("bulk", "fn", "future")

    def __init__(self, fn: Any, future: asyncio.Future[Any], bulk: bool) -> None:
        self.fn = fn
        self.future = future
        self.bulk = bulk


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
        self._wal_path = f"{engine.url.database}-wal"
        self._closed = False
        self.transactions = 0  # committed group transactions, for tests and metrics
        self.jobs = 0
        self._checkpoint_failed = False  # logged once

    async def submit(self, fn: Callable[[Connection], T], *, bulk: bool = False) -> T:
        if self._closed:
            raise StoreError("the database is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append(_Job(fn, future, bulk))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain(), name="sqlite-group-commit")
        return await future

    async def _drain(self) -> None:
        while self._queue:
            # One turn of the loop first: the callbacks ready now queue their writes too.
            await asyncio.sleep(0)
            async with self._lock:
                batch = [job for job in self._queue[:MAX_GROUP_COMMIT] if not job.future.done()]
                del self._queue[:MAX_GROUP_COMMIT]
                if not batch:
                    continue
                try:
                    outcomes = await self._run_group(batch)
                except Exception as exc:  # e.g. no fallback thread could start: the group
                    # fails, and the queue goes on
                    log.exception("sqlite: a group could not run")
                    failure = StoreError(f"database error: {exc.__class__.__name__}: {exc}")
                    outcomes = [(False, failure) for _ in batch]
                except BaseException:
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(StoreError("interrupted"))
                    raise
            for job, (ok, value) in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue  # the caller went away; its work committed unacknowledged
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)
            try:
                self._checkpointer.wanted()
            except Exception:  # no thread could be started: the WAL waits, nothing else
                if not self._checkpoint_failed:
                    log.exception("sqlite: the checkpoint thread could not be started")
                self._checkpoint_failed = True

    async def _run_group(self, batch: list[_Job]) -> list[tuple[bool, Any]]:
        """The group on the loop, or on the fallback thread where the module docstring says."""
        jobs = [job.fn for job in batch]
        wal = self._checkpointer.take()
        if self._wal_too_big():
            await self._off_loop(self._checkpoint)
            wal = RESTART
        if wal is None and not any(job.bulk for job in batch):
            try:
                return self._run_batch(jobs, wait=False)
            except _Busy:
                pass  # another connection holds the write lock: wait for it off the loop
        return await self._off_loop(partial(self._run_batch, jobs, wait=True))

    async def _off_loop(self, fn: Callable[[], T]) -> T:
        """`fn()` on the fallback thread. The writer's connection is its until it returns: a
        cancelled caller waits for it all the same before it lets the next group run."""
        if self._fallback is None:
            self._fallback = ThreadPoolExecutor(1, thread_name_prefix="byoc-sqlite-wait")
        future = asyncio.get_running_loop().run_in_executor(self._fallback, fn)
        cancelled: asyncio.CancelledError | None = None
        while True:
            try:
                result = await asyncio.shield(future)
            except asyncio.CancelledError as exc:
                if future.done():
                    raise
                cancelled = exc  # cancelled again and again: still wait for the thread
                continue
            if cancelled is not None:
                raise cancelled
            return result

    def _wal_too_big(self) -> bool:
        """Whether the WAL grew past `WAL_LIMIT_BYTES` since it last started over (which cuts
        its file back to that size): checkpoints alongside the writes did not keep up."""
        try:
            return os.stat(self._wal_path).st_size > WAL_LIMIT_BYTES
        except OSError:  # not there yet
            return False

    def _checkpoint(self) -> None:
        """On the fallback thread, with no write under way: the whole WAL copied (as far as
        no reader still needs it), so that the next group starts it over."""
        try:
            raw = _driver(self._connection())
            raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception:
            log.exception("sqlite: the writer's checkpoint failed")

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect().execution_options(**self._options)
            raw = _driver(conn)
            raw.execute("PRAGMA wal_autocheckpoint=0")  # `_Checkpointer` copies the WAL
            raw.execute("PRAGMA busy_timeout=0")  # a lock taken elsewhere: `_Busy`
            raw.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
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
            raw = _driver(conn)
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


def _driver(conn: Connection) -> sqlite3.Connection:
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw


def _begin(conn: Connection, raw: sqlite3.Connection, *, wait: bool) -> Any:
    """The group's transaction begun (`BEGIN IMMEDIATE`, by `dialect`'s begin hook); `_Busy`
    when the write lock is taken and not to `wait` (the connection is left outside any
    transaction then)."""
    if wait:
        raw.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        return conn.begin()
    except OperationalError as exc:
        code = getattr(exc.orig, "sqlite_errorcode", None)
        busy = isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY  # extended codes too
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
    which waits for no reader or writer. What it found is the writer's to `take`: RESTART
    when it copied the WAL whole (the next group starts it over), else None. The thread starts
    at the first commit and ends at `close`."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._wanted = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._found: str | None = None
        self._found_lock = threading.Lock()
        self.checkpoints = 0

    def take(self) -> str | None:
        """What the last checkpoint found, once (on the loop's thread, before a group)."""
        if self._found is None:  # the usual case, without the lock
            return None
        with self._found_lock:
            found, self._found = self._found, None
        return found

    def _tell(self, log_frames: int, copied: int) -> None:
        with self._found_lock:
            self._found = RESTART if 0 < log_frames == copied else None

    def wanted(self) -> None:
        """Called after a commit (on the loop's thread)."""
        if self._thread is None and not self._closed.is_set():
            thread = threading.Thread(target=self._run, name="byoc-sqlite-checkpoint", daemon=True)
            thread.start()  # may raise: asked again after the next commit
            self._thread = thread
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
                # Every row fetched: a statement not run to its end would hold a read mark,
                # and the WAL could then never start over.
                [(_, log_frames, copied)] = (
                    _driver(conn).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                )
                self.checkpoints += 1
                self._tell(int(log_frames), int(copied))
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
