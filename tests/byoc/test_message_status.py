"""An agent message's status moves forward only: queued → sent → delivered → seen.

The delivery marks a message sent when its outbox pass settles, and the platform's receipts
say delivered and seen. A receipt can arrive before that settle (a widget receives the reply
as soon as it is published), and on PostgreSQL two receipts can run at once. Neither may take
the status back, and CXone hears each status once.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import Connection

from byoc.conversations.models import CustomerMessageIn, CustomerProfile
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.delivery.to_platform import ToPlatform
from byoc.outbox import kinds
from byoc.outbox.kinds import enqueue
from byoc.store import Database, messages, now_ms
from byoc.store.records import Message
from tests.support import seed
from tests.support.incoming import agent_reply
from tests.support.outbox import queued_payloads
from tests.support.postgres import until_waiting_or_done

POLICY = LifecyclePolicy(
    idle_timeout_ms=0, countdown_ms=0, warning_text="", ended_text="", end_action="close"
)


async def _reply(db: Database) -> tuple[ConversationService, str, Message]:
    """A service, its channel, and an agent's reply there, queued for the platform."""
    service = ConversationService(db, POLICY)
    channel = await db.run_write(seed.add_channel)
    said = CustomerMessageIn(channel.id, CustomerProfile(external_id="u1"), "hi", [])
    first = await service.receive_customer_message(said)
    reply = await service.receive_agent_message(
        agent_reply(first.conversation.id, "de-1", "hello"),
        channel_id=channel.id,
        tenant_id=channel.tenant_id,
    )
    assert reply.message.status == "queued"
    return service, channel.id, reply.message


async def _status(db: Database, message_id: str) -> str:
    found = await db.run_read(messages.get_message, message_id)
    assert found is not None
    return found.status


async def _told_cxone(db: Database, message_id: str) -> list[str]:
    """The statuses queued for CXone for the message, oldest first."""
    payloads = await queued_payloads(db, kinds.MessageStatus.KIND)
    return [p["status"] for p in payloads if p["message_id"] == message_id]


async def test_a_receipt_before_the_delivery_settles_is_kept(db: Database) -> None:
    service, channel_id, message = await _reply(db)
    await service.report_receipt(channel_id, message.id, "delivered", customer_id=None)
    # The delivery's settle pass, committed after the receipt.
    await db.run_write(lambda conn: messages.mark_sent(conn, [message.id]))
    assert await _status(db, message.id) == "delivered"
    await db.run_write(lambda conn: messages.mark_sent(conn, [message.id]))
    assert await _status(db, message.id) == "delivered"


async def test_receipts_in_turn_move_forward_only(db: Database) -> None:
    service, channel_id, message = await _reply(db)
    await db.run_write(lambda conn: messages.mark_sent(conn, [message.id]))
    assert await _status(db, message.id) == "sent"
    for status in ("delivered", "delivered", "seen", "delivered", "seen"):
        await service.report_receipt(channel_id, message.id, status, customer_id=None)
    assert await _status(db, message.id) == "seen"
    assert await _told_cxone(db, message.id) == ["delivered", "seen"]


async def test_a_delivery_given_up_after_a_receipt_is_not_reported_failed(db: Database) -> None:
    """An attempt reached the platform but its answer timed out; the platform's receipt came;
    later attempts failed until the row was given up. The agent must not see "failed" after
    "delivered"."""
    service, channel_id, message = await _reply(db)
    await service.report_receipt(channel_id, message.id, "delivered", customer_id=None)
    to_platform = ToPlatform(db, {})
    payload = kinds.AgentMessage(message.conversation_id, message.id)
    await db.run_write(lambda conn: to_platform.message_failed(conn, payload, "timed out"))
    assert await _status(db, message.id) == "delivered"
    assert await _told_cxone(db, message.id) == ["delivered"]


async def test_a_delivery_given_up_before_any_receipt_is_reported_failed(db: Database) -> None:
    _, _, message = await _reply(db)
    to_platform = ToPlatform(db, {})
    payload = kinds.AgentMessage(message.conversation_id, message.id)
    await db.run_write(lambda conn: to_platform.message_failed(conn, payload, "timed out"))
    assert await _status(db, message.id) == "failed"
    assert await _told_cxone(db, message.id) == ["failed"]


@pytest.mark.parametrize("first", ["seen", "delivered"])
async def test_a_receipt_racing_another_writes_after_it_or_not_at_all(
    db: Database, db_url: str, first: str
) -> None:
    """PostgreSQL: a receipt holds the message's row, uncommitted, while a `delivered` reads
    the status; it commits once the other's write waits for the row. The second receipt must
    then see the status it would take back or repeat, and write and queue nothing."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time: the two cannot interleave")
    service, channel_id, message = await _reply(db)
    watcher = await asyncpg.connect(db_url)
    try:
        async with db.engine.begin() as conn:

            def earlier_receipt(sync: Connection) -> None:
                # What a receipt writes, whichever version of it did.
                messages.set_message_status(sync, message.id, first)
                now = now_ms()
                status = kinds.MessageStatus(
                    message.conversation_id, message_id=message.id, status=first, at=now
                )
                enqueue(sync, status, now=now)

            await conn.run_sync(earlier_receipt)
            later = asyncio.create_task(
                service.report_receipt(channel_id, message.id, "delivered", customer_id=None)
            )

            await until_waiting_or_done(
                watcher, later, what="the later receipt to wait for the row"
            )
        await asyncio.wait_for(later, timeout=10)
    finally:
        await watcher.close()
    assert await _status(db, message.id) == first
    assert await _told_cxone(db, message.id) == [first]
