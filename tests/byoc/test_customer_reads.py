"""What a customer's message reads before it writes (`lookups.customer_and_conversation`): its
customer and the conversation it goes to, by one statement, with the same answers as reading
them one after the other; on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection

from byoc.conversations import lifecycle
from byoc.conversations.models import CustomerMessageIn, CustomerProfile
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.errors import ConversationEnded, ConversationNotFound
from byoc.store import Database, conversations, customers, now_ms
from byoc.store import schema as t
from byoc.store.records import Channel
from tests.support import seed

POLICY = LifecyclePolicy(
    idle_timeout_ms=0, countdown_ms=0, warning_text="", ended_text="", end_action="close"
)


class Reads:
    """Counts the statements that read a customer or a conversation for a customer's message."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.names: list[str] = []
        for module, name in (
            (customers, "find_customer"),
            (conversations, "get_conversation"),
            (conversations, "latest_conversation"),
            (conversations, "customer_and_conversation"),
        ):
            monkeypatch.setattr(module, name, self._counted(name, getattr(module, name)))

    def _counted(self, name: str, read: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.names.append(name)
            return read(*args, **kwargs)

        return counted


async def _service_and_channel(db: Database) -> tuple[ConversationService, Channel]:
    return ConversationService(db, POLICY), await db.run_write(seed.add_channel)


async def _said(service: ConversationService, channel_id: str, who: str, **kw: Any) -> Any:
    return await service.receive_customer_message(
        CustomerMessageIn(channel_id, CustomerProfile(external_id=who), "hi", **kw)
    )


async def test_a_returning_customers_message_reads_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, channel = await _service_and_channel(db)
    first = await _said(service, channel.id, "u1")
    reads = Reads(monkeypatch)
    again = await _said(service, channel.id, "u1")
    named = await _said(service, channel.id, "u1", thread_id=first.conversation.id)
    assert reads.names == ["customer_and_conversation", "customer_and_conversation"]
    assert again.conversation.id == named.conversation.id == first.conversation.id
    assert again.customer == first.customer
    assert named.message.seq == 2


async def test_a_thread_of_another_customer_is_not_found_and_nothing_is_written(
    db: Database,
) -> None:
    service, channel = await _service_and_channel(db)
    theirs = await _said(service, channel.id, "u2")
    for who in ("u3", "someone new"):
        with pytest.raises(ConversationNotFound):
            await _said(service, channel.id, who, thread_id=theirs.conversation.id)
    assert await db.run_read(lambda conn: seed.count(conn, t.customers)) == 1
    assert await db.run_read(lambda conn: seed.count(conn, t.messages)) == 1


async def test_an_ended_thread_is_refused_and_without_one_a_new_conversation_opens(
    db: Database,
) -> None:
    service, channel = await _service_and_channel(db)
    first = await _said(service, channel.id, "u4")

    def end(conn: Connection) -> None:
        assert lifecycle.end_conversation(conn, first.conversation, reason="agent", now=now_ms())

    await db.run_write(end)
    with pytest.raises(ConversationEnded):
        await _said(service, channel.id, "u4", thread_id=first.conversation.id)
    fresh = await _said(service, channel.id, "u4")
    assert fresh.conversation.id != first.conversation.id
    assert fresh.conversation.customer_id == first.customer.id
