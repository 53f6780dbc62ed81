"""The outbox worker: claims due rows, runs their handler, settles each row.

Handlers are plain coroutines keyed by row kind (`byoc.delivery` registers one per kind of
`byoc.outbox.kinds`). Each returns one `Outcome`: `Settled` (delivered), `Retry` (the other side
is unavailable) or `DeadLetter` (it refused). The worker alone decides what a `Retry` costs:
the backoff, and when the retry budget is spent. A handler that raises has a bug: its row is
retried like a `Retry`, so one bad delivery does not stop the queue.

The worker is a continuous pipeline. Up to `max_in_flight` deliveries run at once, each its own
task; a slow delivery holds up nothing but its own lane. When deliveries finish, their outcomes
queue up and wake the loop, which then runs one write transaction (a "pass") that settles every
row finished so far (deletes it, plus whatever its handler wants written with that) and claims
new rows for the free capacity, at most `batch_size` per claim. Under load, passes run back to
back and each settles whatever finished during the one before: one write for many
deliveries. (A retry or a dead letter, rare, writes its own transaction.)

Per-lane order: `claim_due` only ever claims a lane's oldest pending row, and only when no live
claim is on it; a row claimed at its insert (`rows.enqueue_claimed`), only when nothing older
of its lane is pending. A row in flight stays claimed, so its lane is skipped, by this
instance and by any other sharing the table; the lane's next row becomes claimable only once
the previous row was deleted by a committed settle transaction (or rescheduled, buried, or its
claim released). So a lane never has two rows in flight, and its rows are delivered in id
order (as long as a claim outlives its delivery: a handler is cut off at half the lease).

`stop()` claims nothing more, gives the deliveries in flight a grace period, settles those that
finished, cancels the rest and releases every claim this worker holds: a row whose delivery was
cancelled stays pending, claimable at once by the next worker.

Every row claimed, fresh or by a pass, gets what its kind's preload gives for its delivery, in
the claiming transaction: read then, or taken from what a fresh row's intake held
(`byoc.outbox.preloads`).

A `Settled` may carry a `write`, run in the transaction that deletes its row (a `Together`
write once for all the rows of the pass that share it), and an `after_commit` callback run
once that transaction has committed (e.g. to publish what was written). On PostgreSQL a pass's
writes cost one round trip per statement, whatever the number of rows (`rows.settle`).

Leases, due times, backoff and polls are on the worker's `Clock`; cut-offs and stop grace are real.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Literal

from sqlalchemy import Connection

from byoc.clock import Clock, SystemClock
from byoc.ops.logging import bind
from byoc.outbox import rows
from byoc.outbox.outcome import (
    AfterCommit,
    DeadLetter,
    Outcome,
    Retry,
    RetryPolicy,
    Settled,
    Write,
    joined,
)
from byoc.outbox.preloads import Preload, with_contexts
from byoc.store import Database
from byoc.store.records import OutboxRow

log = logging.getLogger(__name__)

Handler = Callable[[OutboxRow], Awaitable[Outcome]]
# Runs inside the transaction that buries the row (synchronous: see `Database.run_write`).
DeadLetterHook = Callable[[Connection, OutboxRow, str], None]


@dataclass
class WorkerStats:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    expired: int = 0


@dataclass(frozen=True)
class _Finished:
    """A row done with (delivered, or dropped as stale), waiting to be settled."""

    row_id: int
    how: Literal["delivered", "expired"]
    write: Write = None
    after_commit: AfterCommit | None = None


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
        max_in_flight: int = 256,
        lease_seconds: float = 30.0,
        stop_grace_seconds: float = 5.0,
        dead_letter_hooks: Mapping[str, DeadLetterHook] | None = None,
        preloads: Mapping[str, Preload] | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        observer: Callable[[str], None] | None = None,
    ) -> None:
        if batch_size < 1 or max_in_flight < 1:
            raise ValueError("batch_size and max_in_flight must be at least 1")
        self._db = db
        self._handlers = handlers
        self._owner = owner
        self._policy = policy
        self._poll_interval = poll_interval
        self._batch_size = batch_size  # most rows claimed by one pass
        self._max_in_flight = max_in_flight  # most deliveries running at once
        self._lease_ms = int(lease_seconds * 1000)
        self._stop_grace = stop_grace_seconds
        self._dead_letter_hooks = dead_letter_hooks or {}
        self._preloads = preloads or {}
        self._rng = rng or random.Random()
        self._clock: Clock = clock or SystemClock()
        self._wakeup = asyncio.Event()  # something enqueued, or a delivery finished
        self._stopped = asyncio.Event()
        self._stopping = False
        self._in_flight: dict[int, asyncio.Task[None]] = {}  # row id -> its delivery
        self._finished: list[_Finished] = []  # delivered, not yet settled
        # One pass at a time: `stop()` takes it to be sure no pass is starting deliveries.
        self._pass_lock = asyncio.Lock()
        self.stats = WorkerStats()
        # Told each attempt's result: delivered, expired, retried, dead_lettered (the metrics).
        self._observer = observer

    @property
    def in_flight(self) -> int:
        """Deliveries running now."""
        return len(self._in_flight)

    def wake(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wakeup.set()

    def fresh_claim(self) -> rows.Claim | None:
        """The claim a row may take at its insert (`rows.enqueue_claimed`), so that it skips a
        claim of its own; None when this worker has no room or is stopping. The transaction
        that inserts it hands the row to `take_fresh`, and to `dispatch` once it has committed
        (if it rolls back, so does the claim). Lane order holds as for `claim_due`."""
        if self._stopping or len(self._in_flight) >= self._max_in_flight:
            return None
        return rows.Claim(self._owner, self._clock.now_ms() + self._lease_ms)

    def take_fresh(self, conn: Connection, row: OutboxRow, held: object = None) -> OutboxRow:
        """A row claimed at its insert, with what its kind's preload, if any, gives for it from
        `held` (what the intake has in hand, in terms the preload knows)."""
        if row.kind not in self._preloads:
            return row
        return with_contexts(conn, [replace(row, context=held)], self._preloads)[0]

    def dispatch(self, row: OutboxRow) -> None:
        """Deliver a fresh row (`take_fresh`) now that its transaction has committed."""
        if self._stopping:
            return  # `stop()` releases this worker's claims; the row waits for the next one
        self._start(row)

    async def run(self) -> None:
        """Deliver until `stop()`: settle what finished and claim more whenever a delivery
        finishes or something is enqueued, and at least every `poll_interval`."""
        try:
            while not self._stopping:
                # Both before the pass: a wake-up, or time, passing during it is not lost.
                self._wakeup.clear()
                next_poll = self._clock.monotonic() + self._poll_interval
                try:
                    _, more = await self._pass(claim=True)
                except Exception:
                    log.exception("outbox: settle/claim failed; retrying after the poll interval")
                    await self._clock.wait(self._stopped, until=next_poll)
                    continue
                if more or self._finished:
                    continue
                await self._clock.wait(self._wakeup, until=next_poll)
        except asyncio.CancelledError:
            if not self._stopping:
                # Cancelled without `stop()`: the deliveries go down with the loop; their rows
                # stay claimed until the lease ends, then are delivered again.
                for task in list(self._in_flight.values()):
                    task.cancel()
            raise

    async def run_once(self) -> int:
        """One pass (settle what finished, claim due rows), then deliver what it claimed and
        settle that. Returns how many rows were claimed. Not to be mixed with `run()`."""
        claimed, _ = await self._pass(claim=True)
        if not claimed:
            return 0
        tasks = [task for row in claimed if (task := self._in_flight.get(row.id)) is not None]
        if tasks:
            await asyncio.wait(tasks)
        await self._pass(claim=False)
        return len(claimed)

    async def stop(self) -> None:
        """Stop claiming; let the deliveries in flight finish (for up to `stop_grace_seconds`)
        and settle them; cancel the rest; hand back every claim this instance holds, so the
        rows not delivered are claimable at once by whoever runs next."""
        self._stopping = True
        self._stopped.set()
        self._wakeup.set()
        async with self._pass_lock:
            pass  # a pass under way has started its deliveries; no later pass claims
        running = list(self._in_flight.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=self._stop_grace)
            if pending:
                log.warning("outbox: cancelling %d deliveries still running at stop", len(pending))
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=self._stop_grace)
        try:
            await self._pass(claim=False)
        finally:
            await self._db.run_bulk_write(rows.release_claims, self._owner)  # all pending rows

    async def _pass(self, *, claim: bool) -> tuple[list[OutboxRow], bool]:
        """One write transaction: settle every finished row, claim rows for the free capacity
        (unless stopping), then start their deliveries. Returns the rows claimed, and whether
        another pass straight away may claim more (a full batch came back, capacity is left)."""
        async with self._pass_lock:
            limit = 0
            if claim and not self._stopping:
                limit = min(self._batch_size, self._max_in_flight - len(self._in_flight))
            finished, self._finished = self._finished, []
            if not finished and limit <= 0:
                return [], False
            row_ids = [f.row_id for f in finished]
            writes = joined([f.write for f in finished])

            def settle_and_claim(conn: Connection) -> list[OutboxRow]:
                rows.settle(conn, row_ids, writes)
                return self._claim(conn, limit) if limit > 0 else []

            try:
                claimed = await self._db.run_write(settle_and_claim)
            except Exception:
                if not finished:
                    raise
                # One settle write may be at fault (a bug, a constraint): settle each row on
                # its own, so one bad row does not hold back the others, nor the queue.
                log.exception("outbox: settling %d rows together failed", len(finished))
                if not await self._settle_each(finished):
                    raise
                self._wakeup.set()  # nothing was claimed: claim on the next pass
                return [], False
            self._settled(finished)
            for row in claimed:
                self._start(row)
            more = 0 < limit == len(claimed) and len(self._in_flight) < self._max_in_flight
            return claimed, more

    def _claim(self, conn: Connection, limit: int) -> list[OutboxRow]:
        if self._stopping:
            return []
        now = self._clock.now_ms()
        claimed = rows.claim_due(
            conn, owner=self._owner, limit=limit, lease_ms=self._lease_ms, now=now
        )
        return with_contexts(conn, claimed, self._preloads)

    async def _settle_each(self, finished: Sequence[_Finished]) -> bool:
        """Settle rows one transaction each; True when at least one could be settled. A row
        that cannot be stays claimed until its lease ends, then is delivered again."""

        def settle_one(item: _Finished, conn: Connection) -> None:
            rows.complete_many(conn, [item.row_id])
            for write in joined([item.write]):
                write(conn)

        results = await asyncio.gather(
            *(self._db.run_write(partial(settle_one, item)) for item in finished),
            return_exceptions=True,
        )
        settled = []
        for item, result in zip(finished, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "outbox: row %s was delivered but could not be settled; it will be"
                    " delivered again once its lease ends: %r",
                    item.row_id,
                    result,
                )
            else:
                settled.append(item)
        self._settled(settled)
        return bool(settled)

    def _settled(self, finished: Sequence[_Finished]) -> None:
        """After the commit that deleted these rows: count them, run their callbacks."""
        for item in finished:
            if item.how == "delivered":
                self.stats.delivered += 1
            else:
                self.stats.expired += 1
            self._observe(item.how)
            if item.after_commit is not None:
                try:
                    item.after_commit()
                except Exception:
                    log.exception("outbox: after-commit callback of row %s failed", item.row_id)

    def _start(self, row: OutboxRow) -> None:
        # A context of its own: a row dispatched from a request must not log under that
        # request's id or become a child of its trace span.
        self._in_flight[row.id] = asyncio.create_task(
            self._run_delivery(row), name=f"outbox-row-{row.id}", context=contextvars.Context()
        )

    async def _run_delivery(self, row: OutboxRow) -> None:
        """A delivery task: deliver, queue the outcome for the next pass, wake the loop."""
        try:
            finished = await self._deliver(row)
            if finished is not None:
                self._finished.append(finished)
        except Exception:
            # Only the store can fail here (rescheduling or burying the row).
            log.exception(
                "outbox: row %s: could not record its outcome; it stays claimed until its"
                " lease ends",
                row.id,
            )
        finally:
            self._in_flight.pop(row.id, None)
            self._wakeup.set()

    async def _deliver(self, row: OutboxRow) -> _Finished | None:
        """Run the row's handler. When the row is done with: the outcome and what to do with
        its deletion; None when it was rescheduled or buried here."""
        # Log lines about this row name its conversation (lanes are `<target>:<conversation>`).
        bind(conversation_id=row.lane.partition(":")[2] or None)
        expires_at = row.payload.get("expires_at")
        if isinstance(expires_at, int) and self._clock.now_ms() > expires_at:
            # Ephemeral signals (typing) are worthless once stale; drop rather than replay.
            return _Finished(row.id, "expired")
        handler = self._handlers.get(row.kind)
        if handler is None:
            await self._bury(row, f"no handler for outbox kind {row.kind!r}")
            return None
        try:
            # `asyncio.timeout`, not `wait_for`: the delivery is a task already, no second one.
            async with asyncio.timeout(self._lease_ms / 1000 / 2):
                outcome = await handler(row)
        except TimeoutError:
            outcome = Retry("handler timed out")
        except Exception as exc:  # a bug in a handler must not stop the queue
            log.exception("outbox: handler for %s crashed on row %s", row.kind, row.id)
            outcome = Retry(f"{exc.__class__.__name__}: {exc}")
        match outcome:
            case Settled(write=write, after_commit=after_commit):
                return _Finished(row.id, "delivered", write, after_commit)
            case Retry(reason=reason, retry_after=retry_after):
                await self._retry_or_bury(row, reason, retry_after)
            case DeadLetter(reason=reason):
                await self._bury(row, reason)
        return None

    async def _retry_or_bury(self, row: OutboxRow, error: str, retry_after: float | None) -> None:
        if row.attempts + 1 >= self._policy.max_attempts:
            await self._bury(row, f"retry budget spent ({row.attempts + 1} attempts): {error}")
            return
        delay = self._policy.delay_ms(row.attempts, retry_after, self._rng)
        log.warning("outbox: row %s (%s) retry in %d ms: %s", row.id, row.kind, delay, error)
        now = self._clock.now_ms()
        await self._db.run_write(
            partial(rows.reschedule, row_id=row.id, delay_ms=delay, error=error, now=now)
        )
        self.stats.retried += 1
        self._observe("retried")

    async def _bury(self, row: OutboxRow, error: str) -> None:
        log.error("outbox: row %s (%s) dead-lettered: %s", row.id, row.kind, error)
        hook = self._dead_letter_hooks.get(row.kind)

        def tx(conn: Connection) -> None:
            rows.bury(conn, row.id, error=error, now=self._clock.now_ms())
            if hook is not None:
                hook(conn, row, error)

        await self._db.run_write(tx)
        self.stats.dead += 1
        self._observe("dead_lettered")

    def _observe(self, result: str) -> None:
        if self._observer is not None:
            self._observer(result)
