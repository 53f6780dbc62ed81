"""A customer's first requests at once: all are served, into one customer and one conversation.

Every such request looks the customer up and inserts them when missing. On PostgreSQL two
transactions can both find them missing; the second INSERT then waits on the first one's key
and fails once it commits. The request must run again and find the customer, not answer 503.
Likewise a customer whose last conversation ended: several messages at once must open one
new conversation (one CXone thread), not one each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, func, select

from byoc.conversations import lifecycle, lookups
from byoc.conversations.models import (
    AgentMessageIn,
    CustomerMessageIn,
    CustomerProfile,
    Delivered,
)
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.store import Database, conversations, customers
from byoc.store import schema as t
from byoc.store.records import Channel, Conversation, Customer
from tests.support import seed
from tests.support.incoming import agent_reply
from tests.support.postgres import store_and_watcher, until_waiting_or_done

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
    async with store_and_watcher(postgres_url) as (db, watcher):
        channel = await db.run_write(seed.add_channel)
        async with db.engine.begin() as conn:
            inserted = await conn.run_sync(lookups.upsert_customer, channel, NEW)
            served = asyncio.create_task(request(ConversationService(db, POLICY), channel))

            await until_waiting_or_done(
                watcher, served, what="the request's INSERT to wait on the other's"
            )
        result = await asyncio.wait_for(served, timeout=10)
        assert await _customers(db) == 1
        return result, inserted


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


async def _returning_customer(db: Database, service: ConversationService) -> Channel:
    """A channel whose customer `NEW` had a conversation, ended."""
    channel = await db.run_write(seed.add_channel)
    first = await service.receive_customer_message(CustomerMessageIn(channel.id, NEW, "0", []))

    def end(conn: Connection) -> None:
        assert lifecycle.end_conversation(conn, first.conversation, reason="agent", now=1)

    await db.run_write(end)
    return channel


async def test_a_returning_customers_messages_at_once_open_one_conversation(db: Database) -> None:
    service = ConversationService(db, POLICY)
    channel = await _returning_customer(db, service)
    said = [CustomerMessageIn(channel.id, NEW, f"m{n}", []) for n in range(6)]
    stored = await asyncio.gather(*(service.receive_customer_message(m) for m in said))
    assert len({s.conversation.id for s in stored}) == 1
    assert sorted(s.message.seq for s in stored) == list(range(6))


@pytest.mark.postgres
async def test_a_message_takes_the_conversation_another_is_opening(postgres_url: str) -> None:
    async with store_and_watcher(postgres_url) as (db, watcher):
        service = ConversationService(db, POLICY)
        channel = await _returning_customer(db, service)
        async with db.engine.begin() as conn:
            # Another message's transaction, which has opened the customer's new conversation.
            customer = await db.run_read(customers.find_customer, channel.id, NEW.external_id)
            assert customer is not None
            opened = await conn.run_sync(lookups.conversation_for_customer, customer, None, now=2)
            said = CustomerMessageIn(channel.id, NEW, "hi", [])
            served = asyncio.create_task(service.receive_customer_message(said))

            await until_waiting_or_done(watcher, served, what="the message to wait for the opening")
        delivered = await asyncio.wait_for(served, timeout=10)
        assert delivered.conversation.id == opened.id
        open_ones = await db.run_read(
            lambda c: conversations.latest_conversation(c, delivered.customer.id, open_only=True)
        )
        assert open_ones is not None
        assert open_ones.id == opened.id


@pytest.mark.postgres
async def test_a_thread_cxone_just_started_is_opened_once(postgres_url: str) -> None:
    """An agent starts a thread and sends again before the first message's answer: the second
    callback finds no conversation for the thread either, and must take the one the first is
    opening, not open another for the same CXone thread."""
    async with store_and_watcher(postgres_url) as (db, watcher):
        service = ConversationService(db, POLICY)
        channel = await db.run_write(seed.add_channel)
        known = await service.ensure_customer(channel.id, NEW)

        def agent_starts(de_message_id: str) -> AgentMessageIn:
            message = agent_reply("", de_message_id)
            primary = {"idOnExternalPlatform": known.id, "isPrimary": True}
            return replace(message, thread_id=None, de_thread_id="de-new", recipients=[primary])

        async with db.engine.begin() as conn:
            # The first message's transaction, which has opened the thread's conversation.
            def first_opens(sync: Connection) -> Conversation:
                conversations.lock_opening(sync, "de:de-new")
                opened = lookups.new_conversation(
                    channel.id, known.id, origin="agent", de_thread_id="de-new", now=1
                )
                conversations.insert_conversation(sync, opened)
                return opened

            opened = await conn.run_sync(first_opens)
            second = asyncio.create_task(
                service.open_agent_outbound(
                    agent_starts("de-2"), channel_id=channel.id, tenant_id=channel.tenant_id
                )
            )

            await until_waiting_or_done(watcher, second, what="the second to wait for the opening")
        delivered = await asyncio.wait_for(second, timeout=10)
        assert delivered.conversation.id == opened.id
        assert delivered.message.text == "de-2"
