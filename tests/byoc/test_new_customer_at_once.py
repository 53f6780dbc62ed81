"""A new customer's first requests at once: both are served, and the customer is stored once.

Every such request looks the customer up and inserts them when missing. On PostgreSQL two
transactions can both find them missing; the second INSERT then waits on the first one's key
and fails once it commits. The request must run again and find the customer, not answer 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import asyncpg
import pytest
from sqlalchemy import func, select

from byoc.conversations import lookups
from byoc.conversations.models import CustomerMessageIn, CustomerProfile, Delivered
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.store import Database, migrations
from byoc.store import schema as t
from byoc.store.records import Channel, Customer
from tests.support import seed
from tests.support.postgres import SESSIONS_WAITING_ON_A_LOCK
from tests.support.waiting import wait_for_async

T = TypeVar("T")
POLICY = LifecyclePolicy(
    idle_timeout_ms=0, countdown_ms=0, warning_text="", ended_text="", end_action="close"
)
NEW = CustomerProfile(external_id="new-customer", first_name="Ada")


async def _customers(db: Database) -> int:
    return int(
        await db.run_read(
            lambda conn: conn.execute(select(func.count()).select_from(t.customers)).scalar_one()
        )
    )


async def test_a_new_customers_first_two_messages_at_once_are_both_stored(db: Database) -> None:
    service = ConversationService(db, POLICY)
    channel = await db.run_write(seed.add_channel)
    one, two = await asyncio.gather(
        service.receive_customer_message(CustomerMessageIn(channel.id, NEW, "one", [])),
        service.receive_customer_message(CustomerMessageIn(channel.id, NEW, "two", [])),
    )
    assert one.message.conversation_id == two.message.conversation_id
    assert {one.message.text, two.message.text} == {"one", "two"}
    assert await _customers(db) == 1


async def _while_another_inserts_the_customer(
    postgres_url: str, request: Callable[[ConversationService, Channel], Coroutine[Any, Any, T]]
) -> tuple[T, Customer]:
    """`request` runs while another transaction has inserted the customer, uncommitted; that
    one commits once `request`'s INSERT waits on its key. (The request, and that customer.)"""
    db = Database(postgres_url)
    watcher = await asyncpg.connect(postgres_url)
    try:
        await migrations.upgrade(db)
        await db.run_write(seed.clean)
        channel = await db.run_write(seed.add_channel)
        async with db.engine.begin() as conn:
            inserted = await conn.run_sync(lookups.upsert_customer, channel, NEW)
            served = asyncio.create_task(request(ConversationService(db, POLICY), channel))

            async def waiting() -> bool:
                return int(await watcher.fetchval(SESSIONS_WAITING_ON_A_LOCK)) == 1

            await wait_for_async(waiting, what="the request's INSERT to wait on the other's")
        result = await asyncio.wait_for(served, timeout=10)
        assert await _customers(db) == 1
        return result, inserted
    finally:
        await watcher.close()
        await db.close()


@pytest.mark.postgres
async def test_a_message_runs_again_when_its_new_customer_was_inserted_meanwhile(
    postgres_url: str,
) -> None:
    async def message(service: ConversationService, channel: Channel) -> Delivered:
        return await service.receive_customer_message(CustomerMessageIn(channel.id, NEW, "hi", []))

    delivered, inserted = await _while_another_inserts_the_customer(postgres_url, message)
    assert delivered.message.text == "hi"
    assert delivered.customer.id == inserted.id


@pytest.mark.postgres
async def test_a_widget_customer_inserted_meanwhile_is_found_not_a_store_error(
    postgres_url: str,
) -> None:
    async def connect(service: ConversationService, channel: Channel) -> Customer:
        return await service.ensure_customer(channel.id, NEW)

    customer, inserted = await _while_another_inserts_the_customer(postgres_url, connect)
    assert customer == inserted
