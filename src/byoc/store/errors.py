"""The store's errors: what a caller of `byoc.store` may catch, whatever the database.

    StoreError             unreachable, locked, corrupt, or a constraint broken
    ├── DuplicateError     a unique key already holds the row (a concurrent writer was first)
    ├── ReferenceChanged   a foreign key refused it: a row changed meanwhile
    └── Contention         PostgreSQL aborted the transaction for another's sake

`store_error` is the one place where the drivers' errors (through SQLAlchemy, or raised as
SQLAlchemy's by `byoc.store.compiled`) become these, and with them the `OSError` that a
PostgreSQL server out of reach raises as a connection is opened.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

__all__ = ["Contention", "DuplicateError", "ReferenceChanged", "StoreError", "store_error"]


class StoreError(Exception):
    """The store could not complete an operation (unreachable, locked, corrupt, or a
    constraint broken: a row it refers to deleted meanwhile)."""


class DuplicateError(StoreError):
    """A unique key already holds a row: a concurrent writer got there first."""


class ReferenceChanged(StoreError):
    """A foreign key refused the write because of a transaction that committed while this one
    ran: a row it refers to was deleted (by an erasure, say), or a row referring to one it
    deletes was added. Nothing of it was written; running it again sees the change."""


class Contention(StoreError):
    """PostgreSQL aborted the transaction to break a deadlock or a serialization conflict with
    a concurrent one: nothing of it was written, and running it again is safe."""


# SQLSTATEs of a transaction aborted for another's sake: serialization_failure, deadlock_detected.
CONTENTION_STATES = frozenset({"40001", "40P01"})


# A unique key's refusal: PostgreSQL's SQLSTATE, SQLite's extended result codes.
UNIQUE_VIOLATION = "23505"
SQLITE_UNIQUE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})
# A foreign key's refusal.
FOREIGN_KEY_VIOLATION = "23503"
SQLITE_FOREIGN_KEY = frozenset({"SQLITE_CONSTRAINT_FOREIGNKEY"})


def _violates(
    error: IntegrityError, state: str, sqlite_names: frozenset[str], *, if_unsaid: bool
) -> bool:
    """Whether `error` is the refusal of the constraint kind that PostgreSQL's SQLSTATE
    `state` or SQLite's extended result codes `sqlite_names` name; `if_unsaid` when the
    driver does not say which."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == state)
    name = getattr(error.orig, "sqlite_errorname", None)
    return if_unsaid if name is None else name in sqlite_names


def store_error(exc: SQLAlchemyError | OSError) -> StoreError:
    """The one place where driver errors become store errors."""
    if isinstance(exc, OSError):  # refused, timed out, no route: asyncpg's, unwrapped
        return StoreError(f"database unreachable: {exc.__class__.__name__}: {exc}")
    if isinstance(exc, IntegrityError):
        # A unique key's refusal, not another constraint's (NOT NULL, a foreign key); a
        # duplicate when the driver does not say which.
        if _violates(exc, UNIQUE_VIOLATION, SQLITE_UNIQUE, if_unsaid=True):
            return DuplicateError(f"duplicate key: {exc.orig}")
        if _violates(exc, FOREIGN_KEY_VIOLATION, SQLITE_FOREIGN_KEY, if_unsaid=False):
            return ReferenceChanged(f"a referenced row changed meanwhile: {exc.orig}")
        return StoreError(f"constraint violated (a row it refers to changed?): {exc.orig}")
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in CONTENTION_STATES:
        return Contention(f"aborted by contention: {exc.orig}")
    return StoreError(f"database error: {exc.__class__.__name__}: {exc}")
