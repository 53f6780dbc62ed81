"""A message is stored once, whatever retries arrive (`byoc.conversations.once`): its
transaction first runs without looking for an earlier copy, and a retry is still replayed,
whether the message's unique key catches it or a refusal stands in the way (an ended
conversation), on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, Table, func, select

from byoc.conversations import lifecycle
from byoc.conversations.models import (
    AgentMessageIn,
    CustomerMessageIn,
    CustomerProfile,
    Delivered,
)
from byoc.conversations.once import write_once
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.errors import ConversationEnded
from byoc.store import Database, conversations, now_ms
from byoc.store import schema as t
from tests.support import seed

POLICY = LifecyclePolicy(
    idle_timeout_ms=0, countdown_ms=0, warning_text="", ended_text="", end_action="close"
)


async def _channel(db: Database) -> str:
    return (await db.run_write(seed.add_channel)).id


async def _end(db: Database, conversation_id: str) -> None:
    def tx(conn: Connection) -> None:
        conversation = conversations.get_conversation(conn, conversation_id)
        assert conversation is not None
        assert lifecycle.end_conversation(conn, conversation, reason="agent", now=now_ms())

    await db.run_write(tx)


async def _count(db: Database, table: Table) -> int:
    def read(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    return await db.run_read(read)


def _reply(thread_id: str, de_message_id: str) -> AgentMessageIn:
    return AgentMessageIn(
        thread_id=thread_id,
        de_thread_id=None,
        de_message_id=de_message_id,
        content={"type": "TEXT", "payload": {"text": "hello"}},
        text="hello",
        attachments=[],
        author=None,
        brand=None,
        recipients=[],
    )


async def test_a_repeated_customer_message_is_replayed(db: Database) -> None:
    """The unique key catches the repeat; the run that follows looks first and replays it."""
    service = ConversationService(db, POLICY)
    channel_id = await _channel(db)
    said = CustomerMessageIn(channel_id, CustomerProfile(external_id="u1"), "hi", [], "p-1")
    first = await service.receive_customer_message(said)
    again = await service.receive_customer_message(said)
    assert not first.duplicate
    assert again.duplicate
    assert again.message == first.message
    assert await _count(db, t.messages) == 1


async def test_a_customer_message_retried_after_the_end_is_replayed_not_refused(
    db: Database,
) -> None:
    """The message was stored, then the agent ended the conversation, then the platform
    retried (its first answer was lost). The retry names the ended thread: a new message
    there is refused, but the retry gets the stored message back. Without the thread, a new
    message would open a new conversation; the retry opens none."""
    service = ConversationService(db, POLICY)
    channel_id = await _channel(db)
    customer = CustomerProfile(external_id="u2")
    first = await service.receive_customer_message(
        CustomerMessageIn(channel_id, customer, "hi", [], "p-2")
    )
    await _end(db, first.conversation.id)
    thread = first.conversation.id

    retried = await service.receive_customer_message(
        CustomerMessageIn(channel_id, customer, "hi", [], "p-2", thread_id=thread)
    )
    assert retried.duplicate
    assert retried.message.id == first.message.id
    with pytest.raises(ConversationEnded):
        await service.receive_customer_message(
            CustomerMessageIn(channel_id, customer, "new", [], "p-3", thread_id=thread)
        )

    without_thread = await service.receive_customer_message(
        CustomerMessageIn(channel_id, customer, "hi", [], "p-2")
    )
    assert without_thread.duplicate
    assert without_thread.message.id == first.message.id
    assert await _count(db, t.conversations) == 1


async def test_a_repeated_reply_is_replayed(db: Database) -> None:
    service = ConversationService(db, POLICY)
    channel_id = await _channel(db)
    said = await service.receive_customer_message(
        CustomerMessageIn(channel_id, CustomerProfile(external_id="u3"), "hi")
    )
    reply = _reply(said.conversation.id, "de-1")
    first = await service.receive_agent_message(reply, channel_id=None, tenant_id="default")
    again = await service.receive_agent_message(reply, channel_id=None, tenant_id="default")
    assert again.duplicate
    assert again.message == first.message
    assert await _count(db, t.messages) == 2


async def test_write_once_looks_first_only_after_a_refusal_and_only_for_a_retry_id(
    db: Database,
) -> None:
    """The order of runs: without a look, then (after a refusal, and when the message names
    an id) with one. A refusal of a message that names no id is final."""
    channel_id = await _channel(db)
    stored = await ConversationService(db, POLICY).receive_customer_message(
        CustomerMessageIn(channel_id, CustomerProfile(external_id="u4"), "hi")
    )
    looks: list[bool] = []

    def tx(conn: Connection, look_first: bool) -> Delivered:
        looks.append(look_first)
        if not look_first:
            raise ConversationEnded("refused before the look")
        return stored

    dispatched: list[Delivered] = []
    assert await write_once(db, "p-4", tx, dispatched.append) is stored
    assert looks == [False, True]
    assert dispatched == [stored]

    looks.clear()
    with pytest.raises(ConversationEnded):
        await write_once(db, None, tx, dispatched.append)
    assert looks == [False]
    assert dispatched == [stored]
