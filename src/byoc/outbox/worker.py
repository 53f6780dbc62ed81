"""The outbox worker: claims due rows, runs their handler, settles each row.

Handlers are plain coroutines keyed by row kind. The worker alone decides retries: a handler
signals only what happened (`RetryLater` or `PermanentFailure`, or returns for success).

Rows delivered in one claimed batch are settled together, in one transaction, once the batch is
done, and the same transaction claims the next batch: a lane's next row cannot be claimed before
the batch ends anyway, so nothing waits longer, and the store sees one write per batch instead
of two per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial

from sqlalchemy import Connection

from byoc.ops.logging import bind
from byoc.outbox import rows as queue
from byoc.outbox.errors import PermanentFailure, RetryLater
from byoc.store import Database, StoreError, now_ms
from byoc.store.records import OutboxRow

log = logging.getLogger(__name__)

# What a handler wants written once its row is delivered: run in the transaction that deletes
# the row (synchronous: see `Database.run_write`), so a delivery costs one write, not two.
Settle = Callable[[Connection], None]
Handler = Callable[[OutboxRow], Awaitable[Settle | None]]
# Runs inside the transaction that buries the row (synchronous: see `Database.run_write`).
DeadLetterHook = Callable[[Connection, OutboxRow, str], None]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 12
    base_seconds: float = 0.5
    max_seconds: float = 60.0

    def delay_ms(self, attempts: int, retry_after: float | None, rng: random.Random) -> int:
        """Exponential backoff with jitter; a server's Retry-After is a floor, not a suggestion."""
        ceiling = min(self.max_seconds, self.base_seconds * (2**attempts))
        delay = ceiling * rng.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_seconds * 10))
        return int(delay * 1000)


@dataclass
class WorkerStats:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    expired: int = 0


class OutboxWorker:
    def __init__(
        self,
        db: Database,
        handlers: Mapping[str, Handler],
        *,
        owner: str,
        policy: RetryPolicy,
        poll_interval: float = 1.0,
        batch_size: int = 64,
        lease_seconds: float = 30.0,
        dead_letter_hooks: Mapping[str, DeadLetterHook] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._db = db
        self._handlers = handlers
        self._owner = owner
        self._policy = policy
        self._poll_interval = poll_interval
        self._batch_size = batch_size
        self._lease_ms = int(lease_seconds * 1000)
        self._dead_letter_hooks = dead_letter_hooks or {}
        self._rng = rng or random.Random()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._claimed: list[OutboxRow] = []  # claimed with the last settlement, not yet delivered
        self.stats = WorkerStats()

    def wake(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wakeup.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                processed = await self.run_once()
            except StoreError:
                log.exception("outbox: store unavailable; retrying after the poll interval")
                processed = 0
            if processed:
                continue
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll_interval)

    async def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()
        await self._db.run_write(partial(queue.release_claims, owner=self._owner))

    def _claim(self, conn: Connection) -> list[OutboxRow]:
        if self._stopping:
            return []
        return queue.claim_due(
            conn,
            owner=self._owner,
            limit=self._batch_size,
            lease_ms=self._lease_ms,
            skip_locked=not self._db.is_sqlite,
        )

    async def run_once(self) -> int:
        """Deliver one batch: the one claimed with the last settlement, or a fresh claim."""
        rows, self._claimed = self._claimed, []
        if not rows:
            rows = await self._db.run_write(self._claim)
        if not rows:
            return 0
        outcomes = await asyncio.gather(*(self._deliver(row) for row in rows))
        done = [row.id for row, outcome in zip(rows, outcomes, strict=True) if outcome]
        settles = [settle for outcome in outcomes if outcome and (settle := outcome[1])]

        def settle_and_claim(conn: Connection) -> list[OutboxRow]:
            queue.complete_many(conn, done)
            for settle in settles:
                settle(conn)
            return self._claim(conn)

        if done:
            self._claimed = await self._db.run_write(settle_and_claim)
            self.stats.delivered += sum(1 for o in outcomes if o and o[0] == "delivered")
            self.stats.expired += sum(1 for o in outcomes if o and o[0] == "expired")
        return len(rows)

    async def _deliver(self, row: OutboxRow) -> tuple[str, Settle | None] | None:
        """Run the row's handler. When the row is done with: the outcome and what to write
        with its deletion; None when it was rescheduled or buried here."""
        # Log lines about this row name its conversation (lanes are `<target>:<conversation>`).
        bind(conversation_id=row.lane.partition(":")[2] or None)
        expires_at = row.payload.get("expires_at")
        if isinstance(expires_at, int) and now_ms() > expires_at:
            # Ephemeral signals (typing) are worthless once stale; drop rather than replay.
            return "expired", None
        handler = self._handlers.get(row.kind)
        try:
            if handler is None:
                raise PermanentFailure(f"no handler for outbox kind {row.kind!r}")
            settle = await asyncio.wait_for(handler(row), timeout=self._lease_ms / 1000 / 2)
        except RetryLater as exc:
            await self._retry_or_bury(row, str(exc), exc.retry_after)
        except TimeoutError:
            await self._retry_or_bury(row, "handler timed out", None)
        except PermanentFailure as exc:
            await self._bury(row, str(exc))
        except Exception as exc:  # a bug in a handler must not stop the queue
            log.exception("outbox: handler for %s crashed on row %s", row.kind, row.id)
            await self._retry_or_bury(row, f"{exc.__class__.__name__}: {exc}", None)
        else:
            return "delivered", settle
        return None

    async def _retry_or_bury(self, row: OutboxRow, error: str, retry_after: float | None) -> None:
        if row.attempts + 1 >= self._policy.max_attempts:
            await self._bury(row, f"retry budget spent ({row.attempts + 1} attempts): {error}")
            return
        delay = self._policy.delay_ms(row.attempts, retry_after, self._rng)
        log.warning("outbox: row %s (%s) retry in %d ms: %s", row.id, row.kind, delay, error)
        await self._db.run_write(
            partial(queue.reschedule, row_id=row.id, delay_ms=delay, error=error)
        )
        self.stats.retried += 1

    async def _bury(self, row: OutboxRow, error: str) -> None:
        log.error("outbox: row %s (%s) dead-lettered: %s", row.id, row.kind, error)
        hook = self._dead_letter_hooks.get(row.kind)

        def tx(conn: Connection) -> None:
            queue.bury(conn, row.id, error=error)
            if hook is not None:
                hook(conn, row, error)

        await self._db.run_write(tx)
        self.stats.dead += 1
