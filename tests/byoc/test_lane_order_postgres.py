"""Lane order on PostgreSQL with concurrent producers.

A lane's rows are delivered in id order, and a claim takes a lane's oldest visible row. Two
transactions inserting into one lane at once (a receipt's status row, and a customer message,
which locks nothing the receipt locks) could commit out of id order: the later row would be
delivered first, and the earlier one claimed behind it while it was still in flight. Every
producer of a lane serialises on it, so this cannot happen; the test holds a receipt's
transaction open at the worst moment and checks what the worker delivers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Connection, delete, text, update

from byoc.conversations.models import CustomerMessageIn, CustomerProfile
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.outbox import kinds, rows
from byoc.outbox.kinds import enqueue
from byoc.store import Database, channels, messages, migrations, now_ms, tenants
from byoc.store import schema as t
from byoc.store.records import Channel, Tenant
from tests.support.incoming import agent_reply
from tests.support.outbox import Recorder
from tests.support.postgres import SESSIONS_WAITING_ON_A_LOCK, fresh_database
from tests.support.waiting import wait_for_async

CHANNEL = "chat_lanes"
WAIT = 10.0  # seconds: a bound on every wait, far above what any of them takes
POLICY = LifecyclePolicy(
    idle_timeout_ms=0, countdown_ms=0, warning_text="", ended_text="", end_action="close"
)


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await migrations.upgrade(database)
    channel = Channel(
        id=CHANNEL,
        tenant_id="default",
        adapter="webhook",
        name="lanes",
        webhook_url=None,
        secret="s",
        created_at=now_ms(),
    )
    tenant = Tenant(
        id="default",
        name="default",
        brand_id=1,
        cxone_tenant_id="t",
        business_unit_id=1,
        api_url="http://127.0.0.1:9/dfo/3.0",  # never called: the deliveries here are recorded
        token_url="http://127.0.0.1:9/auth/token",
        access_key_id="k",
        access_key_secret="s",
        client_id="c",
        client_secret="s",
    )

    def setup(conn: Connection) -> None:
        tenants.upsert_tenant(conn, tenant)
        channels.insert_channel(conn, channel)

    await database.run_write(setup)
    try:
        yield database
    finally:
        await database.close()


async def until_done_or_waiting(db: Database, task: asyncio.Task[Any], what: str) -> None:
    """Until `task` has ended or a session of the database waits on a lock."""

    async def done_or_waiting() -> bool:
        if task.done():
            return True
        async with db.engine.connect() as conn:
            return bool(await conn.scalar(text(SESSIONS_WAITING_ON_A_LOCK)))

    await wait_for_async(done_or_waiting, timeout=WAIT, what=what)


@pytest.mark.parametrize(
    ("claimed_at_insert", "countdown", "named", "room"),
    [
        (False, False, True, True),
        (True, False, True, True),
        (True, False, False, True),
        (True, True, True, True),
        (True, False, True, False),
    ],
    ids=[
        "by-a-pass",
        "fresh",
        "fresh-without-a-thread",
        "fresh-during-a-countdown",
        "fresh-with-no-room",
    ],
)
async def test_concurrent_producers_of_a_lane_are_delivered_in_id_order(
    db: Database,
    claimed_at_insert: bool,
    countdown: bool,
    named: bool,
    room: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Also when the message's row may be claimed by its own insert (the service has a worker
    with room): the sequence number's UPDATE waits for the lane's lock, so that insert sees
    the receipt's row, committed meanwhile; with or without the thread named (the statement
    of `store.message_intake` then names the lane itself). During an idle countdown the
    customer's message cancels it first (`lifecycle.customer_spoke`), then reserves its
    number the other way. With a worker that has no room, the message and its unclaimed row
    are still one statement after that lock (`queueing.store_message`)."""
    service = ConversationService(db, POLICY)
    customer = CustomerProfile(external_id="u1")
    first = await service.receive_customer_message(CustomerMessageIn(CHANNEL, customer, "hi"))
    conversation = first.conversation
    reply = await service.receive_agent_message(
        agent_reply(conversation.id, "de-1", "hello"),
        channel_id=CHANNEL,
        tenant_id="default",
    )
    async with db.engine.begin() as conn:  # what came before the race is not the point here
        await conn.execute(delete(t.outbox))
        if countdown:
            running = {"countdown_deadline": now_ms() + 20_000}
            await conn.execute(
                update(t.conversations).where(t.conversations.c.id == conversation.id), running
            )

    recorder = Recorder(
        db, [kinds.MessageStatus.KIND, kinds.CustomerMessage.KIND, kinds.IdleChanged.KIND]
    )
    worker = recorder.worker
    if not room:  # as a worker with every place taken answers
        monkeypatch.setattr(worker, "fresh_claim", lambda: None)
    racing = ConversationService(db, POLICY, fresh_rows=worker) if claimed_at_insert else service

    def receipt(conn: Connection) -> None:
        # What `report_receipt` writes: no lock on the conversation row.
        messages.set_message_status(conn, reply.message.id, "delivered")
        enqueue(
            conn,
            kinds.MessageStatus(
                conversation.id, message_id=reply.message.id, status="delivered", at=now_ms()
            ),
            now=now_ms(),
        )

    async with db.engine.begin() as conn:
        await conn.run_sync(receipt)
        # The receipt's transaction is still open when the customer writes again.
        message = asyncio.create_task(
            racing.receive_customer_message(
                CustomerMessageIn(
                    CHANNEL, customer, "again", thread_id=conversation.id if named else None
                )
            )
        )

        await until_done_or_waiting(db, message, "the customer message to end or wait on a lock")
        # A worker looks now: whatever it sees of the lane must be the lane's head.
        claimed_while_open = await worker.run_once()
    stored = await asyncio.wait_for(message, timeout=WAIT)
    while await worker.run_once():
        pass

    assert claimed_while_open == 0
    assert stored.claimed is None  # the receipt's row heads the lane
    cxone = [kind for kind in recorder.kinds if kind != kinds.IdleChanged.KIND]
    assert cxone == [kinds.MessageStatus.KIND, kinds.CustomerMessage.KIND]
    assert (kinds.IdleChanged.KIND in recorder.kinds) is countdown  # the countdown was cancelled
    assert [row.id for row in recorder.rows] == sorted(row.id for row in recorder.rows)


async def test_a_claim_skips_the_rows_a_concurrent_claim_holds(db: Database) -> None:
    """Two instances claiming at the same moment take different rows: the one statement of a
    claim locks the lane heads it takes, and the other skips them rather than wait."""
    now = now_ms()

    def four_lanes(conn: Connection) -> None:
        for lane in range(4):
            rows.enqueue(conn, lane=f"t:lane{lane}", kind="cxone.message", payload={}, now=now)

    await db.run_write(four_lanes)

    def claim(owner: str, limit: int) -> Callable[[Connection], list[int]]:
        def run(conn: Connection) -> list[int]:
            claimed = rows.claim_due(conn, owner=owner, limit=limit, lease_ms=60_000, now=now)
            return [row.id for row in claimed]

        return run

    async with db.engine.connect() as first, db.engine.connect() as second, first.begin():
        mine = await first.run_sync(claim("a", 2))
        async with second.begin():  # while the first claim's transaction is open
            theirs = await asyncio.wait_for(second.run_sync(claim("b", 10)), WAIT)
    assert len(mine) == 2
    assert len(theirs) == 2
    assert not set(mine) & set(theirs)


@pytest.mark.parametrize(
    ("named", "idle_clock"),
    [(True, True), (False, True), (True, False)],
    ids=["at-once", "the-usual-way", "the-usual-way-without-an-idle-clock"],
)
async def test_a_reply_sees_what_its_lane_held_when_it_waited(
    db: Database, named: bool, idle_clock: bool
) -> None:
    """A reply takes its delivery lane's lock with the conversation's UPDATE, then inserts the
    message and its row, claimed if it heads the lane, in one statement: taken at once when it
    names its channel and the idle clock runs (`replies.store_reply`), else after the usual
    lookup (`replies.store_agent_message`). A producer of that lane that locks nothing else
    (none in the product does so today: the test writes one) holds its transaction open
    meanwhile: the reply must wait for it, see its row, and be delivered after it."""
    idle = replace(POLICY, idle_timeout_ms=120_000 if idle_clock else 0)
    service = ConversationService(db, idle)
    customer = CustomerProfile(external_id="u2")
    first = await service.receive_customer_message(CustomerMessageIn(CHANNEL, customer, "hi"))
    conversation = first.conversation
    async with db.engine.begin() as conn:
        await conn.execute(delete(t.outbox))

    recorder = Recorder(db, [kinds.ConversationEnded.KIND, kinds.AgentMessage.KIND])
    worker = recorder.worker
    racing = ConversationService(db, idle, fresh_rows=worker)

    def notice(conn: Connection) -> None:
        enqueue(conn, kinds.ConversationEnded(conversation.id, reason="test"), now=now_ms())

    async with db.engine.begin() as conn:
        await conn.run_sync(notice)
        reply = asyncio.create_task(
            racing.receive_agent_message(
                agent_reply(conversation.id, "de-2"),
                channel_id=CHANNEL if named else None,
                tenant_id="default",
            )
        )

        await until_done_or_waiting(db, reply, "the reply to wait on a lock")
        assert not reply.done()
    stored = await asyncio.wait_for(reply, timeout=WAIT)
    while await worker.run_once():
        pass

    assert stored.claimed is None  # the notice's row heads the lane
    assert recorder.kinds == [kinds.ConversationEnded.KIND, kinds.AgentMessage.KIND]


async def test_a_customers_message_locks_the_conversation_before_the_customer(
    db: Database,
) -> None:
    """A message that changes the profile writes the conversation's row first, then the
    customer's: the order of an erasure, and of `store.message_intake`'s statement, which
    may hold the conversation's row when it finds nothing. The customer's row held elsewhere,
    the message waits for it with the conversation's row already locked."""
    service = ConversationService(db, POLICY)
    first = await service.receive_customer_message(
        CustomerMessageIn(CHANNEL, CustomerProfile(external_id="u2", first_name="Ann"), "hi")
    )
    renamed = CustomerProfile(external_id="u2", first_name="Anna")
    async with db.engine.begin() as holder:
        lock_customer = text("SELECT id FROM customers WHERE id = :id FOR UPDATE")
        await holder.execute(lock_customer, {"id": first.customer.id})
        message = asyncio.create_task(
            service.receive_customer_message(CustomerMessageIn(CHANNEL, renamed, "again"))
        )

        await until_done_or_waiting(db, message, "the message to wait")
        assert not message.done()
        async with db.engine.connect() as probe:
            held = await probe.execute(
                text("SELECT id FROM conversations WHERE id = :id FOR UPDATE SKIP LOCKED"),
                {"id": first.conversation.id},
            )
            assert held.first() is None  # the message holds it while it waits
            await probe.rollback()
    stored = await asyncio.wait_for(message, timeout=WAIT)
    assert stored.customer.first_name == "Anna"
    assert stored.conversation.id == first.conversation.id
