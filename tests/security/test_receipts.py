"""Receipts: a widget visitor reports only the agent messages of their own conversations.

Another visitor of the same channel who learns a message id (a shared screen, a log) cannot
mark it delivered or seen: CXone's agent would otherwise read a receipt the customer never sent.
"""

from __future__ import annotations

import asyncio

from byoc.store import Database, messages
from tests.support.webchat import Webchat
from tests.support.widget import agent_reply, widget


async def stored_status(webchat: Webchat, message_id: str) -> str:
    db = Database(webchat.stack.settings.database_url)
    try:
        message = await db.run_read(messages.get_message, message_id)
    finally:
        await db.close()
    assert message is not None
    return message.status


async def test_a_visitor_cannot_report_receipts_for_another_visitors_messages(
    webchat: Webchat,
) -> None:
    async with widget(webchat) as alice:
        thread = (await alice.say("my order is late"))["message"]["threadId"]
        await asyncio.to_thread(agent_reply, webchat, thread, "sorry, checking")
        reply = (await alice.expect("message", message__sender="agent"))["message"]
        before = await stored_status(webchat, reply["id"])
        assert before != "seen"

        async with widget(webchat) as mallory:
            await mallory.send({"type": "seen", "messageId": reply["id"]})
            # Frames of one socket are handled in order: once this is acknowledged, the
            # receipt above has been handled too.
            await mallory.say("hello")
        assert await stored_status(webchat, reply["id"]) == before

        # Alice's own receipt is taken: the message id was right, only the sender was not.
        await alice.send({"type": "seen", "messageId": reply["id"]})
        await alice.say("thanks")
        assert await stored_status(webchat, reply["id"]) == "seen"
