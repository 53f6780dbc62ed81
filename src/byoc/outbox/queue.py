"""Outbox rows on an `AsyncConnection`, for the CLI (listing and re-driving); the worker and
the services use `byoc.outbox.rows` inside their transaction functions. The SQL lives once,
in `rows`."""

from __future__ import annotations

from byoc.outbox import rows
from byoc.outbox.rows import DEAD, PENDING
from byoc.store.repositories import on_async

__all__ = ["DEAD", "PENDING"]

list_rows = on_async(rows.list_rows)
redrive = on_async(rows.redrive)
