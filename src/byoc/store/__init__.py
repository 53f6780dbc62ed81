"""Persistence: one SQL subset that runs on SQLite (the embedded default) and PostgreSQL.

The one way in: named queries, one module per concept (`tenants`, `clients`, `channels`,
`customers`, `conversations`, `messages`, `attachments`, `privacy` for retention and erasure,
`locks` for waiting on one another; outbox rows in `byoc.outbox.rows`), each a synchronous
function on the caller's `Connection`, run by `Database.run_read` / `run_write` alone
(`await db.run_read(channels.get_channel, channel_id)`) or several inside one transaction
function. Where SQLite and PostgreSQL differ is decided in `dialect` alone; what a caller may
catch is the tree in `errors`.

Statements on the request paths are built once, at import, with bind parameters, and run
through `compiled.execute`: building a Core statement per call (and its cache key) costs more
than SQLite takes to run it.
"""

from sqlalchemy import Connection

from byoc.store.db import Database, now_ms
from byoc.store.errors import Contention, DuplicateError, ReferenceChanged, StoreError

__all__ = [
    "Connection",
    "Contention",
    "Database",
    "DuplicateError",
    "ReferenceChanged",
    "StoreError",
    "now_ms",
]
