"""The outbox worker as a continuous pipeline, on a real store (SQLite, and PostgreSQL when
BYOC_TEST_POSTGRES_URL is set).

What must hold: a slow delivery holds up only its own lane; a lane's rows are delivered one at
a time, in order, each only after the one before was settled; more lanes than one claim's batch
are in flight at once, never more than `max_in_flight`; `stop()` settles what finished, hands
back the rest, and a new worker delivers each remaining row exactly once; a handler's
after-commit callback runs once its row's deletion has committed; one settle write that fails
holds back no other row; a retry waits out its backoff and a dead worker's claim its lease.

The workers run on a `ManualClock`: backoff, leases and the poll interval pass only when a test
moves it forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, closing
from typing import Any

import pytest
from sqlalchemy import Connection, delete, func, select

from byoc.clock import ManualClock
from byoc.outbox import rows as outbox_rows
from byoc.outbox.outcome import Outcome, Retry, RetryPolicy, Settled, Together
from byoc.outbox.worker import OutboxWorker
from byoc.store import Database, migrations
from byoc.store import schema as t
from byoc.store.records import OutboxRow

KIND = "test.deliver"
WAIT = 10.0  # seconds: a bound on every wait, far above what any of them takes
POLICY = RetryPolicy()

HandlerFn = Callable[[OutboxRow], Awaitable[Outcome]]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await migrations.upgrade(database)
    # The PostgreSQL database is shared by the module.
    await database.run_write(lambda conn: conn.execute(delete(t.outbox)))
    try:
        yield database
    finally:
        await database.close()


def worker_for(
    db: Database, handler: HandlerFn, clock: ManualClock, *, owner: str = "w1", **options: Any
) -> OutboxWorker:
    return OutboxWorker(db, {KIND: handler}, owner=owner, policy=POLICY, clock=clock, **options)


@asynccontextmanager
async def running(*workers: OutboxWorker) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        yield
    finally:
        for worker in workers:
            await worker.stop()
        # `stop()` ends `run()`: no cancellation needed.
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=WAIT)


async def enqueue(db: Database, items: list[tuple[str, int]], clock: ManualClock) -> None:
    def tx(conn: Connection) -> None:
        for lane, n in items:
            outbox_rows.enqueue(conn, lane=lane, kind=KIND, payload={"n": n}, now=clock.now_ms())

    await db.run_write(tx)


async def table(db: Database) -> list[tuple[int, str, int, str | None, int | None]]:
    """Every row: id, lane, n, claimed_by, claimed_until."""

    def read(conn: Connection) -> list[tuple[int, str, int, str | None, int | None]]:
        rows = conn.execute(
            select(
                t.outbox.c.id,
                t.outbox.c.lane,
                t.outbox.c.payload,
                t.outbox.c.claimed_by,
                t.outbox.c.claimed_until,
            ).order_by(t.outbox.c.id)
        )
        return [
            (r.id, r.lane, int(json.loads(r.payload)["n"]), r.claimed_by, r.claimed_until)
            for r in rows
        ]

    return await db.run_read(read)


async def until(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), timeout=WAIT)


async def until_advancing(event: asyncio.Event, clock: ManualClock) -> None:
    """Wait for `event`, moving the clock a second forward whenever things go quiet: past a
    first retry's backoff and a poll interval, far from the lease of a delivery in flight."""
    assert POLICY.base_seconds <= 1.0 < 30.0
    async with asyncio.timeout(WAIT):
        while not event.is_set():
            clock.advance(1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=0.05)


class Countdown:
    def __init__(self, count: int) -> None:
        self.count = count
        self.done = asyncio.Event()
        if count <= 0:
            self.done.set()

    def tick(self) -> None:
        self.count -= 1
        if self.count <= 0:
            self.done.set()


async def test_a_slow_delivery_holds_up_no_other_lane(db: Database, clock: ManualClock) -> None:
    # The slow lane's row is the oldest: it is in the first claim, with others.
    await enqueue(db, [("t:slow", 0)] + [(f"t:b{i}", 0) for i in range(50)], clock)
    release = asyncio.Event()
    slow_started = asyncio.Event()
    slow_settled = asyncio.Event()
    others = Countdown(50)

    async def handler(row: OutboxRow) -> Settled:
        if row.lane == "t:slow":
            slow_started.set()
            await release.wait()
            return Settled(after_commit=slow_settled.set)
        return Settled(after_commit=others.tick)

    worker = worker_for(db, handler, clock, batch_size=16)
    async with running(worker):
        await until(slow_started)
        await until(others.done)
        assert worker.stats.delivered == 50
        # Every other row was settled (deleted) while the slow one is still in flight.
        remaining = await table(db)
        assert [(lane, owner) for _, lane, _, owner, _ in remaining] == [("t:slow", "w1")]
        assert worker.in_flight == 1
        release.set()
        await until(slow_settled)
        assert await table(db) == []
        assert worker.stats.delivered == 51


async def test_each_lane_is_delivered_in_order_one_row_at_a_time(
    db: Database, clock: ManualClock
) -> None:
    rng = random.Random(20240611)
    lanes = [f"t:l{i}" for i in range(8)]
    per_lane = 25
    await enqueue(db, [(lane, n) for n in range(per_lane) for lane in lanes], clock)
    delivered: dict[str, list[int]] = defaultdict(list)
    busy: set[str] = set()
    problems: list[str] = []
    retries = 0
    settled = Countdown(len(lanes) * per_lane)

    def earlier_rows(conn: Connection, row: OutboxRow) -> int:
        query = select(func.count()).where(t.outbox.c.lane == row.lane, t.outbox.c.id < row.id)
        return int(conn.execute(query).scalar_one())

    async def handler(row: OutboxRow) -> Outcome:
        nonlocal retries
        if row.lane in busy:
            problems.append(f"two rows of {row.lane} in flight at once")
        busy.add(row.lane)
        try:
            # What another connection sees: every earlier row of the lane is gone, committed.
            if earlier := await db.run_read(lambda conn: earlier_rows(conn, row)):
                problems.append(f"row {row.id} claimed with {earlier} earlier rows pending")
            await asyncio.sleep(rng.uniform(0, 0.004))
            if row.attempts == 0 and rng.random() < 0.1:
                retries += 1
                return Retry("not now")
            delivered[row.lane].append(int(row.payload["n"]))
        finally:
            busy.discard(row.lane)
        return Settled(after_commit=settled.tick)

    # Two workers share the table, as two instances would.
    first = worker_for(db, handler, clock, owner="w1", batch_size=4, max_in_flight=6)
    second = worker_for(db, handler, clock, owner="w2", batch_size=3, max_in_flight=5)
    async with running(first, second):
        await until_advancing(settled.done, clock)

    assert problems == []
    assert dict(delivered) == {lane: list(range(per_lane)) for lane in lanes}
    assert retries > 0
    assert first.stats.delivered + second.stats.delivered == len(lanes) * per_lane
    assert first.stats.retried + second.stats.retried == retries
    assert first.stats.dead + second.stats.dead == 0
    assert await table(db) == []


async def test_more_lanes_than_a_batch_are_in_flight_up_to_the_cap(
    db: Database, clock: ManualClock
) -> None:
    lanes = 150
    cap = 120
    await enqueue(db, [(f"t:c{i}", 0) for i in range(lanes)], clock)
    release = asyncio.Event()
    concurrent = 0
    most = 0
    at_cap = asyncio.Event()
    settled = Countdown(lanes)

    async def handler(row: OutboxRow) -> Settled:
        nonlocal concurrent, most
        concurrent += 1
        most = max(most, concurrent)
        if concurrent == cap:
            at_cap.set()
        try:
            await release.wait()
        finally:
            concurrent -= 1
        return Settled(after_commit=settled.tick)

    worker = worker_for(db, handler, clock, batch_size=64, max_in_flight=cap)
    async with running(worker):
        await until(at_cap)
        # Woken with no capacity left: the worker claims nothing more.
        worker.wake()
        await asyncio.sleep(0.1)
        assert most == cap > 64
        assert worker.in_flight == cap
        release.set()
        await until(settled.done)
    assert most == cap
    assert worker.stats.delivered == lanes
    assert await table(db) == []


async def test_stop_settles_what_finished_and_hands_back_the_rest(
    db: Database, clock: ManualClock
) -> None:
    quick = [f"t:q{i}" for i in range(5)]  # delivered before stop
    stuck = [f"t:s{i}" for i in range(5)]  # in flight at stop, never finishing: cancelled
    late = "t:late"  # in flight at stop, finishing during the grace period
    await enqueue(db, [(lane, n) for n in range(3) for lane in [*quick, *stuck, late]], clock)
    delivered: list[tuple[str, int]] = []
    quick_settled = Countdown(len(quick) * 3)
    stuck_started = Countdown(len(stuck))
    late_started = asyncio.Event()
    late_may_finish = asyncio.Event()
    never = asyncio.Event()
    cancelled: list[str] = []

    async def first_handler(row: OutboxRow) -> Settled:
        if row.lane in stuck:
            stuck_started.tick()
            try:
                await never.wait()
            except asyncio.CancelledError:
                cancelled.append(row.lane)
                raise
        if row.lane == late:
            late_started.set()
            await late_may_finish.wait()
        delivered.append((row.lane, int(row.payload["n"])))
        return Settled(after_commit=quick_settled.tick) if row.lane in quick else Settled()

    first = worker_for(db, first_handler, clock, owner="w1", stop_grace_seconds=0.5)
    task = asyncio.create_task(first.run())
    await until(quick_settled.done)
    await until(stuck_started.done)
    await until(late_started)
    stopping = asyncio.create_task(first.stop())
    await asyncio.sleep(0)  # stop() has begun: no more claims
    late_may_finish.set()
    await asyncio.wait_for(stopping, timeout=WAIT)
    await asyncio.wait_for(task, timeout=WAIT)  # run() ended by itself

    assert sorted(cancelled) == stuck
    assert first.in_flight == 0
    remaining = await table(db)
    # Nothing lost: every row not delivered is pending, and nobody's claim is on it.
    assert sorted((lane, n) for _, lane, n, _, _ in remaining) == sorted(
        [(lane, n) for lane in stuck for n in range(3)] + [(late, 1), (late, 2)]
    )
    assert all(owner is None and until_ is None for *_, owner, until_ in remaining)
    assert (late, 0) in delivered
    assert first.stats.delivered == len(quick) * 3 + 1

    # A new worker delivers the rest, each row once.
    rest = Countdown(len(remaining))

    async def second_handler(row: OutboxRow) -> Settled:
        delivered.append((row.lane, int(row.payload["n"])))
        return Settled(after_commit=rest.tick)

    second = worker_for(db, second_handler, clock, owner="w2")
    async with running(second):
        await until(rest.done)
    assert await table(db) == []
    everything = [(lane, n) for lane in [*quick, *stuck, late] for n in range(3)]
    assert sorted(delivered) == sorted(everything)  # each exactly once
    for lane in [*quick, *stuck, late]:
        assert [n for name, n in delivered if name == lane] == [0, 1, 2]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_after_commit_runs_once_the_row_is_gone(
    db: Database, db_url: str, clock: ManualClock
) -> None:
    await enqueue(db, [("t:a", 0), ("t:b", 0), ("t:a", 1)], clock)
    path = db_url.removeprefix("sqlite:///")
    seen: list[tuple[int, int, int]] = []  # row id, rows with its id in the tx, after commit

    def committed_count(row_id: int) -> int:
        # Another connection sees only what was committed.
        with closing(sqlite3.connect(path)) as other:
            query = "SELECT COUNT(*) FROM outbox WHERE id = ?"
            (count,) = other.execute(query, (row_id,)).fetchone()
        return int(count)

    async def handler(row: OutboxRow) -> Settled:
        in_tx: list[int] = []

        def write(conn: Connection) -> None:
            # Runs in the transaction that deletes the row, after the deletion.
            query = select(func.count()).where(t.outbox.c.id == row.id)
            in_tx.append(int(conn.execute(query).scalar_one()))
            assert committed_count(row.id) == 1  # not committed yet

        def after_commit() -> None:
            seen.append((row.id, in_tx[0], committed_count(row.id)))

        return Settled(write=write, after_commit=after_commit)

    worker = worker_for(db, handler, clock)
    assert await worker.run_once() == 2  # one row per lane
    assert await worker.run_once() == 1
    assert await worker.run_once() == 0
    assert [(in_tx, after) for _, in_tx, after in seen] == [(0, 0)] * 3
    assert await table(db) == []
    assert worker.stats.delivered == 3


async def test_a_failing_settle_write_holds_back_no_other_row(
    db: Database, clock: ManualClock
) -> None:
    await enqueue(db, [(f"t:f{i}", 0) for i in range(5)], clock)
    after: list[str] = []

    async def handler(row: OutboxRow) -> Settled:
        def write(conn: Connection) -> None:
            if row.lane == "t:f2":
                raise RuntimeError("a bug in a settle write")

        return Settled(write=write, after_commit=lambda: after.append(row.lane))

    worker = worker_for(db, handler, clock)
    assert await worker.run_once() == 5  # all five settle in one pass, which fails
    assert sorted(after) == ["t:f0", "t:f1", "t:f3", "t:f4"]
    assert worker.stats.delivered == 4
    # The row whose write failed stays, claimed, to be delivered again once its lease ends.
    assert [(lane, owner) for _, lane, _, owner, _ in await table(db)] == [("t:f2", "w1")]
    await worker.stop()
    assert [(lane, owner) for _, lane, _, owner, _ in await table(db)] == [("t:f2", None)]


async def test_together_writes_of_a_pass_run_as_one_call(db: Database, clock: ManualClock) -> None:
    """Rows whose writes share a `run` get one call with every row's argument, in the
    transaction that deletes them; a row settled on its own (its pass failed) gets its own."""
    await enqueue(db, [(f"t:g{i}", i) for i in range(4)], clock)
    calls: list[list[int]] = []
    others: list[int] = []

    def run(conn: Connection, ns: list[int]) -> None:
        # In the transaction that deletes the rows, after the deletion.
        assert conn.execute(select(func.count()).select_from(t.outbox)).scalar_one() == 0
        calls.append(sorted(ns))

    async def handler(row: OutboxRow) -> Settled:
        n = int(row.payload["n"])
        if n == 2:
            return Settled(write=lambda conn: others.append(n))
        return Settled(write=Together(run, n))

    worker = worker_for(db, handler, clock)
    assert await worker.run_once() == 4  # all four settle in one pass
    assert calls == [[0, 1, 3]]
    assert others == [2]
    assert await table(db) == []

    await enqueue(db, [(f"t:h{i}", i) for i in range(3)], clock)
    alone: list[list[int]] = []

    def fail(conn: Connection) -> None:
        raise RuntimeError("a bug in a settle write")

    async def failing(row: OutboxRow) -> Settled:
        n = int(row.payload["n"])
        return Settled(write=fail) if n == 1 else Settled(write=Together(run_alone, n))

    def run_alone(conn: Connection, ns: list[int]) -> None:
        alone.append(ns)

    worker = worker_for(db, failing, clock, owner="w2")
    assert await worker.run_once() == 3  # the pass fails; each row is settled on its own
    # The failed pass may have made its call (rolled back with it): then one call per row.
    assert sorted(alone[-2:]) == [[0], [2]]
    assert alone[:-2] in ([], [[0, 2]])
    assert [lane for _, lane, _, _, _ in await table(db)] == ["t:h1"]
    await worker.stop()


# --- rows claimed by the transaction that inserts them ----------------------------------------


async def test_a_fresh_row_heading_its_lane_is_claimed_and_delivered_without_a_pass(
    db: Database, clock: ManualClock
) -> None:
    delivered: list[int] = []
    done = Countdown(1)

    async def handler(row: OutboxRow) -> Settled:
        delivered.append(int(row.payload["n"]))
        done.tick()
        return Settled()

    # No `run()`: nothing else would ever claim the row.
    worker = worker_for(db, handler, clock, poll_interval=60)

    def tx(conn: Connection) -> OutboxRow | None:
        claim = worker.fresh_claim()
        assert claim is not None
        row = outbox_rows.enqueue_claimed(
            conn, lane="fresh:a", kind=KIND, payload={"n": 1}, now=clock.now_ms(), claim=claim
        )
        return worker.take_fresh(conn, row) if row is not None else None

    claimed = await db.run_write(tx)
    assert claimed is not None
    assert claimed.payload == {"n": 1}
    assert [(lane, n, by) for _, lane, n, by, _ in await table(db)] == [("fresh:a", 1, "w1")]
    worker.dispatch(claimed)
    await until(done.done)
    assert delivered == [1]
    await worker.run_once()  # settles what the dispatched delivery finished
    assert await table(db) == []


async def test_a_fresh_row_behind_an_older_one_waits_its_turn(
    db: Database, clock: ManualClock
) -> None:
    order: list[int] = []
    done = Countdown(3)

    async def handler(row: OutboxRow) -> Settled:
        order.append(int(row.payload["n"]))
        done.tick()
        return Settled()

    worker = worker_for(db, handler, clock)
    await enqueue(db, [("fresh:b", 1), ("fresh:b", 2)], clock)

    def tx(conn: Connection) -> OutboxRow | None:
        claim = worker.fresh_claim()
        assert claim is not None
        row = outbox_rows.enqueue_claimed(
            conn, lane="fresh:b", kind=KIND, payload={"n": 3}, now=clock.now_ms(), claim=claim
        )
        return worker.take_fresh(conn, row) if row is not None else None

    assert await db.run_write(tx) is None  # two older rows of its lane are pending
    async with running(worker):
        await until(done.done)
    assert order == [1, 2, 3]
    assert await table(db) == []


# --- time: backoff and leases ------------------------------------------------------------------


async def test_a_retry_waits_out_its_backoff_and_no_longer(
    db: Database, clock: ManualClock
) -> None:
    attempts: list[int] = []

    async def handler(row: OutboxRow) -> Outcome:
        attempts.append(clock.now_ms())
        if len(attempts) == 1:
            return Retry("busy", retry_after=30)
        return Settled()

    worker = worker_for(db, handler, clock)
    await enqueue(db, [("t:r", 0)], clock)
    started = clock.now_ms()
    assert await worker.run_once() == 1  # refused: rescheduled 30 s on (Retry-After)
    clock.advance(29_999)
    assert await worker.run_once() == 0
    clock.advance(1)
    assert await worker.run_once() == 1
    assert attempts == [started, started + 30_000]
    assert worker.stats.retried == 1
    assert worker.stats.delivered == 1
    assert await table(db) == []


async def test_a_dead_workers_claim_is_taken_over_once_its_lease_ends(
    db: Database, clock: ManualClock
) -> None:
    await enqueue(db, [("t:l", 0)], clock)
    started = asyncio.Event()

    async def stuck(row: OutboxRow) -> Outcome:
        started.set()
        await asyncio.Event().wait()
        return Settled()

    first = worker_for(db, stuck, clock, owner="w1", lease_seconds=30)
    task = asyncio.create_task(first.run())
    await until(started)
    task.cancel()  # the instance dies: no `stop()`, its claim stays behind
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert [(lane, owner) for _, lane, _, owner, _ in await table(db)] == [("t:l", "w1")]

    delivered: list[str] = []

    async def handler(row: OutboxRow) -> Outcome:
        delivered.append(row.lane)
        return Settled()

    second = worker_for(db, handler, clock, owner="w2")
    clock.advance(30_000)  # the lease runs to its last millisecond
    assert await second.run_once() == 0
    clock.advance(1)
    assert await second.run_once() == 1
    assert delivered == ["t:l"]
    assert await table(db) == []
