"""Everything that differs between SQLite (the embedded default) and PostgreSQL, in one place.

The rest of the package writes one SQL subset through SQLAlchemy Core and asks this module
where the two databases part ways:

- URLs: which asyncio driver serves a plain `sqlite://` or `postgresql://` URL, the libpq DSN
  the bus listens on, and the file an embedded database's writer and readers open.
- Engines: SQLite's pragmas and `BEGIN IMMEDIATE` for writers (two writers never deadlock on a
  lock upgrade, and one process queues its writers itself: `serialises_writes`), PostgreSQL's
  connection pool (pinged only after being idle), reads in autocommit on PostgreSQL.
- The driver under a connection, for the prebuilt statements (`byoc.store.compiled`): the
  `sqlite3` connection, or the asyncpg one with its transaction begun.
- Claims: `FOR UPDATE SKIP LOCKED` so several instances take different outbox rows; SQLite
  has one writer at a time and needs no row locks. Lanes: on PostgreSQL a lane's producers
  serialise on an advisory lock taken by the outbox INSERT, or by an earlier statement.
- Id lists: `InJsonIds` passes a list of ids as one JSON text parameter (`json_each` on
  SQLite, `jsonb_array_elements_text` on PostgreSQL), so the SQL does not depend on the list's
  length and a prebuilt statement compiles once.
- The bus: PostgreSQL fans out with `LISTEN/NOTIFY` (and `announce` notifies from inside a
  transaction, at its commit); an SQLite database serves one process.
- Migrations: the few DDL words that differ, and the lock that keeps two instances starting
  together from both migrating. Upkeep: PostgreSQL's VACUUM of the busiest tables. Inserts
  that keep a row a concurrent writer inserted first.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    Engine,
    Insert,
    Integer,
    String,
    Table,
    bindparam,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import CTE
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.util import await_only

SQLITE: Final = "sqlite"
POSTGRESQL: Final = "postgresql"


class UnsupportedDatabase(ValueError):
    """The database URL names a database the store does not run on."""


def backend(url: str) -> str:
    """`sqlite` or `postgresql`, whatever driver suffix the URL carries."""
    name = make_url(url).get_backend_name()
    if name == SQLITE:
        return SQLITE
    if name in (POSTGRESQL, "postgres"):
        return POSTGRESQL
    raise UnsupportedDatabase(f"unsupported database URL scheme {make_url(url).drivername!r}")


def async_url(url: str) -> str:
    """The URL with the asyncio driver of its database."""
    driver = "sqlite+aiosqlite" if backend(url) == SQLITE else "postgresql+asyncpg"
    return make_url(url).set(drivername=driver).render_as_string(hide_password=False)


def notify_dsn(url: str) -> str | None:
    """The DSN (libpq form, as asyncpg takes it) to `LISTEN/NOTIFY` on; None for a database
    that only one process serves, whose bus stays in that process."""
    if backend(url) != POSTGRESQL:
        return None
    return make_url(url).set(drivername=POSTGRESQL).render_as_string(hide_password=False)


def serialises_writes(url: str) -> bool:
    """Whether the database takes one writer at a time (queued here, not on its busy handler)."""
    return backend(url) == SQLITE


def embedded_file_url(url: str) -> URL | None:
    """For an SQLite file: the URL for the plain `sqlite3` driver that the writer and the reader
    threads use (its directory created). None for PostgreSQL and in-memory SQLite."""
    parsed = make_url(url)
    if backend(url) != SQLITE or not parsed.database or parsed.database == ":memory:":
        return None
    Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
    return parsed.set(drivername="sqlite+pysqlite")


def engine_options(url: str) -> dict[str, Any]:
    """Keyword arguments for the asyncio engine of `url`."""
    if backend(url) == SQLITE:
        embedded_file_url(url)  # creates the file's directory
        return {"connect_args": {"timeout": 30}}
    # Twenty connections, all kept: with ten kept and ten on demand, more than ten concurrent
    # transactions closed an overflow connection at every return and opened one soon after
    # (connect, set-up, every statement prepared again: `bench/statement_cost.py`). LIFO:
    # under light load the same few connections (statements prepared, idle clock fresh) serve.
    return {"pool_size": POOL_SIZE, "max_overflow": 0, "pool_use_lifo": True}


# A PostgreSQL engine's connections, all kept (see `engine_options`), and how many of them
# ordinary transactions leave to the delivery pipeline (see `admitted_transactions`).
POOL_SIZE: Final = 20
RESERVED_CONNECTIONS: Final = 4


def admitted_transactions(url: str) -> int | None:
    """How many transactions a `Database` runs at once on its pool, except through its
    reserved handle (`Database.reserved`); None where there is no pool to share (SQLite).
    The pool serves first come, first served: when requests came faster than their
    transactions ended, the outbox's settle passes queued behind the whole backlog (and every
    conversation's next message with them). So ordinary transactions take at most all but
    `RESERVED_CONNECTIONS` of the pool."""
    return None if backend(url) == SQLITE else POOL_SIZE - RESERVED_CONNECTIONS


def embedded_engine_options() -> dict[str, Any]:
    """Keyword arguments for the synchronous engine of `embedded_file_url`."""
    return {"connect_args": {"timeout": 30, "check_same_thread": False}}


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the driver so BEGIN is ours to emit.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    raw = conn.connection.driver_connection
    if not isinstance(raw, sqlite3.Connection):  # aiosqlite (in-memory databases)
        conn.exec_driver_sql(f"BEGIN {mode}")
        return
    # Straight on `sqlite3` (the writer and the readers): through SQLAlchemy, a BEGIN cost
    # as much as one of the transaction's prebuilt statements (`byoc.store.compiled`).
    try:
        raw.execute(f"BEGIN {mode}")
    except sqlite3.Error as exc:
        raise OperationalError(f"BEGIN {mode}", None, exc) from exc


# A pooled PostgreSQL connection that has been idle longer than this is pinged before use.
# SQLAlchemy's `pool_pre_ping` pings at every checkout: on asyncpg three round trips (BEGIN, an
# empty statement, ROLLBACK) before every transaction, more than a read's own work. A
# connection in steady use is trusted instead; if the server has dropped it meanwhile (a
# restart), the transaction on it fails, its rollback fails too, and SQLAlchemy then discards
# every connection of the pool older than that failure.
PING_AFTER_IDLE_SECONDS = 10.0


def _stamp_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(engine: Engine) -> Any:
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since", float("-inf"))
        if time.monotonic() - idle_since <= PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool discards this connection and hands out another (a fresh one if need be).
            raise DisconnectionError(f"a pooled connection did not answer: {exc}") from exc

    return on_checkout


def prepare_engine(engine: Engine, url: str) -> None:
    """Install SQLite's connection pragmas and its `BEGIN` (see `write_options`); on
    PostgreSQL, the ping of connections that have been idle (`PING_AFTER_IDLE_SECONDS`)."""
    if backend(url) == SQLITE:
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
    else:
        event.listen(engine, "connect", _stamp_idle)
        event.listen(engine, "checkin", _stamp_idle)
        event.listen(engine, "checkout", _ping_if_idle(engine))


def read_options(url: str) -> dict[str, Any]:
    """Execution options for a connection that only reads: autocommit on PostgreSQL, where a
    READ COMMITTED transaction gives a read nothing (each statement has a snapshot of its own)
    and BEGIN and COMMIT cost two round trips. (SQLite: one snapshot, and no round trip.)"""
    return {} if backend(url) == SQLITE else {"isolation_level": "AUTOCOMMIT"}


def write_options(url: str) -> dict[str, Any]:
    """Execution options for a connection that writes: on SQLite its transactions begin
    `IMMEDIATE`, taking the write lock at once (no deadlock on a later lock upgrade)."""
    return {"sqlite_begin": "IMMEDIATE"} if backend(url) == SQLITE else {}


# --- statements ------------------------------------------------------------------------------

# The fast path compiles prebuilt statements for the `sqlite3` driver (`byoc.store.compiled`).
SQLITE_DRIVER_DIALECT: Final[Dialect] = sqlite.dialect(paramstyle="named")


def sqlite_driver(conn: Connection) -> sqlite3.Connection | None:
    """The `sqlite3` connection under `conn` (the writer's, a reader's), else None."""
    if conn.dialect.name != SQLITE:
        return None
    raw = conn.connection.driver_connection
    return raw if isinstance(raw, sqlite3.Connection) else None


def asyncpg_driver(conn: Connection) -> Any | None:
    """The asyncpg connection under `conn` (in `run_sync`), its transaction begun; else None.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, before its first statement. A statement on
    the driver first begins it here as the adapter would (nothing in autocommit mode either)."""
    if conn.dialect.driver != "asyncpg":
        return None
    pooled = conn.connection
    adapted: Any = pooled.dbapi_connection
    if adapted._transaction is None:
        try:
            await_only(adapted._start_transaction())
        except Exception as exc:
            surface_dead_connection(conn)
            raise OperationalError("BEGIN", None, exc) from exc
    return pooled.driver_connection


def surface_dead_connection(conn: Connection) -> None:
    """After a statement on the driver failed: if the asyncpg connection is closed, run one
    through SQLAlchemy, which then finds the connection dead as if its own statement had: it
    raises its error and replaces this connection and every pooled one older than it."""
    raw = conn.connection.driver_connection
    if raw is not None and raw.is_closed():
        conn.exec_driver_sql("SELECT 1")


def locked(query: Select[Any], *tables: Any, skip: bool = False) -> Select[Any]:
    """`query` locking its rows until the commit on PostgreSQL (`FOR UPDATE`); with `skip`, rows
    another holds are skipped (`SKIP LOCKED`), not waited for. SQLite has one writer: no clause."""
    return query.with_for_update(skip_locked=skip, of=list(tables) or None)


def skip_locked_cte(query: Select[Any], name: str, *tables: Any) -> CTE:
    """`locked(query, skip=True)` as a CTE `name`, evaluated once before the statement using it
    (on PostgreSQL `MATERIALIZED`: its rows are locked once, whatever the plan around it)."""
    skipping = locked(query, *tables, skip=True)
    return skipping.cte(name).prefix_with("MATERIALIZED", dialect=POSTGRESQL)


class InJsonIds(ColumnElement[bool]):
    """`column` is one of the ids of a JSON array passed as the text parameter named `name`:
    integer ids for an integer column, strings for a text one."""

    inherit_cache = True
    type = Boolean()
    # A condition in its own right: without this, SQLite's compiler (no native booleans)
    # writes `... IN (...) = 1`, which no index serves, so every claim scanned the outbox.
    _is_implicitly_boolean = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.ids = bindparam(name, type_=String())


@compiles(InJsonIds)  # and for `str(statement)`
@compiles(InJsonIds, SQLITE)
def _in_json_ids_sqlite(element: InJsonIds, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    ids = compiler.process(element.ids, **kw)
    return f"{column} IN (SELECT value FROM json_each({ids}))"  # noqa: S608 (compiled parts)


@compiles(InJsonIds, POSTGRESQL)
def _in_json_ids_postgresql(element: InJsonIds, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    ids = compiler.process(element.ids, **kw)
    elements = f"jsonb_array_elements_text(CAST({ids} AS JSONB))"
    if isinstance(element.column.type, Integer):  # BigInteger too
        elements = f"CAST({elements} AS BIGINT)"
    # `= ANY(ARRAY(...))`: each id looked up in the index; `IN (SELECT ...)` scanned the table.
    return f"{column} = ANY(ARRAY(SELECT {elements}))"


# --- the bus -------------------------------------------------------------------------------

_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
# The same on the bus's own asyncpg connection (`byoc.bus.PostgresBus`), outside a transaction.
NOTIFY_ON_DRIVER: Final = "SELECT pg_notify($1, $2)"


def announce(conn: Connection, channel: str, payload: str) -> None:
    """Tell every instance listening on `channel` (the bus: `byoc.bus.PostgresBus`) `payload`
    when the caller's transaction commits (PostgreSQL `NOTIFY` is transactional: nothing if
    it rolls back). SQLite: nothing, one process serves it."""
    if conn.dialect.name == POSTGRESQL:
        conn.execute(_NOTIFY, {"channel": channel, "payload": payload})


# --- migrations ------------------------------------------------------------------------------

# Any fixed 64-bit number: every replica asks PostgreSQL for the same advisory lock.
_MIGRATION_LOCK_KEY = 0x6279_6F63_5F64_62  # "byoc_db"


def take_migration_lock(conn: Connection, url: str) -> None:
    """Keep two instances from migrating at once. PostgreSQL: an advisory lock held to the
    end of the transaction; SQLite's `BEGIN IMMEDIATE` already excludes every other writer."""
    if backend(url) == POSTGRESQL:
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})


def rebuilds_tables_to_alter(url: str) -> bool:
    """Whether the database alters a table mostly by copying it (SQLite): migrations then
    render in Alembic's batch mode and run with foreign keys off, checked before commit."""
    return backend(url) == SQLITE


def set_foreign_keys(conn: Connection, on: bool) -> None:
    # Straight on the driver: through SQLAlchemy the statement would begin a transaction.
    cursor = conn.connection.cursor()
    try:
        cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    finally:
        cursor.close()


def broken_foreign_keys(conn: Connection) -> list[Any]:
    """SQLite: rows whose foreign key points nowhere (`PRAGMA foreign_key_check`)."""
    return list(conn.exec_driver_sql("PRAGMA foreign_key_check").all())


def vacuum_sql(url: str, tables: Sequence[str]) -> str | None:
    """PostgreSQL: VACUUM `tables` (`byoc.store.upkeep`), skipping one being vacuumed, never
    truncating (its exclusive lock stalls the table). None on SQLite: it reuses freed space."""
    sql = f"VACUUM (SKIP_LOCKED, TRUNCATE false) {', '.join(tables)}"
    return sql if backend(url) == POSTGRESQL else None


def insert_unless_present(conn: Connection, table: Table, key: str) -> Insert:
    """`INSERT … ON CONFLICT (key) DO NOTHING`: a row a concurrent writer inserted first is kept."""
    build = postgresql.insert if conn.dialect.name == POSTGRESQL else sqlite.insert
    return build(table).on_conflict_do_nothing(index_elements=[table.c[key]])


def joins_updated_rows(conn: Connection) -> bool:
    """Whether a statement can join an UPDATE's rows (a data-modifying CTE): not on SQLite."""
    return bool(conn.dialect.name == POSTGRESQL)


def locks_lanes(conn: Connection) -> bool:
    """Whether an outbox lane's producers serialise (`insert_after_lane_lock`), so that a
    lane's rows commit in id order: PostgreSQL (SQLite has one writer at a time)."""
    return bool(conn.dialect.name == POSTGRESQL)


def insert_after_lane_lock(table: Table, columns: Sequence[str]) -> Insert:
    """PostgreSQL: `INSERT INTO table (columns) SELECT` of one bind parameter per column (named
    after it), after taking a transaction-scoped advisory lock on the hash of the `lane`
    parameter in the same statement, so a lane's producers serialise until their commit.
    The lock is a materialised CTE the inserted row is selected from: taken before the row is."""
    lock = select(lane_lock().label("locked")).cte("lane_lock").prefix_with("MATERIALIZED")
    values = select(*(bindparam(name, type_=table.c[name].type) for name in columns))
    return insert(table).from_select(list(columns), values.select_from(lock))


def lane_lock(lane: ColumnElement[Any] | None = None) -> ColumnElement[Any]:
    """PostgreSQL: the call that takes the lock of the lane `lane` names (by default the `lane`
    parameter), transaction-scoped (see `insert_after_lane_lock`), for a select list."""
    lane = bindparam("lane", type_=String()) if lane is None else lane
    return func.pg_advisory_xact_lock(func.hashtextextended(lane, 0))


def autoincrement_bigint() -> BigInteger:
    """A 64-bit key that SQLite's AUTOINCREMENT accepts (it needs the exact type INTEGER)."""
    return BigInteger().with_variant(Integer, SQLITE)
