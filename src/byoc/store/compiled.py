"""Running the hot path's prebuilt statements: compiled once, straight on the driver.

Through SQLAlchemy a prebuilt statement still costs 13 to 17 µs per execution on an idle
machine (cache key, execution context, result metadata), on the `sqlite3` connection 3.4 to 7
(`bench/statement_cost.py`), and the gap grows under load. A message's transaction runs
about ten statements, so on the embedded default that was most of the writer's time.
`execute()` therefore compiles each prebuilt statement once per database and runs it on the
driver connection of the caller's transaction:

- SQLite (the writer's and the readers' `sqlite3` connections, see `byoc.store.db`):
  named parameters, straight on `sqlite3`;
- PostgreSQL (inside `AsyncConnection.run_sync`): `$n` parameters with SQLAlchemy's own bind
  casts, on the asyncpg connection through its prepared-statement cache (`fetch` / `execute`
  with arguments: one round trip once the connection has prepared the statement), awaited
  from the transaction function with SQLAlchemy's `await_only`, as its asyncpg adapter does.
  The transaction is begun first if no statement through SQLAlchemy has begun it yet
  (`dialect.asyncpg_driver`);
- anything else (SQLite through aiosqlite, an in-memory database): plain `Connection.execute`.

The result offers what the query functions use of a SQLAlchemy result: `first()`, `all()`,
iteration, `scalar_one()`, `rowcount`, rows with `_mapping`.

On asyncpg every statement is a round trip, and the transaction's connection waits for the event
loop between two of them. A transaction whose statements grow with its work (the outbox's
settle pass: a status per delivered message, a conversation stamp per create) would hold its
row locks for that many round trips. `batched(conn)` holds back the prebuilt statements that
return no rows and runs them together: every execution of one statement in one asyncpg
`executemany` (one round trip, pipelined), before the next statement that returns rows or goes
through SQLAlchemy, and at the end of the block. Elsewhere it changes nothing.

Only for statements whose columns are plain integers, text and bytes (the whole schema: see
`byoc.store.schema`), so SQLAlchemy's type processing has nothing to do (a statement that
would need a bind processor is refused when it is compiled), and without expanding (`IN`)
parameters, whose SQL depends on the values. Driver errors become SQLAlchemy's (an integrity
violation its `IntegrityError`), so `byoc.store.db` maps them to store errors as it does for
everything else.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NamedTuple

import asyncpg
from sqlalchemy import Connection, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import (
    DatabaseError,
    DataError,
    IntegrityError,
    MultipleResultsFound,
    NoResultFound,
    OperationalError,
)
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.util import await_only

from byoc.store.dialect import (
    SQLITE_DRIVER_DIALECT,
    asyncpg_driver,
    sqlite_driver,
    surface_dead_connection,
)


class _Compiled(NamedTuple):
    sql: str
    names: tuple[str, ...]  # the parameters in `$n` order (PostgreSQL)
    literals: dict[str, Any]  # the statement's own literals (`.limit(1)`, `state == "open"`)
    returns_rows: bool


# Keyed by the statement object (module-level constants that live as long as the process)
# and, for INSERTs, by the parameter names, which decide the column list.
_SQLITE: dict[tuple[int, tuple[str, ...]], _Compiled] = {}
_POSTGRESQL: dict[tuple[int, tuple[str, ...]], _Compiled] = {}


class RawRow:
    __slots__ = ("_mapping",)

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping


class RawResult:
    """The rows of one statement run on the driver, read eagerly."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[RawRow], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    @classmethod
    def of_cursor(cls, cursor: sqlite3.Cursor) -> RawResult:
        if cursor.description is None:
            return cls([], cursor.rowcount)
        names = [column[0] for column in cursor.description]
        rows = [RawRow(dict(zip(names, row, strict=True))) for row in cursor]
        # `sqlite3` counts the rows of INSERT/UPDATE/DELETE only, not of one opening with WITH.
        return cls(rows, cursor.rowcount if cursor.rowcount >= 0 else len(rows))

    @classmethod
    def of_records(cls, records: Iterable[Mapping[str, Any]]) -> RawResult:
        rows = [RawRow(dict(record)) for record in records]
        return cls(rows, len(rows))

    def first(self) -> RawRow | None:
        return self._rows[0] if self._rows else None

    def all(self) -> list[RawRow]:
        return list(self._rows)

    def __iter__(self) -> Iterator[RawRow]:
        return iter(self._rows)

    def one(self) -> RawRow:
        if not self._rows:
            raise NoResultFound("expected one row, got none")
        if len(self._rows) > 1:
            raise MultipleResultsFound(f"expected one row, got {len(self._rows)}")
        return self._rows[0]

    def scalar_one(self) -> Any:
        return next(iter(self.one()._mapping.values()))


def execute(conn: Connection, statement: Executable, params: Mapping[str, Any]) -> Any:
    """Run a prebuilt statement in the caller's transaction (see the module docstring). Inside
    `batched(conn)` on asyncpg a statement that returns no rows is held back: its result has no
    rows and a `rowcount` of -1."""
    lite = sqlite_driver(conn)
    if lite is not None:
        return _on_sqlite(lite, statement, params)
    pg = asyncpg_driver(conn)
    if pg is not None:
        held = _HELD.get()
        if held is not None and held.conn is conn:
            compiled = _compiled(_POSTGRESQL, conn.dialect, statement, params)
            if not compiled.returns_rows:
                held.add(compiled, params)
                return RawResult([], -1)
            held.flush()
        return _on_asyncpg(conn, pg, statement, params)
    return conn.execute(statement, params)


class _Held:
    """The executions `batched` holds back on one connection, by statement, in first-use order."""

    __slots__ = ("by_sql", "conn", "listening")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.by_sql: dict[str, tuple[_Compiled, list[Mapping[str, Any]]]] = {}
        self.listening = False

    def add(self, compiled: _Compiled, params: Mapping[str, Any]) -> None:
        if not self.listening:
            event.listen(self.conn, "before_cursor_execute", self.flush)
            self.listening = True
        found = self.by_sql.get(compiled.sql)
        if found is None:
            self.by_sql[compiled.sql] = (compiled, [params])
        else:
            found[1].append(params)

    def flush(self, *_event_args: Any) -> None:
        """Run what is held: one round trip per statement. (Also SQLAlchemy's
        `before_cursor_execute` listener, so a statement through it runs after these.)"""
        by_sql, self.by_sql = self.by_sql, {}
        if not by_sql:
            return
        raw = asyncpg_driver(self.conn)
        assert raw is not None
        for compiled, executions in by_sql.values():
            literals = compiled.literals
            args = [
                [p[name] if name in p else literals[name] for name in compiled.names]
                for p in executions
            ]
            with _driver_errors(self.conn, compiled.sql, executions[0]):
                if len(args) == 1:
                    await_only(raw.execute(compiled.sql, *args[0]))
                else:
                    await_only(raw.executemany(compiled.sql, args))


_HELD: ContextVar[_Held | None] = ContextVar("byoc_store_held", default=None)


@contextmanager
def batched(conn: Connection) -> Iterator[None]:
    """Inside the block, on asyncpg, hold back the prebuilt statements that return no rows and
    run all the executions of each statement together (see the module docstring): in the order
    each statement was first used, before the first statement that returns rows or goes through
    SQLAlchemy, and at the end. So the block's code must not depend on the order between two
    different held statements (each writes rows the other does not read), and must not read a
    held statement's `rowcount`. The executions of one statement keep their order. Nothing is
    held on SQLite, where a statement costs no round trip. If the block raises, what is held is
    dropped: the caller's transaction is rolled back anyway."""
    if conn.dialect.driver != "asyncpg" or _HELD.get() is not None:
        yield
        return
    held = _Held(conn)
    token = _HELD.set(held)
    try:
        yield
        held.flush()
    finally:
        if held.listening:
            event.remove(conn, "before_cursor_execute", held.flush)
        _HELD.reset(token)


def _on_sqlite(
    raw: sqlite3.Connection, statement: Executable, params: Mapping[str, Any]
) -> RawResult:
    compiled = _compiled(_SQLITE, SQLITE_DRIVER_DIALECT, statement, params)
    sql, literals = compiled.sql, compiled.literals
    try:
        return RawResult.of_cursor(raw.execute(sql, {**literals, **params} if literals else params))
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(sql, dict(params), exc, hide_parameters=True) from exc
    except sqlite3.OperationalError as exc:
        raise OperationalError(sql, dict(params), exc, hide_parameters=True) from exc
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(sql, dict(params), exc, hide_parameters=True) from exc


def _on_asyncpg(
    conn: Connection, raw: Any, statement: Executable, params: Mapping[str, Any]
) -> RawResult:
    compiled = _compiled(_POSTGRESQL, conn.dialect, statement, params)
    literals = compiled.literals
    args = [params[name] if name in params else literals[name] for name in compiled.names]
    with _driver_errors(conn, compiled.sql, params):
        if compiled.returns_rows:
            return RawResult.of_records(await_only(raw.fetch(compiled.sql, *args)))
        status: str = await_only(raw.execute(compiled.sql, *args))
    # "UPDATE 3", "DELETE 0", "INSERT 0 1": the count comes last.
    count = status.rpartition(" ")[2]
    return RawResult([], int(count) if count.isdigit() else -1)


@contextmanager
def _driver_errors(conn: Connection, sql: str, params: Mapping[str, Any]) -> Iterator[None]:
    """asyncpg's errors as SQLAlchemy's."""
    try:
        yield
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(sql, dict(params), exc, hide_parameters=True) from exc
    except asyncpg.DataError as exc:
        raise DataError(sql, dict(params), exc, hide_parameters=True) from exc
    except Exception as exc:
        surface_dead_connection(conn)
        if isinstance(exc, asyncpg.PostgresError):
            raise DatabaseError(sql, dict(params), exc, hide_parameters=True) from exc
        raise OperationalError(sql, dict(params), exc, hide_parameters=True) from exc


def _compiled(
    cache: dict[tuple[int, tuple[str, ...]], _Compiled],
    dialect: Dialect,
    statement: Executable,
    params: Mapping[str, Any],
) -> _Compiled:
    key = (id(statement), tuple(params))
    found = cache.get(key)
    if found is None:
        found = cache[key] = _compile(dialect, statement, params)
    return found


def _compile(dialect: Dialect, statement: Executable, params: Mapping[str, Any]) -> _Compiled:
    assert isinstance(statement, ClauseElement)
    compiled = statement.compile(dialect=dialect, column_keys=list(params))
    assert isinstance(compiled, SQLCompiler)
    if compiled._bind_processors:
        raise TypeError(f"a prebuilt statement needs no bind processing: {compiled}")
    literals = {k: v for k, v in compiled.params.items() if k not in params}
    returns_rows = bool(statement.is_select or compiled.effective_returning)
    return _Compiled(str(compiled), tuple(compiled.positiontup or ()), literals, returns_rows)
