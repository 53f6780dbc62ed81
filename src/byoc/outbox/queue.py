"""Outbox rows on an `AsyncConnection`: the functions of `byoc.outbox.rows`, for code that
holds one. The SQL lives once, in `rows`."""

from __future__ import annotations

from byoc.outbox import rows
from byoc.outbox.rows import DEAD, PENDING
from byoc.store.repositories import on_async

__all__ = ["DEAD", "PENDING"]

enqueue = on_async(rows.enqueue)
claim_due = on_async(rows.claim_due)
complete = on_async(rows.complete)
complete_many = on_async(rows.complete_many)
reschedule = on_async(rows.reschedule)
bury = on_async(rows.bury)
release_claims = on_async(rows.release_claims)
list_rows = on_async(rows.list_rows)
redrive = on_async(rows.redrive)
