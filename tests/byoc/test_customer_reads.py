"""What a customer's message reads before it writes (`lookups.taken_for_customer_message`): its
customer and the conversation it goes to, by one statement, with the same answers as reading
them one after the other; on both databases. On PostgreSQL the common case reads and writes
the conversation by one statement (`store.message_intake`), and hands everything else to the
reads."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Connection

from byoc.conversations import lifecycle
from byoc.conversations.models import CustomerMessageIn, CustomerProfile
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.errors import ConversationEnded, ConversationNotFound
from byoc.store import Database, conversations, customers, message_intake, now_ms
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
            (message_intake, "take_for_customer_message"),
        ):
            monkeypatch.setattr(module, name, self._counted(name, getattr(module, name)))

    def _counted(self, name: str, read: Any) -> Any:
        def counted(conn: Connection, *args: Any, **kwargs: Any) -> Any:
            if name != "take_for_customer_message" or conn.dialect.name == "postgresql":
                self.names.append(name)  # (on SQLite it runs no statement)
            return read(conn, *args, **kwargs)

        return counted


def _pg(db: Database) -> bool:
    return db.url.startswith("postgresql")


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
    if _pg(db):
        assert reads.names == ["take_for_customer_message", "take_for_customer_message"]
    else:
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


async def test_a_message_that_changes_the_profile_writes_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile the message changes is not taken at once: the reads see it and write it."""
    service, channel = await _service_and_channel(db)
    fields = [{"ident": "tier", "value": "gold"}]
    reads = Reads(monkeypatch)

    async def says(**profile: Any) -> Any:
        who = CustomerProfile(external_id="u5", **profile)
        return await service.receive_customer_message(CustomerMessageIn(channel.id, who, "hi"))

    first = await says(first_name="Ann", custom_fields=fields)
    reads.names.clear()
    renamed = await says(first_name="Anna")
    changed = list(reads.names)
    reads.names.clear()
    same = await says(first_name="Anna", custom_fields=fields)  # as stored: taken at once
    bare = await says()
    if _pg(db):
        assert changed == ["take_for_customer_message", "customer_and_conversation"]
        assert reads.names == ["take_for_customer_message"] * 2
    else:  # one read for each, whatever the profile
        assert changed == ["customer_and_conversation"]
        assert reads.names == ["customer_and_conversation"] * 2
    stored = await db.run_read(customers.find_customer, channel.id, "u5")
    assert stored is not None
    assert (stored.first_name, stored.custom_fields) == ("Anna", fields)
    assert renamed.customer == same.customer == bare.customer == stored
    assert {d.conversation.id for d in (renamed, same, bare)} == {first.conversation.id}
    assert [d.message.seq for d in (first, renamed, same, bare)] == [0, 1, 2, 3]


async def test_a_message_during_a_countdown_cancels_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A countdown running is not taken at once: the message cancels it, then takes its
    number."""
    service, channel = await _service_and_channel(db)
    first = await _said(service, channel.id, "u6")
    reads = Reads(monkeypatch)

    def warn(conn: Connection) -> None:
        conn.execute(
            t.conversations.update()
            .where(t.conversations.c.id == first.conversation.id)
            .values(countdown_deadline=now_ms() + 60_000, idle_deadline=None)
        )

    await db.run_write(warn)
    before = now_ms()
    again = await _said(service, channel.id, "u6")
    assert again.conversation.id == first.conversation.id
    assert again.conversation.countdown_deadline is None
    assert (again.conversation.last_customer_activity_at or 0) >= before
    assert again.message.seq == 1
    expected = ["customer_and_conversation"]
    assert reads.names == (["take_for_customer_message", *expected] if _pg(db) else expected)
