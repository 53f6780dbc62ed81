"""A message's outbox row is claimed by the transaction that stores it, customer message or
agent reply, and delivered as soon as that transaction commits: no claim pass of the worker
(a transaction of its own) between the request and the delivery. Lane order still holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Connection

from byoc.conversations.models import CustomerMessageIn, CustomerProfile
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.delivery.common import Loaded, load, preload_messages
from byoc.outbox import kinds
from byoc.outbox import rows as outbox_rows
from byoc.outbox.outcome import RetryPolicy, Settled
from byoc.outbox.preloads import Preload
from byoc.outbox.worker import OutboxWorker
from byoc.store import Database, channels, conversations, messages, migrations, now_ms, tenants
from byoc.store.records import Channel, OutboxRow, Tenant
from tests.support.incoming import agent_reply
from tests.support.outbox import row_of
from tests.support.seed import clean
from tests.support.waiting import wait_for_async

CHANNEL = "chat_fresh"
WAIT = 10.0  # seconds: a bound on every wait, far above what any of them takes
POLICY = LifecyclePolicy(
    idle_timeout_ms=0, countdown_ms=0, warning_text="", ended_text="", end_action="close"
)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await migrations.upgrade(database)
    tenant = Tenant(
        "default", "default", 1, "t", 1, "http://127.0.0.1:9", "http://127.0.0.1:9", "k", "s",
        "c", "s",
    )  # fmt: skip
    channel = Channel(CHANNEL, "default", "webhook", "fresh", None, "s", 0)

    def setup(conn: Connection) -> None:
        # The module's PostgreSQL database is shared by its tests: an earlier test's pending
        # row would be claimed by this one's passes, and delivered among its own.
        clean(conn)
        tenants.upsert_tenant(conn, tenant)
        channels.insert_channel(conn, channel)

    await database.run_write(setup)
    try:
        yield database
    finally:
        await database.close()


class Deliveries:
    """What the worker delivered, in order; each delivery may be held until released."""

    def __init__(self, contact_ids: bool = False) -> None:
        # With `contact_ids`, a delivered customer message records its id as the
        # conversation's CXone contact id, as the create's settle write records CXone's.
        self.contact_ids = contact_ids
        self.rows: list[OutboxRow] = []
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def handler(self, row: OutboxRow) -> Settled:
        self.rows.append(row)
        self.arrived.set()
        await self.release.wait()
        if not self.contact_ids or row.kind != kinds.CustomerMessage.KIND:
            return Settled()
        conversation_id, message_id = row.payload["conversation_id"], row.payload["message_id"]
        return Settled(
            write=partial(
                conversations.update_conversation,
                conversation_id=conversation_id,
                de_contact_id=f"contact-{message_id}",
            )
        )

    async def until(self, count: int) -> None:
        async def wait() -> None:
            while len(self.rows) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(wait(), WAIT)


def worker_for(
    db: Database,
    deliveries: Deliveries,
    preloads: Mapping[str, Preload] | None = None,
    max_in_flight: int = 256,
) -> OutboxWorker:
    # Never `run()`: a row is delivered only if its own transaction claimed it, or by an
    # explicit pass of the test.
    handlers = {
        kind.KIND: deliveries.handler for kind in (kinds.CustomerMessage, kinds.AgentMessage)
    }
    # The service's clock (the machine's): rows are due when stamped.
    return OutboxWorker(
        db,
        handlers,
        owner="w1",
        policy=RetryPolicy(),
        poll_interval=3600,
        preloads=preloads,
        max_in_flight=max_in_flight,
    )


async def test_a_reply_and_a_customer_message_are_claimed_by_their_own_transaction(
    db: Database,
) -> None:
    deliveries = Deliveries()
    worker = worker_for(db, deliveries)
    service = ConversationService(db, POLICY, fresh_rows=worker)

    customer = CustomerProfile(external_id="u-own-transaction")  # a conversation of its own
    said = await service.receive_customer_message(CustomerMessageIn(CHANNEL, customer, "hi"))
    assert said.claimed is not None
    await deliveries.until(1)
    await worker.run_once()  # settles it (its delivery finished)

    answered = await service.receive_agent_message(
        agent_reply(said.conversation.id, "de-a1"), channel_id=CHANNEL, tenant_id="default"
    )
    assert answered.claimed is not None
    assert answered.claimed.kind == kinds.AgentMessage.KIND
    await deliveries.until(2)
    assert [row.payload["message_id"] for row in deliveries.rows] == [
        said.message.id,
        answered.message.id,
    ]


async def test_a_reply_behind_one_in_flight_waits_its_turn(db: Database) -> None:
    deliveries = Deliveries()
    worker = worker_for(db, deliveries)
    service = ConversationService(db, POLICY, fresh_rows=worker)
    customer = CustomerProfile(external_id="u-waits")  # a conversation of its own
    said = await service.receive_customer_message(CustomerMessageIn(CHANNEL, customer, "hi"))
    await deliveries.until(1)
    await worker.run_once()

    deliveries.release.clear()  # the first reply's delivery does not finish yet
    thread = said.conversation.id
    first = await service.receive_agent_message(
        agent_reply(thread, "de-b1"), channel_id=CHANNEL, tenant_id="default"
    )
    assert first.claimed is not None
    await deliveries.until(2)
    second = await service.receive_agent_message(
        agent_reply(thread, "de-b2"), channel_id=CHANNEL, tenant_id="default"
    )
    assert second.claimed is None  # an older row of its lane is pending
    deliveries.release.set()
    # A pass settles the first; the lane's next row is then due, claimed and delivered.
    for _ in range(3):
        if len(deliveries.rows) == 3:
            break
        await worker.run_once()
    assert [row.payload["message_id"] for row in deliveries.rows[1:]] == [
        first.message.id,
        second.message.id,
    ]


async def test_a_message_stored_while_the_worker_has_no_room_is_queued_with_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With no room in the worker the row is not claimed, but it is still inserted with its
    # message by the one statement (PostgreSQL), not by two of their own.
    deliveries = Deliveries()
    worker = worker_for(db, deliveries, max_in_flight=1)
    service = ConversationService(db, POLICY, fresh_rows=worker)
    deliveries.release.clear()  # the first delivery keeps the worker's one place
    first = await service.receive_customer_message(
        CustomerMessageIn(CHANNEL, CustomerProfile(external_id="u-room-1"), "hi")
    )
    assert first.claimed is not None
    await deliveries.until(1)

    separately: list[str] = []

    def counted(name: str, write: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            separately.append(name)
            return write(*args, **kwargs)

        return run

    monkeypatch.setattr(messages, "insert_message", counted("message", messages.insert_message))
    monkeypatch.setattr(kinds, "enqueue", counted("row", kinds.enqueue))
    # Another conversation: its row heads its own lane, and would be claimed with room.
    second = await service.receive_customer_message(
        CustomerMessageIn(CHANNEL, CustomerProfile(external_id="u-room-2"), "hello")
    )
    assert second.claimed is None
    # SQLite inserts the message by its own statement whatever the claim (one writer: the row's
    # statement needs no lock held before it).
    assert separately == ([] if db.url.startswith("postgresql") else ["message"])

    deliveries.release.set()

    async def second_delivered() -> bool:
        # A pass settles the first once its delivery has finished, then claims the second.
        await worker.run_once()
        return len(deliveries.rows) == 2

    await wait_for_async(second_delivered, timeout=WAIT, what="the unclaimed row's delivery")
    assert [row.payload["message_id"] for row in deliveries.rows] == [
        first.message.id,
        second.message.id,
    ]


async def test_a_fresh_reply_carries_what_its_transaction_read_for_the_delivery(
    db: Database,
) -> None:
    """With the platform delivery's preload, the transaction that stores a reply and claims its
    row hands on what the delivery needs, all of which it holds: the row's `context` is what a
    read after the commit gives, so the delivery reads nothing. Other kinds carry nothing."""
    deliveries = Deliveries()
    worker = worker_for(db, deliveries, {kinds.AgentMessage.KIND: preload_messages})
    service = ConversationService(db, POLICY, fresh_rows=worker)
    customer = CustomerProfile(external_id="u-preloaded")
    said = await service.receive_customer_message(CustomerMessageIn(CHANNEL, customer, "hi"))
    await deliveries.until(1)
    await worker.run_once()
    assert deliveries.rows[0].context is None

    answered = await service.receive_agent_message(
        agent_reply(said.conversation.id, "de-c1"), channel_id=CHANNEL, tenant_id="default"
    )
    await deliveries.until(2)
    context = deliveries.rows[1].context
    assert isinstance(context, Loaded)
    assert context.message == answered.message
    assert context.channel.id == CHANNEL
    assert context == await load(db, message_id=answered.message.id)


async def test_a_fresh_customer_message_carries_what_its_transaction_read_for_the_create(
    db: Database,
) -> None:
    """With the CXone delivery's preload, the transaction that stores a customer message and
    claims its row hands on what the create needs, the conversation as its own write left it:
    the row's `context` is what a read after the commit gives. A message behind one in flight
    is claimed later, by a pass of the worker, which reads for it after settling the first
    one: its context holds what the first one's delivery wrote."""
    deliveries = Deliveries(contact_ids=True)
    worker = worker_for(db, deliveries, {kinds.CustomerMessage.KIND: preload_messages})
    service = ConversationService(db, POLICY, fresh_rows=worker)
    customer = CustomerProfile(external_id="u-preloaded", first_name="Ada")
    deliveries.release.clear()
    said = await service.receive_customer_message(CustomerMessageIn(CHANNEL, customer, "hi"))
    await deliveries.until(1)
    context = deliveries.rows[0].context
    assert isinstance(context, Loaded)
    assert context.message == said.message
    assert context.customer.first_name == "Ada"
    assert context.channel.id == CHANNEL
    assert context == await load(db, message_id=said.message.id)

    again = await service.receive_customer_message(CustomerMessageIn(CHANNEL, customer, "again"))
    assert again.claimed is None  # the first is in flight
    deliveries.release.set()
    for _ in range(3):
        if len(deliveries.rows) == 2:
            break
        await worker.run_once()
    assert deliveries.rows[1].payload["message_id"] == again.message.id
    context = deliveries.rows[1].context
    assert isinstance(context, Loaded)
    assert context.message == again.message
    assert context.conversation.de_contact_id == f"contact-{said.message.id}"
    assert context.customer.first_name == "Ada"

    # The next one heads its lane once that is settled: claimed by its own transaction, which
    # holds the conversation as the settle of the one before left it (its contact).
    await worker.run_once()
    third = await service.receive_customer_message(CustomerMessageIn(CHANNEL, customer, "more"))
    assert third.claimed is not None
    await deliveries.until(3)
    context = deliveries.rows[2].context
    assert isinstance(context, Loaded)
    assert context.conversation.de_contact_id == f"contact-{again.message.id}"
    assert context == await load(db, message_id=third.message.id)


async def test_a_pass_whose_preload_fails_still_delivers_its_rows(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """A preload that raises (a bug, a row nobody foresaw) costs its rows their context, not
    the pass: the rows are delivered, their handlers reading for themselves."""

    def broken(conn: Connection, claimed: Sequence[OutboxRow]) -> list[object]:
        raise RuntimeError("a preload bug")

    deliveries = Deliveries()
    worker = worker_for(db, deliveries, {kinds.AgentMessage.KIND: broken})

    def enqueue(conn: Connection) -> None:
        for n in range(2):
            outbox_rows.enqueue(
                conn,
                lane=f"platform:thr_broken_{n}",
                kind=kinds.AgentMessage.KIND,
                payload={"message_id": f"msg_broken_{n}"},
                now=now_ms(),
            )

    await db.run_write(enqueue)
    assert await worker.run_once() == 2
    assert sorted(row.payload["message_id"] for row in deliveries.rows) == [
        "msg_broken_0",
        "msg_broken_1",
    ]
    assert all(row.context is None for row in deliveries.rows)
    assert "the preload of 2 platform.message rows failed" in caplog.text


async def test_a_malformed_message_row_gets_no_preload_and_stops_no_other(db: Database) -> None:
    """A stored payload whose message id is not a string (nothing writes one; a hand-edited or
    corrupted row) gets no context; the well-formed row beside it gets its own."""
    service = ConversationService(db, POLICY)
    said = await service.receive_customer_message(
        CustomerMessageIn(CHANNEL, CustomerProfile(external_id="u-malformed"), "hi")
    )

    def rows_of(conn: Connection) -> list[Loaded | None]:
        lane = f"cxone:{said.conversation.id}"
        good = row_of(kinds.CustomerMessage.KIND, lane, {"message_id": said.message.id})
        bad = replace(good, id=2, payload={"message_id": ["not", "an", "id"]})
        return preload_messages(conn, [bad, good])

    bad_context, good_context = await db.run_read(rows_of)
    assert bad_context is None
    assert isinstance(good_context, Loaded)
    assert good_context.message == said.message


async def test_what_the_intake_holds_is_taken_without_a_read(db: Database) -> None:
    """A row whose intake handed over its message in context is served from that: a message
    the store does not have is still served (nothing was read for it). A context that is not
    that row's message in context is ignored, and the row is read for as usual."""
    service = ConversationService(db, POLICY)
    said = await service.receive_customer_message(
        CustomerMessageIn(CHANNEL, CustomerProfile(external_id="u-held"), "hi")
    )
    stored = await load(db, message_id=said.message.id)
    unstored = replace(said.message, id="msg_never_stored")
    held = (unstored, stored.conversation, stored.customer, stored.channel)

    def rows_of(conn: Connection) -> list[Loaded | None]:
        lane = f"cxone:{said.conversation.id}"
        kind = kinds.CustomerMessage.KIND
        in_hand = replace(row_of(kind, lane, {"message_id": unstored.id}), context=held)
        other = replace(row_of(kind, lane, {"message_id": said.message.id}), id=2, context=held)
        return preload_messages(conn, [in_hand, other])

    in_hand, other = await db.run_read(rows_of)
    assert in_hand == replace(stored, message=unstored)
    assert other == stored
