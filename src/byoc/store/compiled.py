"""Running the hot path's prebuilt statements: compiled once, on SQLite straight on the driver.

Through SQLAlchemy a prebuilt statement still costs 13 to 17 µs per execution on an idle
machine (cache key, execution context, result metadata), on the `sqlite3` connection 3.4 to 7
(`bench/statement_cost.py`), and the gap grows under load. A message's transaction runs
about ten statements, so on the embedded default that was most of the writer thread's time.
`execute()` therefore compiles each prebuilt statement once for SQLite (named parameters) and
runs it on the `sqlite3` connection of the caller's transaction (the writer thread's and the
readers', see `byoc.store.db`); elsewhere it is plain `Connection.execute`. The result offers
what the query functions use of a SQLAlchemy result: `first()`, `all()`, iteration,
`scalar_one()`, `rowcount`, rows with `_mapping`.

Only for statements whose columns are plain integers, text and bytes (the whole schema: see
`byoc.store.schema`), so SQLAlchemy's type processing has nothing to do, and without
expanding (`IN`) parameters, whose SQL depends on the values. Driver errors become
SQLAlchemy's, so `byoc.store.db` maps them to store errors as it does for everything else.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import (
    DatabaseError,
    IntegrityError,
    MultipleResultsFound,
    NoResultFound,
    OperationalError,
)
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ClauseElement

from byoc.store.dialect import SQLITE_DRIVER_DIALECT, sqlite_driver

# Keyed by the statement object (module-level constants that live as long as the process)
# and, for INSERTs, by the parameter names, which decide the column list.
# The SQL, and the values of the statement's own literals (`.limit(1)`, `state == "open"`),
# which SQLAlchemy binds as parameters too.
_SQL: dict[tuple[int, tuple[str, ...]], tuple[str, dict[str, Any]]] = {}


class RawRow:
    __slots__ = ("_mapping",)

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping


class RawResult:
    """The rows of one statement run on the driver, read eagerly."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        if cursor.description is None:
            self._rows: list[RawRow] = []
        else:
            names = [column[0] for column in cursor.description]
            self._rows = [RawRow(dict(zip(names, row, strict=True))) for row in cursor]
        self.rowcount = cursor.rowcount

    def first(self) -> RawRow | None:
        return self._rows[0] if self._rows else None

    def __iter__(self) -> Iterator[RawRow]:
        return iter(self._rows)

    def scalar_one(self) -> Any:
        if not self._rows:
            raise NoResultFound("expected one row, got none")
        if len(self._rows) > 1:
            raise MultipleResultsFound(f"expected one row, got {len(self._rows)}")
        return next(iter(self._rows[0]._mapping.values()))


def execute(conn: Connection, statement: Executable, params: Mapping[str, Any]) -> Any:
    """Run a prebuilt statement in the caller's transaction (see the module docstring)."""
    raw = sqlite_driver(conn)
    if raw is None:
        # PostgreSQL, or SQLite through aiosqlite (an in-memory database).
        return conn.execute(statement, params)
    sql, literals = _compiled(statement, params)
    try:
        return RawResult(raw.execute(sql, {**literals, **params} if literals else params))
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(sql, dict(params), exc) from exc
    except sqlite3.OperationalError as exc:
        raise OperationalError(sql, dict(params), exc) from exc
    except sqlite3.DatabaseError as exc:
        raise DatabaseError(sql, dict(params), exc) from exc


def _compiled(statement: Executable, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    key = (id(statement), tuple(params))
    found = _SQL.get(key)
    if found is None:
        assert isinstance(statement, ClauseElement)
        compiled = statement.compile(dialect=SQLITE_DRIVER_DIALECT, column_keys=list(params))
        literals = {k: v for k, v in compiled.params.items() if k not in params}
        found = _SQL[key] = (str(compiled), literals)
    return found
