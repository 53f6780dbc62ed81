"""The outbox's settle pass on PostgreSQL: its statements do not grow with the rows it settles.

A settle pass deletes every delivered row and runs each delivery's write (a customer message:
its status, the conversation's CXone check time) in one transaction. On asyncpg each statement
is a round trip, with the event loop in between; a pass whose statements grew with its rows
held the conversations' row locks, and the one pass the worker runs at a time, for as many
round trips, so that under load the deliveries of every conversation waited on it. The writes
of a pass now run together, every execution of a statement in one: a pass settling many
conversations sends as many statements as one settling one. The deliveries themselves run at
once, each on its own conversation.

The statements are counted where asyncpg runs them (its query loggers, on every connection of
the store's pool).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, event, select

from byoc.outbox import kinds
from byoc.outbox.kinds import enqueue
from byoc.outbox.outcome import Outcome, RetryPolicy, Settled
from byoc.outbox.worker import OutboxWorker
from byoc.store import (
    Database,
    channels,
    conversations,
    customers,
    messages,
    migrations,
    tenants,
)
from byoc.store import schema as t
from byoc.store.records import Channel, Conversation, Customer, Message, OutboxRow, Tenant
from tests.support.postgres import fresh_database

pytestmark = pytest.mark.postgres

CHANNEL = "chat_settle"
NOW = 1_700_000_000_000
WAIT = 10.0  # seconds: a bound on every wait, far above what any of them takes


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


class Statements:
    """Every statement asyncpg runs on the store's connections, while `counting`."""

    def __init__(self) -> None:
        self.counting = False
        self.seen: list[str] = []

    def log(self, record: Any) -> None:
        if self.counting:
            self.seen.append(record.query)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[tuple[Database, Statements]]:
    database = Database(database_url)
    statements = Statements()

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.driver_connection.add_query_logger(statements.log)

    event.listen(database.engine.sync_engine, "connect", on_connect)
    await migrations.upgrade(database)
    tenant = Tenant(
        "default", "default", 1, "t", 2, "http://127.0.0.1:9", "http://127.0.0.1:9", "k", "s",
        "c", "s",
    )  # fmt: skip

    def setup(conn: Connection) -> None:
        tenants.upsert_tenant(conn, tenant)
        channels.insert_channel(
            conn, Channel(CHANNEL, "default", "webhook", "settle", None, "secret", NOW)
        )

    await database.run_write(setup)
    try:
        yield database, statements
    finally:
        await database.close()


async def messages_in(db: Database, count: int, tag: str) -> None:
    """`count` open conversations, each with a customer message queued for CXone."""

    def tx(conn: Connection) -> None:
        for n in range(count):
            customer = Customer(f"cus_{tag}{n}", CHANNEL, f"{tag}{n}", *(None,) * 5)
            customers.save_customer(conn, customer, is_new=True)
            conversation = Conversation(
                f"thr_{tag}{n}", CHANNEL, customer.id, "open", "customer", None, None, 1,
                None, NOW, None, None,
            )  # fmt: skip
            conversations.insert_conversation(conn, conversation)
            message = Message(
                f"msg_{tag}{n}", CHANNEL, conversation.id, 0, "inbound", "customer", "hi",
                {"type": "TEXT"}, [], None, None, None, "queued", NOW,
            )  # fmt: skip
            messages.insert_message(conn, message)
            enqueue(conn, kinds.CustomerMessage(conversation.id, message.id), now=NOW)

    await db.run_write(tx)


async def deliver_all(db: Database, statements: Statements, count: int, tag: str) -> list[str]:
    """Deliver the messages of `count` conversations, all at once (no delivery ends before
    every one has started), and settle them; the statements of the settle pass."""
    await messages_in(db, count, tag)
    started = 0
    all_started = asyncio.Event()

    async def create(row: OutboxRow) -> Outcome:
        nonlocal started
        payload = kinds.decode(row)
        assert isinstance(payload, kinds.CustomerMessage)
        started += 1
        if started == count:
            all_started.set()
            # From here on the worker runs nothing but the settle pass.
            statements.counting = True
        await asyncio.wait_for(all_started.wait(), WAIT)

        def sent(conn: Connection) -> None:  # what a create that landed on its contact writes
            messages.set_message_status(conn, payload.message_id, "sent")
            conversations.mark_checked_in_cxone(conn, payload.conversation_id, NOW + 1)

        return Settled(write=sent)

    worker = OutboxWorker(
        db, {kinds.CustomerMessage.KIND: create}, owner="w1", policy=RetryPolicy()
    )
    try:
        assert await worker.run_once() == count
    finally:
        statements.counting = False
    assert worker.stats.delivered == count
    return list(statements.seen)


async def test_a_settle_pass_sends_as_many_statements_for_many_rows_as_for_one(
    db: tuple[Database, Statements],
) -> None:
    database, statements = db
    one = await deliver_all(database, statements, 1, "a")
    statements.seen.clear()
    many = await deliver_all(database, statements, 40, "b")
    assert one  # the statements were seen
    assert len(many) == len(one), many

    def read(conn: Connection) -> tuple[set[str], set[int | None], int]:
        status = set(conn.execute(select(t.messages.c.status)).scalars())
        checked = set(conn.execute(select(t.conversations.c.de_checked_at)).scalars())
        left = len(conn.execute(select(t.outbox.c.id)).all())
        return status, checked, left

    # Every write of the pass was made, and every row went.
    assert await database.run_read(read) == ({"sent"}, {NOW + 1}, 0)
