"""What the metrics scrape reads from the store: outbox rows by state, the oldest pending row's
age, and the conversations waiting on a timer (`byoc.ops.metrics` renders them)."""

from __future__ import annotations

import asyncio
import logging

from byoc.ops.metrics import OutboxSnapshot, StoreReadings
from byoc.outbox import rows as outbox_rows
from byoc.store import Database, StoreError, conversations, now_ms

log = logging.getLogger(__name__)

QUERY_TIMEOUT_SECONDS = 2.0


async def store_readings(db: Database) -> StoreReadings | None:
    """The readings, or None (logged) when the store fails or is slow: a scrape never waits
    long and never fails for it."""
    try:
        outbox = await asyncio.wait_for(outbox_snapshot(db), timeout=QUERY_TIMEOUT_SECONDS)
        timers = await asyncio.wait_for(pending_timer_count(db), timeout=QUERY_TIMEOUT_SECONDS)
    except (StoreError, TimeoutError) as exc:
        log.warning("metrics: outbox query failed: %s", exc)
        return None
    return StoreReadings(outbox=outbox, pending_timers=timers)


async def outbox_snapshot(db: Database) -> OutboxSnapshot:
    grouped = await db.run_read(outbox_rows.count_by_state)
    rows = {state: count for state, count, _ in grouped}
    oldest_pending = next((oldest for state, _, oldest in grouped if state == "pending"), None)
    age = max(0.0, (now_ms() - int(oldest_pending)) / 1000) if oldest_pending is not None else 0.0
    return OutboxSnapshot(rows=rows, oldest_pending_age_seconds=age)


async def pending_timer_count(db: Database) -> int:
    """Open conversations waiting on an idle warning or a countdown."""
    return await db.run_read(conversations.count_pending_timers)
