"""The database handle: the engine, and the one way to run a transaction.

`run_write(fn, *args)` / `run_read(fn, *args)` take a *synchronous* transaction function
`fn(conn, *args)` on a SQLAlchemy `Connection` (the named queries of `byoc.store`, or a
caller's function that runs several of them) and run all of it in one go. On PostgreSQL the
function runs through `AsyncConnection.run_sync` (greenlet over asyncpg), so the same code
serves both databases; the prebuilt statements of the hot path run on asyncpg directly
(`byoc.store.compiled`), reads run in autocommit and pooled connections are pinged only after
being idle (`byoc.store.dialect`): a reply's transaction is one round trip per statement plus
BEGIN and COMMIT. On an SQLite file it runs on a dedicated writer thread that owns a plain
`sqlite3` connection: one thread hop per transaction instead of one per statement, and **group
commit**: every write queued while the previous commit was running goes into the next
transaction, each job inside its own SAVEPOINT, so a failing job rolls back alone and gets its
own exception while the others commit. A job's result is handed back only after the COMMIT has
returned. Reads run on a small pool of reader threads (WAL: readers never block).

SQLite allows one writer at a time. Its write transactions therefore start with `BEGIN
IMMEDIATE` (so two writers never deadlock on a lock upgrade) and, inside one process, queue on
an asyncio lock instead of spinning on SQLite's busy handler. Where the databases differ is
decided in `byoc.store.dialect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from byoc.store import dialect
from byoc.store.errors import StoreError, store_error

T = TypeVar("T")
P = ParamSpec("P")
TransactionFn = Callable[[Connection], T]

# A burst larger than this is split over several transactions, so one commit's latency and the
# size of what one failure could take down stay bounded.
MAX_GROUP_COMMIT = 256


def now_ms() -> int:
    """Wall-clock time in integer milliseconds: the only time type the store keeps."""
    return int(time.time() * 1000)


def _job_error(exc: Exception) -> Exception:
    return store_error(exc) if isinstance(exc, SQLAlchemyError) else exc


class _Job:
    __slots__ = ("fn", "future")

    def __init__(self, fn: TransactionFn[Any], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future


class SqliteWriter:
    """One thread, one `sqlite3` connection, group commit (see the module docstring)."""

    def __init__(self, engine: Engine, lock: asyncio.Lock, options: dict[str, Any]) -> None:
        self._engine = engine
        self._lock = lock
        self._options = options
        self._queue: list[_Job] = []
        self._drainer: asyncio.Task[None] | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._conn: Connection | None = None
        self._closed = False
        self.transactions = 0  # committed group transactions, for tests and metrics
        self.jobs = 0

    async def submit(self, fn: TransactionFn[T]) -> T:
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
            async with self._lock:
                # Taken under the lock: whatever queued while a `write()` block held it joins in.
                batch = [job for job in self._queue[:MAX_GROUP_COMMIT] if not job.future.done()]
                del self._queue[:MAX_GROUP_COMMIT]
                if not batch:
                    continue
                if self._thread is None:
                    self._thread = ThreadPoolExecutor(1, thread_name_prefix="byoc-sqlite-writer")
                try:
                    outcomes = await loop.run_in_executor(
                        self._thread, self._run_batch, [job.fn for job in batch]
                    )
                except BaseException as exc:
                    failure = exc if isinstance(exc, Exception) else StoreError("interrupted")
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(failure)
                    raise
            for job, (ok, value) in zip(batch, outcomes, strict=True):
                if job.future.done():
                    continue  # the caller went away; its work committed unacknowledged
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)

    def _run_batch(self, jobs: list[TransactionFn[Any]]) -> list[tuple[bool, Any]]:
        """On the writer thread: one transaction, one SAVEPOINT per job when there are several.

        A job that raises is rolled back (its savepoint, or the transaction when it is alone)
        and gets its exception; a failure of the transaction itself (BEGIN, a savepoint, the
        COMMIT) fails every job of the group, and nothing of the group is stored.
        """
        outcomes: list[tuple[bool, Any]] = []
        try:
            if self._conn is None:
                self._conn = self._engine.connect().execution_options(**self._options)
            conn = self._conn
            transaction = conn.begin()
            if len(jobs) == 1:
                try:
                    result = jobs[0](conn)
                except Exception as exc:
                    transaction.rollback()
                    return [(False, _job_error(exc))]
                outcomes.append((True, result))
            else:
                # Savepoints straight on the driver: through SQLAlchemy each one is a
                # compiled statement, which cost as much as a job's own queries.
                raw = conn.connection.driver_connection
                assert raw is not None
                for fn in jobs:
                    raw.execute("SAVEPOINT job")
                    try:
                        result = fn(conn)
                    except Exception as exc:
                        raw.execute("ROLLBACK TO job")
                        raw.execute("RELEASE job")
                        outcomes.append((False, _job_error(exc)))
                    else:
                        raw.execute("RELEASE job")
                        outcomes.append((True, result))
            transaction.commit()
        except Exception as exc:
            # Whatever state the failure left the connection in (a COMMIT that failed leaves
            # the transaction open), start the next group on a fresh one.
            self._discard_connection()
            failure = _job_error(exc)
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

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        self._closed = True
        if self._drainer is not None and not self._drainer.done():
            with contextlib.suppress(Exception):  # each job's caller got the error already
                await self._drainer
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_connection)
            self._thread.shutdown(wait=True)
            self._thread = None


class _SqliteReader:
    """Read transactions as one call on a small thread pool (WAL: readers never block). Each
    thread keeps its connection: a checkout from the pool and its return cost more than a
    read of one row."""

    def __init__(self, engine: Engine, threads: int = 2) -> None:
        self._engine = engine
        self._threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[Connection] = []  # every thread's, to close at the end

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._engine.connect()
            with self._lock:
                self._connections.append(conn)
        return conn

    def _discard(self, conn: Connection) -> None:
        self._local.conn = None
        with self._lock:
            self._connections.remove(conn)
        with contextlib.suppress(Exception):
            conn.invalidate()
            conn.close()

    def _run(self, fn: TransactionFn[T]) -> T:
        try:
            conn = self._connection()
        except SQLAlchemyError as exc:
            raise store_error(exc) from exc
        try:
            with conn.begin():
                return fn(conn)
        except SQLAlchemyError as exc:
            # Whatever state the failure left the connection in, the next read opens another.
            self._discard(conn)
            raise store_error(exc) from exc

    async def submit(self, fn: TransactionFn[T]) -> T:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self._threads, thread_name_prefix="byoc-sqlite-read"
                )
            pool = self._pool
        return await asyncio.get_running_loop().run_in_executor(pool, self._run, fn)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        try:
            self.url = dialect.async_url(url)
        except dialect.UnsupportedDatabase as exc:
            raise StoreError(str(exc)) from exc
        # An error's text names its statement, never the values bound to it (message text,
        # tokens): it may reach a log line (docs/security.md, "Logs").
        self.engine: AsyncEngine = create_async_engine(
            self.url, echo=echo, hide_parameters=True, **dialect.engine_options(url)
        )
        dialect.prepare_engine(self.engine.sync_engine, url)
        self._write_options = dialect.write_options(url)
        self._read_options = dialect.read_options(url)
        self._serialise_writes = dialect.serialises_writes(url)
        self._write_lock = asyncio.Lock()
        admitted = dialect.admitted_transactions(url)
        # Transactions running on the pool at once through this handle (not `reserved()`).
        self._admission = asyncio.Semaphore(admitted) if admitted is not None else None
        self._sync_engine: Engine | None = None
        self.writer: SqliteWriter | None = None
        self._reader: _SqliteReader | None = None
        file_url = dialect.embedded_file_url(url)
        if file_url is not None:
            # The same file through the plain driver, for the writer and reader threads.
            self._sync_engine = create_engine(
                file_url, echo=echo, hide_parameters=True, **dialect.embedded_engine_options()
            )
            dialect.prepare_engine(self._sync_engine, url)
            self.writer = SqliteWriter(self._sync_engine, self._write_lock, self._write_options)
            self._reader = _SqliteReader(self._sync_engine)

    def reserved(self) -> Database:
        """The same store, through the connections ordinary transactions leave free (on
        PostgreSQL, see `dialect.admitted_transactions`): for the delivery pipeline, so that a
        backlog of requests waiting for the pool does not hold up the deliveries. Elsewhere the
        same as this handle. Close this handle, not the reserved one."""
        handle = copy.copy(self)
        handle._admission = None
        return handle

    async def run_write(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(conn, *args, **kwargs)` inside a write transaction; return its result once
        committed.

        `fn` is synchronous and must not block on anything but the database: on SQLite it
        runs on the writer thread, possibly in one transaction with other jobs (under its own
        SAVEPOINT). An exception from `fn` rolls back exactly what `fn` wrote and is raised here.
        """
        job = _bound(fn, *args, **kwargs)
        if self.writer is not None:
            return await self.writer.submit(job)
        return await self._on_engine(job, write=True)

    async def run_read(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `fn(conn, *args, **kwargs)` for reading, in one call: on SQLite in a read
        transaction (one snapshot), on PostgreSQL in autocommit (`dialect.read_options`)."""
        job = _bound(fn, *args, **kwargs)
        if self._reader is not None:
            return await self._reader.submit(job)
        return await self._on_engine(job, write=False)

    async def _on_engine(self, job: TransactionFn[T], *, write: bool) -> T:
        """A transaction on the asyncio engine: PostgreSQL, and in-memory SQLite (which has
        no writer thread: its writers queue on the same lock). Options, BEGIN, the job and
        COMMIT run in one call into SQLAlchemy's sync layer (`run_sync`), not one each."""
        options = self._write_options if write else self._read_options
        async with contextlib.AsyncExitStack() as stack:
            if write and self._serialise_writes:
                await stack.enter_async_context(self._write_lock)
            if self._admission is not None:
                await stack.enter_async_context(self._admission)
            connected = False
            try:
                async with self.engine.connect() as conn:
                    connected = True
                    return await conn.run_sync(_in_transaction, job, options)
            except SQLAlchemyError as exc:
                raise store_error(exc) from exc
            except OSError as exc:
                if connected:
                    raise  # the job's own
                raise store_error(exc) from exc
        raise AssertionError("unreachable")  # the stack does not swallow exceptions

    async def ping(self) -> None:
        await self.run_read(_select_one)

    async def close(self) -> None:
        if self.writer is not None:
            await self.writer.close()
        if self._reader is not None:
            await asyncio.to_thread(self._reader.close)
        await self.engine.dispose()
        if self._sync_engine is not None:
            self._sync_engine.dispose()


def _bound(
    fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
) -> TransactionFn[T]:
    if not args and not kwargs:
        return fn  # P is empty: fn takes the connection alone

    def job(conn: Connection) -> T:
        return fn(conn, *args, **kwargs)

    return job


def _in_transaction(conn: Connection, job: TransactionFn[T], options: dict[str, Any]) -> T:
    if options:
        conn.execution_options(**options)
    with conn.begin():
        return job(conn)


def _select_one(conn: Connection) -> None:
    conn.exec_driver_sql("SELECT 1")
