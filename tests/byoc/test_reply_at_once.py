"""A reply that names its channel and its thread's id reads and writes its conversation at once
(`byoc.conversations.replies`, `conversations.next_seq_for_reply`): on PostgreSQL one statement
where a read and an UPDATE took two. It must change nothing that the usual way would not: on
both databases, a reply is stored as before, a repeat is replayed with the conversation left as
it was, and a thread outside the channel named is not found and not touched."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import Connection

from byoc.conversations.models import AgentMessageIn, CustomerMessageIn, CustomerProfile
from byoc.conversations.policy import LifecyclePolicy
from byoc.conversations.service import ConversationService
from byoc.delivery.common import Loaded, load, preload_messages
from byoc.errors import ConversationNotFound, Forbidden
from byoc.outbox import kinds
from byoc.store import Database, conversations, dialect, messages
from byoc.store import schema as t
from byoc.store.records import Conversation
from tests.support import seed
from tests.support.incoming import agent_reply
from tests.support.outbox import Recorder
from tests.support.waiting import wait_for_async

POLICY = LifecyclePolicy(
    idle_timeout_ms=120_000,
    countdown_ms=20_000,
    warning_text="Are you still there?",
    ended_text="ended",
    end_action="close",
)


class Reads:
    """Counts the reads of a conversation with its customer: the usual way's first statement."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        read = conversations.get_conversation_and_customer

        def counted(conn: Connection, conversation_id: str) -> object:
            self.count += 1
            return read(conn, conversation_id)

        monkeypatch.setattr(conversations, "get_conversation_and_customer", counted)


async def _thread(db: Database, service: ConversationService, external_id: str) -> Conversation:
    channel = await db.run_write(seed.add_channel)
    said = await service.receive_customer_message(
        CustomerMessageIn(channel.id, CustomerProfile(external_id=external_id), "hi")
    )
    return said.conversation


async def _conversation(db: Database, conversation_id: str) -> Conversation:
    found = await db.run_read(lambda conn: conversations.get_conversation(conn, conversation_id))
    assert found is not None
    return found


async def test_a_reply_on_a_named_thread_is_stored_as_the_usual_way_stores_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sequence number, idle deadline, CXone's thread id and the customer: what the reply hands
    on is what the store holds after the commit. On PostgreSQL nothing read the conversation
    before writing it."""
    service = ConversationService(db, POLICY)
    conversation = await _thread(db, service, "u1")
    reads = Reads(monkeypatch)
    reply = replace(agent_reply(conversation.id, "de-1"), de_thread_id="de-thread-1")
    delivered = await service.receive_agent_message(
        reply, channel_id=conversation.channel_id, tenant_id="default"
    )

    stored = await _conversation(db, conversation.id)
    assert delivered.conversation == stored
    assert stored.next_seq == 2
    assert stored.de_thread_id == "de-thread-1"
    assert stored.idle_deadline is not None
    assert stored.idle_deadline == delivered.message.created_at + POLICY.idle_timeout_ms
    assert delivered.message.seq == 1
    assert delivered.customer.id == conversation.customer_id
    assert delivered.customer.external_id == "u1"
    one_statement = dialect.backend(db.url) == dialect.POSTGRESQL
    assert reads.count == (0 if one_statement else 1)


async def test_a_repeated_reply_on_a_named_thread_leaves_its_conversation_as_it_was(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repeat's first run writes the conversation, then fails on the message's unique key
    and is rolled back whole; the run that looks first replays without writing."""
    service = ConversationService(db, POLICY)
    conversation = await _thread(db, service, "u2")
    reply = agent_reply(conversation.id, "de-2")
    first = await service.receive_agent_message(
        reply, channel_id=conversation.channel_id, tenant_id="default"
    )
    before = await _conversation(db, conversation.id)
    looks: list[str] = []
    find = messages.find_message_by_de_id

    def counted(conn: Connection, channel_id: str, de_message_id: str) -> object:
        looks.append(de_message_id)
        return find(conn, channel_id, de_message_id)

    monkeypatch.setattr(messages, "find_message_by_de_id", counted)
    again = await service.receive_agent_message(
        replace(reply, text="again"), channel_id=conversation.channel_id, tenant_id="default"
    )
    assert again.duplicate
    assert again.message == first.message
    assert looks == ["de-2"]
    assert await _conversation(db, conversation.id) == before
    assert await db.run_read(lambda conn: seed.count(conn, t.messages)) == 2


@pytest.mark.parametrize("named", ["another channel of the tenant", "no channel at all"])
async def test_a_thread_outside_the_channel_named_is_not_found_and_not_touched(
    db: Database, named: str
) -> None:
    service = ConversationService(db, POLICY)
    conversation = await _thread(db, service, "u3")
    before = await _conversation(db, conversation.id)
    other = await db.run_write(seed.add_channel)
    reply = agent_reply(conversation.id, "de-3")
    if named == "no channel at all":
        reply = replace(reply, thread_id="thr_nobody")
    with pytest.raises(ConversationNotFound):
        await service.receive_agent_message(reply, channel_id=other.id, tenant_id="default")
    assert await _conversation(db, conversation.id) == before
    assert await db.run_read(lambda conn: seed.count(conn, t.messages)) == 1


async def test_without_the_idle_clock_a_reply_goes_the_usual_way(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ConversationService(db, replace(POLICY, idle_timeout_ms=0))
    conversation = await _thread(db, service, "u4")
    reads = Reads(monkeypatch)
    reply: AgentMessageIn = agent_reply(conversation.id, "de-4")
    delivered = await service.receive_agent_message(
        reply, channel_id=conversation.channel_id, tenant_id="default"
    )
    assert reads.count == 1
    stored = await _conversation(db, conversation.id)
    assert delivered.conversation == stored
    assert stored.idle_deadline is None


async def test_a_reply_taken_at_once_is_claimed_at_its_insert_with_what_the_store_holds(
    db: Database,
) -> None:
    """The production path whole: the conversation written at once with its lane's lock (on
    PostgreSQL), the message and its row claimed at insert by one statement. The delivery gets
    the rows as committed, with nothing read for it; the reply's repeat changes nothing and
    claims nothing."""
    recorder = Recorder(
        db,
        [kinds.CustomerMessage.KIND, kinds.AgentMessage.KIND],
        preloads={kinds.AgentMessage.KIND: preload_messages},
    )
    worker, deliveries = recorder.worker, recorder.rows
    # The thread opened without the worker: its message waits for a pass, which delivers it
    # here (a fresh claim would deliver it from a task of its own, at a time of its own).
    conversation = await _thread(db, ConversationService(db, POLICY), "u5")
    while await worker.run_once():
        pass
    deliveries.clear()
    service = ConversationService(db, POLICY, fresh_rows=worker)
    reply = replace(agent_reply(conversation.id, "de-5"), de_thread_id="de-thread-5")
    first = await service.receive_agent_message(
        reply, channel_id=conversation.channel_id, tenant_id="default"
    )
    assert first.claimed is not None

    async def delivered() -> bool:
        return len(deliveries) == 1

    await wait_for_async(delivered, what="the reply's delivery")
    held = deliveries[0].context
    assert isinstance(held, Loaded)
    assert held == await load(db, message_id=first.message.id)
    assert held.conversation.de_thread_id == "de-thread-5"
    await worker.run_once()  # settles the delivery
    before = await _conversation(db, conversation.id)

    again = await service.receive_agent_message(
        replace(reply, text="again"), channel_id=conversation.channel_id, tenant_id="default"
    )
    assert again.duplicate
    assert again.claimed is None
    assert await _conversation(db, conversation.id) == before
    assert await db.run_read(lambda conn: seed.count(conn, t.outbox)) == 0  # nothing queued


@pytest.mark.parametrize("idle_timeout_ms", [120_000, 0], ids=["at-once", "usual-way"])
async def test_a_wrong_brand_on_an_unknown_thread_is_refused_as_the_thread(
    db: Database, idle_timeout_ms: int
) -> None:
    """The refusals come in the same order either way: the thread, then the brand."""
    service = ConversationService(db, replace(POLICY, idle_timeout_ms=idle_timeout_ms))
    conversation = await _thread(db, service, "u6")
    wrong = {"id": "-1"}  # no tenant's brand
    unknown = replace(agent_reply("thr_nobody", "de-6"), brand=wrong)
    with pytest.raises(ConversationNotFound):
        await service.receive_agent_message(
            unknown, channel_id=conversation.channel_id, tenant_id="default"
        )
    known = replace(agent_reply(conversation.id, "de-7"), brand=wrong)
    before = await _conversation(db, conversation.id)
    with pytest.raises(Forbidden):
        await service.receive_agent_message(
            known, channel_id=conversation.channel_id, tenant_id="default"
        )
    assert await _conversation(db, conversation.id) == before


async def test_cxones_thread_id_names_the_open_conversation_before_an_ended_one(
    db: Database,
) -> None:
    """CXone may carry one thread of its own across several of ours: a reply that names it
    alone goes to the open one, or else the newest."""

    def two(conn: Connection) -> tuple[str, str]:
        channel = seed.add_channel(conn)
        customer = seed.add_customer(conn, channel, "wh-both")
        older = seed.add_conversation(conn, customer, created_at=1, ended_at=5, texts=["a"])
        newer = seed.add_conversation(conn, customer, created_at=6, ended_at=None, texts=["b"])
        for seeded in (older, newer):
            conversations.update_conversation(conn, seeded.conversation.id, de_thread_id="de-x")
        return older.conversation.id, newer.conversation.id

    _older, newer = await db.run_write(two)
    found = await db.run_read(conversations.find_conversation_by_de_thread, "de-x")
    assert found is not None
    assert found.id == newer

    await db.run_write(
        lambda conn: conversations.update_conversation(conn, newer, state="ended", ended_at=9)
    )
    found = await db.run_read(conversations.find_conversation_by_de_thread, "de-x")
    assert found is not None
    assert found.id == newer  # both ended: the newest
