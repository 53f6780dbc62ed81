"""Waiting for one another on a key until the commit, where no row or unique key makes a
check-then-act step safe: opening a customer's conversation, an upload's quota check.

On PostgreSQL, where transactions run side by side, a transaction-scoped advisory lock on the
key's hash (`dialect.lane_lock`, the outbox lanes' kind); nothing on SQLite, whose one writer
at a time serialises these transactions already. Named queries on the caller's `Connection`.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from byoc.store.compiled import execute
from byoc.store.dialect import lane_lock, locks_lanes

_WAIT_FOR_OTHERS = select(lane_lock())


def wait_for_others(conn: Connection, key: str) -> bool:
    """Until this transaction ends, any other that calls this with `key` waits here. True
    when this one may have waited itself (PostgreSQL): what it read before may be stale."""
    if not locks_lanes(conn):
        return False
    execute(conn, _WAIT_FOR_OTHERS, {"lane": key})
    return True
