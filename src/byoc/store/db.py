"""The database handle: the engine, and the one way to run a transaction.

`run_write(fn, *args)` / `run_read(fn, *args)` take a *synchronous* transaction function
`fn(conn, *args)` on a SQLAlchemy `Connection` (the named queries of `byoc.store`, or a
caller's function that runs several of them) and run all of it in one go. On PostgreSQL the
function runs through `AsyncConnection.run_sync` (greenlet over asyncpg), so the same code
serves both databases; the prebuilt statements of the hot path run on asyncpg directly
(`byoc.store.compiled`), reads run in autocommit and pooled connections are pinged only after
being idle (`byoc.store.dialect`): a reply's transaction is one round trip per statement plus
BEGIN and COMMIT. On an SQLite file writes go to `byoc.store.sqlite_writer`: one plain
`sqlite3` connection and **group commit** (every write queued while the loop was busy goes
into the next transaction, each job inside its own SAVEPOINT), run on the event loop's thread
with the disk's flushes on a thread of their own. Reads run on a small pool of reader threads
(WAL: readers never block).

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
from byoc.store.sqlite_writer import SqliteWriter

T = TypeVar("T")
P = ParamSpec("P")
TransactionFn = Callable[[Connection], T]


def now_ms() -> int:
    """Wall-clock time in integer milliseconds: the only time type the store keeps."""
    return int(time.time() * 1000)


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
            # The same file through the plain driver, for the writer and the reader threads.
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

        `fn` is synchronous and must not block on anything but the database, and its work is
        a message's or a few rows' (else `run_bulk_write`): on SQLite it runs on the event
        loop's thread (`byoc.store.sqlite_writer`), possibly in one transaction with other
        jobs (under its own SAVEPOINT). An exception from `fn` rolls back exactly what `fn`
        wrote and is raised here.
        """
        return await self._write(_bound(fn, *args, **kwargs), bulk=False)

    async def run_bulk_write(
        self, fn: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """`run_write` for a transaction that may read or write much: many rows, or files'
        bytes (a purge, an erasure, an attachment). On SQLite it runs off the event loop's
        thread, which goes on meanwhile; elsewhere it is `run_write`."""
        return await self._write(_bound(fn, *args, **kwargs), bulk=True)

    async def _write(self, job: TransactionFn[T], *, bulk: bool) -> T:
        if self.writer is not None:
            return await self.writer.submit(job, bulk=bulk)
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
        no `SqliteWriter`: its writers queue on the same lock). Options, BEGIN, the job and
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
