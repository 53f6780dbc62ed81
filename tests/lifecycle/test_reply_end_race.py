"""An agent's reply racing the conversation's end (PostgreSQL).

A reply's transaction reads its conversation before it reserves the reply's sequence number,
and an end (the agent's close noticed, the idle countdown) can commit in between. The reply
then waits for the end's lock on the conversation; it must be refused once the end commits,
not stored in a conversation whose customer has been told it is over. Both ways of taking the
conversation are covered: in one statement with the idle clock (the reply's usual way), and
read then updated (the idle clock off).
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Connection

from byoc.conversations import lifecycle
from byoc.conversations.models import AgentMessageIn, CustomerMessageIn, CustomerProfile
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.errors import ConversationEnded
from byoc.store import messages
from tests.support import seed
from tests.support.postgres import store_and_watcher, until_waiting_or_done

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("idle_ms", [120_000, 0], ids=["in-one-statement", "read-then-updated"])
async def test_a_reply_that_waited_for_the_end_is_refused(postgres_url: str, idle_ms: int) -> None:
    policy = LifecyclePolicy(idle_ms, 20_000, "still there?", "ended", "close")
    async with store_and_watcher(postgres_url) as (db, watcher):
        service = ConversationService(db, policy)
        channel = await db.run_write(seed.add_channel)
        said = await service.receive_customer_message(
            CustomerMessageIn(channel.id, CustomerProfile(external_id="ada"), "hello", [])
        )
        conversation = said.conversation
        reply = AgentMessageIn(
            thread_id=conversation.id,
            de_thread_id=None,
            de_message_id="de-late",
            content={"type": "TEXT", "payload": {"text": "too late"}},
            text="too late",
            attachments=[],
            author=None,
            brand=None,
            recipients=[],
        )
        async with db.engine.begin() as conn:

            def end(sync: Connection) -> None:
                assert lifecycle.end_conversation(sync, conversation, reason="agent", now=2)

            await conn.run_sync(end)
            replying = asyncio.create_task(
                service.receive_agent_message(
                    reply, channel_id=channel.id, tenant_id=channel.tenant_id
                )
            )
            await until_waiting_or_done(watcher, replying, what="the reply to wait for the end")
        with pytest.raises(ConversationEnded):
            await asyncio.wait_for(replying, timeout=10)
        stored = await db.run_read(messages.find_message_by_de_id, channel.id, "de-late")
        assert stored is None
