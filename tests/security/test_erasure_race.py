"""An erasure and a message or an upload of the same customer at once (PostgreSQL).

The erasure is one transaction, and a message's transaction may be running beside it. Whichever
commits first, the erasure must complete (nothing of the customer left, the message that was
being stored included), and the message must be stored, for a new customer if it comes after
the erasure, not fail with a store error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiohttp import web
from sqlalchemy import Connection, select, text

from byoc.channels.attachment_store import AttachmentRehoster
from byoc.conversations import lifecycle, lookups
from byoc.conversations.erasure import Erasure, erase, erase_customer
from byoc.conversations.models import (
    CustomerMessageIn,
    CustomerProfile,
    Delivered,
    text_content,
)
from byoc.conversations.once import Attempt
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.http import HttpClient
from byoc.outbox import kinds
from byoc.outbox import rows as outbox_rows
from byoc.store import Database, conversations, customers, messages
from byoc.store import schema as t
from byoc.store.records import Channel
from tests.support import loopback, seed
from tests.support.emulator import Emulator
from tests.support.postgres import (
    SESSIONS_WAITING_ON_A_LOCK,
    store_and_watcher,
    until_waiting_or_done,
)
from tests.support.widget import custom_webchat

pytestmark = pytest.mark.postgres

POLICY = LifecyclePolicy(
    idle_timeout_ms=0, countdown_ms=0, warning_text="", ended_text="", end_action="close"
)
ADA = CustomerProfile(external_id="ada", first_name="Ada")


async def _said(service: ConversationService, channel: Channel, text: str) -> Delivered:
    return await service.receive_customer_message(CustomerMessageIn(channel.id, ADA, text, []))


async def _ended(db: Database, service: ConversationService, channel: Channel) -> Delivered:
    """A message of the customer's in a conversation ended since: the next one opens another."""
    first = await _said(service, channel, "one")

    def end(conn: Connection) -> None:
        assert lifecycle.end_conversation(conn, first.conversation, reason="agent", now=1)

    await db.run_write(end)
    return first


@asynccontextmanager
async def _scene(
    postgres_url: str, *, ended: bool
) -> AsyncIterator[tuple[Database, asyncpg.Connection, ConversationService, Channel, Delivered]]:
    """The store and its watcher (`store_and_watcher`), a service, a channel, and a message of
    the customer's: in their open conversation, or in one `ended` since."""
    async with store_and_watcher(postgres_url) as (db, watcher):
        service = ConversationService(db, POLICY)
        channel = await db.run_write(seed.add_channel)
        if ended:
            first = await _ended(db, service, channel)
        else:
            first = await _said(service, channel, "one")
        yield db, watcher, service, channel, first


NOTHING_LEFT = {"customers": 0, "conversations": 0, "messages": 0}


async def _left_of(db: Database, customer_id: str) -> dict[str, int]:
    def counts(conn: Connection) -> dict[str, int]:
        return {
            "customers": seed.count(conn, t.customers, t.customers.c.id == customer_id),
            "conversations": seed.count(
                conn, t.conversations, t.conversations.c.customer_id == customer_id
            ),
            "messages": seed.count(conn, t.messages),
        }

    return await db.run_read(counts)


async def test_an_erasure_waits_for_a_message_being_stored_and_erases_it_too(
    postgres_url: str,
) -> None:
    async with _scene(postgres_url, ended=False) as (db, watcher, service, channel, first):
        async with db.engine.begin() as conn:
            # A message's transaction, which has stored its message, uncommitted.
            said = CustomerMessageIn(channel.id, ADA, "two", [])
            await conn.run_sync(
                lambda sync: service._store_customer_message(sync, Attempt(False), incoming=said)
            )
            erasing = asyncio.create_task(db.run_write(erase_customer, channel.id, "ada"))
            await until_waiting_or_done(watcher, erasing, what="the erasure to wait")
        erased: Erasure = await asyncio.wait_for(erasing, timeout=10)
        assert erased.found
        assert await _left_of(db, first.customer.id) == NOTHING_LEFT


async def test_a_message_that_waited_for_an_erasure_is_stored_for_a_new_customer(
    postgres_url: str,
) -> None:
    async with _scene(postgres_url, ended=True) as (db, watcher, service, channel, first):
        async with db.engine.begin() as conn:
            await conn.run_sync(erase_customer, channel.id, "ada")
            said = asyncio.create_task(_said(service, channel, "after"))
            await until_waiting_or_done(watcher, said, what="the message to wait for the erasure")
        delivered = await asyncio.wait_for(said, timeout=10)
        assert delivered.message.text == "after"
        assert delivered.customer.id != first.customer.id
        assert await _left_of(db, first.customer.id) == {
            "customers": 0,
            "conversations": 0,
            "messages": 1,
        }
        now_known = await db.run_read(customers.find_customer, channel.id, "ada")
        assert now_known is not None
        assert now_known.id == delivered.customer.id


async def test_an_erasure_waits_for_a_conversation_being_opened_and_erases_it_too(
    postgres_url: str,
) -> None:
    async with _scene(postgres_url, ended=True) as (db, watcher, _, channel, first):
        async with db.engine.begin() as conn:
            # A message's transaction, which has opened the customer's next conversation.
            await conn.run_sync(lookups.conversation_for_customer, first.customer, None, now=2)
            erasing = asyncio.create_task(db.run_write(erase_customer, channel.id, "ada"))
            await until_waiting_or_done(watcher, erasing, what="the erasure to wait")
        erased = await asyncio.wait_for(erasing, timeout=10)
        assert erased.conversations == 2
        assert await _left_of(db, first.customer.id) == NOTHING_LEFT


async def test_an_erasure_and_a_delivery_settling_lock_in_the_same_order(
    postgres_url: str,
) -> None:
    """A settle deletes its outbox row, marks its message, then stamps the conversation (a
    customer message CXone took); the erasure must not hold the conversation while it waits
    for the message, or the two deadlock."""
    async with _scene(postgres_url, ended=False) as (db, watcher, _, channel, said):
        lanes = kinds.conversation_lanes(said.conversation.id)
        row_ids = await db.run_read(
            lambda c: [
                r.id for r in c.execute(select(t.outbox.c.id).where(t.outbox.c.lane.in_(lanes)))
            ]
        )
        assert len(row_ids) == 1
        async with db.engine.begin() as conn:

            def settle_row_and_message(sync: Connection) -> None:
                outbox_rows.complete_many(sync, row_ids)
                messages.set_message_status(sync, said.message.id, "sent")

            await conn.run_sync(settle_row_and_message)
            erasing = asyncio.create_task(db.run_write(erase_customer, channel.id, "ada"))
            await until_waiting_or_done(watcher, erasing, what="the erasure to wait")
            await conn.run_sync(conversations.mark_checked_in_cxone, said.conversation.id, 3)
        erased = await asyncio.wait_for(erasing, timeout=10)
        assert erased.messages == 1
        assert await _left_of(db, said.customer.id) == NOTHING_LEFT


async def test_of_two_erasures_at_once_the_second_finds_nothing(postgres_url: str) -> None:
    async with _scene(postgres_url, ended=False) as (db, watcher, _, channel, _):
        async with db.engine.begin() as conn:
            first = await conn.run_sync(erase_customer, channel.id, "ada")
            second = asyncio.create_task(db.run_write(erase_customer, channel.id, "ada"))
            await until_waiting_or_done(watcher, second, what="the second erasure to wait")
        assert first.found
        assert first.messages == 1
        assert not (await asyncio.wait_for(second, timeout=10)).found


@asynccontextmanager
async def _file_server(data: bytes) -> AsyncIterator[str]:
    """An HTTP server on loopback that answers every GET with `data`: its base URL."""

    async def file(_: web.Request) -> web.Response:
        return web.Response(body=data, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/{name}", file)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# Two sessions of the database wait on a lock.
TWO_WAITING = SESSIONS_WAITING_ON_A_LOCK.replace("count(*)", "count(*) - 1")


async def test_an_erasure_and_an_agent_attachment_being_kept_lock_in_the_same_order(
    postgres_url: str,
) -> None:
    """Keeping an agent's attachment writes its message's links and inserts the file (whose
    customer key locks the customer's row); the erasure locks the message before the customer,
    so the keeping must take the message's row first too, or the two deadlock."""
    async with (
        _scene(postgres_url, ended=False) as (db, watcher, _, channel, said),
        _file_server(b"hello") as base,
    ):
        reply = lifecycle.message_for_customer(
            said.conversation,
            seq=1,
            sender="agent",
            text="here",
            content=text_content("here"),
            attachments=[{"friendlyName": "a.txt", "url": f"{base}/a.txt"}],
            author=None,
            de_message_id=None,
            now=2,
        )
        await db.run_write(messages.insert_message, reply)
        async with HttpClient() as http:
            keeper = AttachmentRehoster(db, http, seed.PUBLIC_URL, timeout=5)
            async with db.engine.begin() as hold:
                # Another transaction holds the customer's row: the keeping waits at its insert.
                customer_row = select(t.customers).where(t.customers.c.id == said.customer.id)
                await hold.execute(customer_row.with_for_update())
                keeping = asyncio.create_task(keeper.rehost(reply, said.customer))
                await until_waiting_or_done(watcher, keeping, what="the keeping to wait")
                erasing = asyncio.create_task(db.run_write(erase_customer, channel.id, "ada"))
                await until_waiting_or_done(
                    watcher, erasing, what="the erasure to wait too", query=TWO_WAITING
                )
            kept = await asyncio.wait_for(keeping, timeout=10)
            erased = await asyncio.wait_for(erasing, timeout=10)
        assert kept.attachments[0]["url"].startswith(seed.PUBLIC_URL)
        assert (erased.messages, erased.attachments) == (2, 1)
        assert await _left_of(db, said.customer.id) == NOTHING_LEFT


async def test_an_erasure_chosen_as_a_deadlocks_victim_runs_again_and_completes(
    postgres_url: str,
) -> None:
    """`erase` runs the erasure again when PostgreSQL aborts it to break a deadlock. Here another
    transaction holds the customer's row, which the erasure locks last, then asks for the
    delivery row the erasure locked first. The erasure waited first, so its deadlock check runs
    first and it is the victim; its second run waits for the other to commit, then erases."""
    async with _scene(postgres_url, ended=False) as (db, watcher, _, channel, said):
        lanes = kinds.conversation_lanes(said.conversation.id)
        async with db.engine.begin() as hold:
            # Only the erasure's deadlock check may run: the victim is then always the erasure,
            # however late a loaded machine runs the checks.
            await hold.execute(text("SET LOCAL deadlock_timeout = '60s'"))
            customer_row = select(t.customers).where(t.customers.c.id == said.customer.id)
            await hold.execute(customer_row.with_for_update())
            erasing = asyncio.create_task(erase(db, channel.id, "ada"))
            await until_waiting_or_done(watcher, erasing, what="the erasure to wait")
            delivery_rows = select(t.outbox.c.id).where(t.outbox.c.lane.in_(lanes))
            held = (await hold.execute(delivery_rows.with_for_update())).all()
        assert len(held) == 1  # the customer's message, towards CXone
        erased = await asyncio.wait_for(erasing, timeout=15)
        assert (erased.messages, erased.outbox_rows) == (1, 1)
        assert await _left_of(db, said.customer.id) == NOTHING_LEFT


async def test_an_upload_that_waited_for_an_erasure_is_kept_for_a_new_customer(
    postgres_url: str, tmp_path: Path, emulator: Emulator
) -> None:
    """A visitor's upload whose customer is erased while it is stored waits for the erasure,
    then belongs to the customer that the visitor's id now names, as a message would."""
    overrides = {"database_url": postgres_url}
    async with (
        store_and_watcher(postgres_url) as (db, watcher),
        custom_webchat(tmp_path, emulator, overrides=overrides) as chat,
        loopback.async_client() as http,
    ):
        headers = {"X-Byoc-Visitor": "a" * 32, "Origin": chat.page_origin}
        upload_url = f"{chat.url}/webchat/v1/channels/{chat.channel_id}/attachments"

        async def upload() -> httpx.Response:
            files = {"file": ("note.txt", b"hello", "text/plain")}
            return await http.post(upload_url, files=files, headers=headers)

        assert (await upload()).status_code == 201
        (erased_id, external_id) = await watcher.fetchrow("SELECT id, external_id FROM customers")
        async with db.engine.begin() as conn:
            await conn.run_sync(erase_customer, chat.channel_id, external_id)
            uploading = asyncio.create_task(upload())
            await until_waiting_or_done(watcher, uploading, what="the upload to wait")
        answer = await asyncio.wait_for(uploading, timeout=10)
        assert answer.status_code == 201, answer.text
        owners = await watcher.fetch("SELECT customer_id FROM attachments")
        assert len(owners) == 1
        assert owners[0]["customer_id"] != erased_id
        now_known = await db.run_read(customers.find_customer, chat.channel_id, external_id)
        assert now_known is not None
        assert now_known.id == owners[0]["customer_id"]
