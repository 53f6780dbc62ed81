"""Intake paced by delivery (`byoc.outbox.pacing`): while the outbox's passes claim many rows
that have waited past the lag bound, a new message waits before it is stored, until a pass
finds the backlog gone or the longest wait is over; it is never refused or lost. One late lane
(catching up after its platform's outage) does not hold anyone back.

The pacer on its own, then fed by a real worker's passes on a real store (SQLite, and
PostgreSQL when BYOC_TEST_POSTGRES_URL is set), then in front of the service's intake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from sqlalchemy import Connection, func, select

from byoc.clock import ManualClock
from byoc.conversations.models import CustomerMessageIn, CustomerProfile
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.outbox import rows as outbox_rows
from byoc.outbox.outcome import RetryPolicy, Settled
from byoc.outbox.pacing import IntakePacer
from byoc.outbox.worker import OutboxWorker
from byoc.store import Database, channels, migrations, tenants
from byoc.store import schema as t
from byoc.store.records import Channel, OutboxRow, Tenant
from tests.support.incoming import agent_reply
from tests.support.outbox import row_of
from tests.support.seed import clean

KIND = "test.paced"
CHANNEL = "chat_paced"
WAIT = 10.0  # seconds: a bound on every wait, far above what any of them takes
POLICY = LifecyclePolicy(
    idle_timeout_ms=0, countdown_ms=0, warning_text="", ended_text="", end_action="close"
)


def rows_due_at(due: list[int]) -> list[OutboxRow]:
    return [
        replace(row_of(KIND, f"t:{i}", {}, row_id=i + 1), next_attempt_at=at)
        for i, at in enumerate(due)
    ]


class Seen:
    def __init__(self) -> None:
        self.results: list[str] = []

    def __call__(self, result: str) -> None:
        self.results.append(result)


def pacer_for(seen: Seen, *, wait_seconds: float = WAIT, late_rows: int = 4) -> IntakePacer:
    return IntakePacer(
        max_lag_seconds=0.3, wait_seconds=wait_seconds, late_rows=late_rows, observer=seen
    )


async def test_an_intake_waits_while_passes_claim_late_rows_and_goes_once_caught_up() -> None:
    seen = Seen()
    pacer = pacer_for(seen)
    now = 100_000
    pacer.claimed(rows_due_at([now - 1_000] * 4), room=64, now_ms=now)  # 4 rows 1 s late
    assert pacer.behind
    waiting = asyncio.create_task(pacer.wait())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    # The next pass claims rows due just now (and one late lane): caught up.
    pacer.claimed(rows_due_at([now] * 10 + [now - 60_000]), room=64, now_ms=now + 100)
    await asyncio.wait_for(waiting, WAIT)
    assert not pacer.behind
    assert seen.results == ["caught_up"]
    await asyncio.wait_for(pacer.wait(), WAIT)  # caught up: at once, and not counted
    assert seen.results == ["caught_up"]


async def test_an_intake_waits_no_longer_than_the_longest_wait() -> None:
    seen = Seen()
    pacer = pacer_for(seen, wait_seconds=0.05)
    pacer.claimed(rows_due_at([0] * 8), room=64, now_ms=10_000)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(pacer.wait(), WAIT)
    assert asyncio.get_running_loop().time() - started >= 0.04
    assert pacer.behind  # still behind: the message went ahead all the same
    assert seen.results == ["waited_out"]


def test_one_late_lane_is_not_a_backlog_but_a_pass_with_no_room_for_more_is() -> None:
    pacer = pacer_for(Seen())
    # A lane whose platform came back: its head, a minute late, among rows on time.
    pacer.claimed(rows_due_at([0] + [60_000] * 20), room=64, now_ms=60_000)
    assert not pacer.behind
    # Three late rows are under `late_rows` (4), unless three was all the pass had room for.
    pacer.claimed(rows_due_at([0, 0, 0]), room=64, now_ms=60_000)
    assert not pacer.behind
    pacer.claimed(rows_due_at([0, 0, 0]), room=3, now_ms=60_000)
    assert pacer.behind
    pacer.claimed([], room=64, now_ms=60_000)  # nothing left to claim
    assert not pacer.behind


async def test_a_pacer_that_is_off_never_waits() -> None:
    for pacer in (
        IntakePacer.off(),
        IntakePacer(max_lag_seconds=0, wait_seconds=1, late_rows=1),
        IntakePacer(max_lag_seconds=0.3, wait_seconds=0, late_rows=1),
    ):
        pacer.claimed(rows_due_at([0] * 100), room=100, now_ms=3_600_000)
        assert not pacer.behind
        await asyncio.wait_for(pacer.wait(), 0.5)
    with pytest.raises(ValueError, match="at least"):
        IntakePacer(max_lag_seconds=-1, wait_seconds=1, late_rows=1)
    with pytest.raises(ValueError, match="at least"):
        IntakePacer(max_lag_seconds=0.3, wait_seconds=1, late_rows=0)


# --- fed by a worker's passes -----------------------------------------------------------------


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await migrations.upgrade(database)
    tenant = Tenant(
        "default", "default", 1, "t", 1, "http://127.0.0.1:9", "http://127.0.0.1:9", "k", "s",
        "c", "s",
    )  # fmt: skip

    def setup(conn: Connection) -> None:
        clean(conn)  # the module's PostgreSQL database is shared by its tests
        tenants.upsert_tenant(conn, tenant)
        channels.insert_channel(conn, Channel(CHANNEL, "default", "webhook", "p", None, "s", 0))

    await database.run_write(setup)
    try:
        yield database
    finally:
        await database.close()


async def enqueue(db: Database, lanes: int, now: int) -> None:
    def tx(conn: Connection) -> None:
        for lane in range(lanes):
            outbox_rows.enqueue(conn, lane=f"t:{lane}", kind=KIND, payload={}, now=now)

    await db.run_write(tx)


async def delivered(row: OutboxRow) -> Settled:
    return Settled()


async def test_a_worker_whose_pass_claims_a_backlog_holds_the_intake_back(db: Database) -> None:
    clock = ManualClock()
    seen = Seen()
    pacer = pacer_for(seen)
    worker = OutboxWorker(
        db, {KIND: delivered}, owner="w1", policy=RetryPolicy(), clock=clock, pacer=pacer
    )
    await enqueue(db, 20, clock.now_ms())  # twenty lanes, a row each
    clock.advance(1_000)  # nobody claimed them for a second
    assert await worker.run_once() == 20
    assert pacer.behind
    waiting = asyncio.create_task(pacer.wait())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await enqueue(db, 20, clock.now_ms())  # a pass that finds rows due just now
    assert await worker.run_once() == 20
    await asyncio.wait_for(waiting, WAIT)
    assert seen.results == ["caught_up"]


async def test_a_message_is_stored_only_once_the_deliveries_caught_up(db: Database) -> None:
    seen = Seen()
    pacer = pacer_for(seen)
    service = ConversationService(db, POLICY, pacer=pacer)
    customer = CustomerProfile(external_id="u-paced")
    first = await service.receive_customer_message(CustomerMessageIn(CHANNEL, customer, "hi"))

    pacer.claimed(rows_due_at([0] * 8), room=64, now_ms=10_000)  # a backlog
    said = asyncio.create_task(
        service.receive_customer_message(CustomerMessageIn(CHANNEL, customer, "still there?"))
    )
    reply = asyncio.create_task(
        service.receive_agent_message(
            agent_reply(first.conversation.id, "de-paced"), channel_id=CHANNEL, tenant_id="default"
        )
    )
    await asyncio.sleep(0.1)
    assert not said.done()
    assert not reply.done()

    def count(conn: Connection) -> int:
        return int(conn.scalar(select(func.count()).select_from(t.messages)) or 0)

    assert await db.run_read(count) == 1  # neither is stored yet
    pacer.claimed([], room=64, now_ms=10_000)
    await asyncio.wait_for(asyncio.gather(said, reply), WAIT)
    assert await db.run_read(count) == 3
    assert seen.results == ["caught_up", "caught_up"]
