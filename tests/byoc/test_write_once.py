"""A message is stored once, whatever retries arrive (`byoc.conversations.once`): its
transaction first runs without looking for an earlier copy, and a retry is still replayed,
whether the message's unique key catches it or a refusal stands in the way (an ended
conversation), on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Connection, Table, func, select

from byoc.conversations import lifecycle, lookups
from byoc.conversations.models import (
    AgentMessageIn,
    CustomerMessageIn,
    CustomerProfile,
    Delivered,
)
from byoc.conversations.once import Attempt, write_once
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.errors import ConversationEnded, ConversationNotFound
from byoc.store import (
    Contention,
    Database,
    DuplicateError,
    ReferenceChanged,
    conversations,
    customers,
    messages,
    now_ms,
)
from byoc.store import schema as t
from byoc.store.records import Conversation, Message
from tests.support import seed
from tests.support.incoming import agent_reply

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


async def _conversation(db: Database, conversation_id: str) -> Conversation:
    found = await db.run_read(lambda conn: conversations.get_conversation(conn, conversation_id))
    assert found is not None
    return found


async def _count(db: Database, table: Table) -> int:
    def read(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    return await db.run_read(read)


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
    reply = agent_reply(said.conversation.id, "de-1")
    first = await service.receive_agent_message(reply, channel_id=None, tenant_id="default")
    again = await service.receive_agent_message(reply, channel_id=None, tenant_id="default")
    assert again.duplicate
    assert again.message == first.message
    assert await _count(db, t.messages) == 2


class Lookups:
    """Counts the looks for an earlier copy of a message, by either id."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("find_message_by_platform_id", "find_message_by_de_id"):
            monkeypatch.setattr(messages, name, self._counted(getattr(messages, name)))

    def _counted(self, find: Callable[..., Message | None]) -> Callable[..., Message | None]:
        def counted(*args: Any) -> Message | None:
            self.count += 1
            return find(*args)

        return counted


async def test_a_new_message_costs_no_look_and_a_repeat_leaves_nothing_behind(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new message is stored in one run that does not look. Its repeat's first run fails on
    the unique key and is rolled back whole: the sequence number, the customer's activity and
    the outbox are as the first message left them; the second run looks once and replays."""
    lookups = Lookups(monkeypatch)
    service = ConversationService(db, POLICY)
    channel_id = await _channel(db)
    said = CustomerMessageIn(channel_id, CustomerProfile(external_id="u5"), "hi", [], "p-5")
    first = await service.receive_customer_message(said)
    assert lookups.count == 0
    before = await _conversation(db, first.conversation.id)
    outbox = await _count(db, t.outbox)

    again = await service.receive_customer_message(replace(said, text="hi again"))
    assert again.duplicate
    assert again.message == first.message
    assert lookups.count == 1
    assert await _conversation(db, first.conversation.id) == before
    assert before.next_seq == 1
    assert await _count(db, t.outbox) == outbox


async def test_a_refusal_before_the_look_is_final(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reply to a thread nobody knows is refused before the place of the look: a look could
    not change that, so the transaction does not run again to make one."""
    threads_looked_up: list[str | None] = []
    find_thread = lookups.conversation_for_agent

    def counted(conn: Connection, incoming: AgentMessageIn, channel_id: str | None) -> Any:
        threads_looked_up.append(incoming.thread_id)
        return find_thread(conn, incoming, channel_id)

    monkeypatch.setattr(lookups, "conversation_for_agent", counted)
    service = ConversationService(db, POLICY)
    await _channel(db)
    with pytest.raises(ConversationNotFound):
        await service.receive_agent_message(
            agent_reply("thr_unknown", "de-9"), channel_id=None, tenant_id="default"
        )
    assert threads_looked_up == ["thr_unknown"]  # one run


async def test_the_same_message_sent_twice_at_once_is_stored_once(db: Database) -> None:
    """Two identical requests together (on SQLite in one group of the writer, each job in its
    savepoint; on PostgreSQL in two transactions, the second waiting on the first's key)."""
    service = ConversationService(db, POLICY)
    channel_id = await _channel(db)
    said = CustomerMessageIn(channel_id, CustomerProfile(external_id="u6"), "hi", [], "p-6")
    one, two = await asyncio.gather(
        service.receive_customer_message(said), service.receive_customer_message(said)
    )
    assert sorted([one.duplicate, two.duplicate]) == [False, True]
    assert one.message == two.message
    assert await _count(db, t.messages) == 1


class Runs:
    """A transaction that records its runs and fails as told, run after run."""

    def __init__(self, stored: Delivered, *failures: Exception | None) -> None:
        self.stored = stored
        self.failures = list(failures)
        self.looks: list[bool] = []

    def __call__(self, conn: Connection, attempt: Attempt) -> Delivered:
        self.looks.append(attempt.look_first)
        attempt.earlier(lambda: None)
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        return self.stored


async def test_write_once_runs_again_as_the_rule_says(db: Database) -> None:
    """Without a look, then with one after a duplicate key or a refusal past the look's place,
    at most three runs; a refusal without a retry id, or on a run that looked, is final. A
    duplicate key without a retry id runs again too (a row another transaction inserted), and
    so does a foreign key's refusal (a row another transaction deleted)."""
    channel_id = await _channel(db)
    stored = await ConversationService(db, POLICY).receive_customer_message(
        CustomerMessageIn(channel_id, CustomerProfile(external_id="u7"), "hi")
    )
    dispatched: list[Delivered] = []
    ended = ConversationEnded("refused")
    duplicate = DuplicateError("duplicate key")

    refused_once = Runs(stored, ended)
    assert await write_once(db, "p-7", refused_once, dispatched.append) is stored
    assert refused_once.looks == [False, True]
    assert dispatched == [stored]

    refused_twice = Runs(stored, ended, ended)
    with pytest.raises(ConversationEnded):
        await write_once(db, "p-7", refused_twice, dispatched.append)
    assert refused_twice.looks == [False, True]

    no_id_refused = Runs(stored, ended)
    with pytest.raises(ConversationEnded):
        await write_once(db, None, no_id_refused, dispatched.append)
    assert no_id_refused.looks == [False]

    no_id_duplicate = Runs(stored, duplicate)
    assert await write_once(db, None, no_id_duplicate, dispatched.append) is stored
    assert no_id_duplicate.looks == [False, True]

    always_duplicate = Runs(stored, duplicate, duplicate, duplicate)
    with pytest.raises(DuplicateError):
        await write_once(db, None, always_duplicate, dispatched.append)
    assert always_duplicate.looks == [False, True, True]

    contended = Runs(stored, Contention("1"), Contention("2"), Contention("3"))
    with pytest.raises(Contention):
        await write_once(db, "p-7", contended, dispatched.append)
    assert contended.looks == [False, True, True]

    reference_changed = Runs(stored, ReferenceChanged("a customer erased meanwhile"))
    assert await write_once(db, None, reference_changed, dispatched.append) is stored
    assert reference_changed.looks == [False, True]
    assert dispatched == [stored, stored, stored]  # only what was stored is dispatched


async def test_a_message_keeps_what_the_store_knows_of_its_customer(db: Database) -> None:
    """The customer a message hands on (to its delivery, to the caller) is the stored one: an
    opted-out customer stays opted out."""
    service = ConversationService(db, POLICY)
    channel_id = await _channel(db)
    profile = CustomerProfile(external_id="u8")
    first = await service.receive_customer_message(CustomerMessageIn(channel_id, profile, "hi"))
    await db.run_write(lambda conn: customers.set_opted_out(conn, first.customer.id, True))
    again = await service.receive_customer_message(CustomerMessageIn(channel_id, profile, "hi"))
    assert again.customer.opted_out
