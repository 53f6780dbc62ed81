"""A customer's message or keystroke racing the idle warning (on SQLite and PostgreSQL).

The write that stores a customer's message reads the conversation first. On PostgreSQL an idle
warning can commit between that read and the write: the write then holds a conversation
without a countdown while the row has one. Whatever the customer did must still cancel the
countdown (and tell the platform), never leave it running to end a conversation the customer
has just written in. These tests hand the write a conversation read before the warning
committed, which is exactly what the interleaving gives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import Connection

from byoc.clock import ManualClock
from byoc.conversations import lifecycle
from byoc.conversations.lifecycle import LifecycleLoops
from byoc.conversations.policy import LifecyclePolicy
from byoc.http import HttpClient
from byoc.outbox import kinds
from byoc.settings import Settings
from byoc.store import Database, conversations
from byoc.store.records import Conversation
from byoc.tenancy import TenantClients
from tests.support.outbox import queued_payloads
from tests.support.postgres import until_waiting_or_done
from tests.support.seed import add_channel, add_conversation, add_customer

START = 1_700_000_000_000
IDLE_MS = 120_000
COUNTDOWN_MS = 20_000
POLICY = LifecyclePolicy(
    idle_timeout_ms=IDLE_MS,
    countdown_ms=COUNTDOWN_MS,
    warning_text="Are you still there? ({seconds} s)",
    ended_text="Ended for inactivity.",
    end_action="close",
)


@pytest.fixture
async def loops(db: Database) -> AsyncIterator[tuple[LifecycleLoops, ManualClock]]:
    clock = ManualClock(START)
    http = HttpClient()
    settings = Settings(environment="development")
    tenants = TenantClients(db, http, timeout=settings.cxone_timeout_seconds)
    yield LifecycleLoops(db, tenants, POLICY, settings, lambda: None, clock), clock
    await http.aclose()


async def _idle_conversation(db: Database) -> Conversation:
    """An open conversation whose customer owes a reply: its idle deadline is `START`."""

    def seed(conn: Connection) -> Conversation:
        customer = add_customer(conn, add_channel(conn), "racer")
        conversation = add_conversation(
            conn, customer, created_at=START - IDLE_MS, ended_at=None, texts=["hello"]
        ).conversation
        conversations.transition_conversation(
            conn, conversation.id, {"state": "open"}, idle_deadline=START
        )
        stored = conversations.get_conversation(conn, conversation.id)
        assert stored is not None
        return stored

    return await db.run_write(seed)


async def _current(db: Database, conversation_id: str) -> Conversation:
    found = await db.run_read(lambda conn: conversations.get_conversation(conn, conversation_id))
    assert found is not None
    return found


async def _idle_signals(db: Database, conversation_id: str) -> list[bool]:
    """The `warning` of every idle signal queued for the platform, oldest first."""
    payloads = await queued_payloads(db, kinds.IdleChanged.KIND)
    return [bool(p["warning"]) for p in payloads if p["conversation_id"] == conversation_id]


@pytest.mark.parametrize("activity", ["message", "keystroke"])
async def test_activity_read_before_the_warning_still_cancels_the_countdown(
    db: Database, loops: tuple[LifecycleLoops, ManualClock], activity: str
) -> None:
    runner, clock = loops
    stale = await _idle_conversation(db)
    assert stale.countdown_deadline is None

    # The warning commits after the customer's write read the conversation …
    assert await runner.fire_due_timers() == 1
    warned = await _current(db, stale.id)
    assert warned.countdown_deadline == START + COUNTDOWN_MS

    # … and the write goes ahead with what it read.
    now = START + 1_000
    taken = None
    if activity == "message":
        taken = await db.run_write(lambda conn: lifecycle.customer_wrote(conn, stale, now))
        assert taken is not None
        assert taken[0] == warned.next_seq
    else:
        assert await db.run_write(lambda conn: lifecycle.customer_spoke(conn, stale, now))

    after = await _current(db, stale.id)
    assert after.is_open
    assert after.countdown_deadline is None
    if taken is not None:
        # The conversation the write hands on is the row as it committed, not what it read.
        assert taken[1] == after
    assert after.idle_deadline is None
    assert after.last_customer_activity_at == now
    assert await _idle_signals(db, stale.id) == [True, False]  # the widget drops its warning

    # The countdown's deadline passes: nothing ends.
    clock.advance(COUNTDOWN_MS + 1_000)
    assert await runner.fire_due_timers() == 0
    assert (await _current(db, stale.id)).is_open


async def test_message_read_before_the_end_is_not_counted_in_the_ended_conversation(
    db: Database, loops: tuple[LifecycleLoops, ManualClock]
) -> None:
    runner, clock = loops
    stale = await _idle_conversation(db)
    assert await runner.fire_due_timers() == 1  # warned
    clock.advance(COUNTDOWN_MS)
    assert await runner.fire_due_timers() == 1  # ended by the countdown
    ended = await _current(db, stale.id)
    assert not ended.is_open

    now = clock.now_ms()
    assert await db.run_write(lambda conn: lifecycle.customer_wrote(conn, stale, now)) is None
    assert await db.run_write(lambda conn: lifecycle.customer_spoke(conn, stale, now)) is False
    assert (await _current(db, stale.id)).next_seq == ended.next_seq


async def test_the_end_does_not_close_a_conversation_the_customer_answered_meanwhile(
    db: Database, db_url: str, loops: tuple[LifecycleLoops, ManualClock]
) -> None:
    """PostgreSQL: the end reads the countdown, then writes. The customer's answer commits in
    between (here: it holds the row, uncommitted, while the end reads, and commits once the
    end's UPDATE waits for the row). The end must see that and leave the conversation open."""
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one write transaction at a time: the two cannot interleave")
    runner, clock = loops
    conversation = await _idle_conversation(db)
    assert await runner.fire_due_timers() == 1  # warned
    clock.advance(COUNTDOWN_MS)
    warned = await _current(db, conversation.id)
    watcher = await asyncpg.connect(db_url)
    try:
        async with db.engine.begin() as conn:
            # The customer's answer, not committed yet.
            assert await conn.run_sync(lifecycle.customer_spoke, warned, clock.now_ms())
            ending = asyncio.create_task(runner.fire_due_timers())

            await until_waiting_or_done(watcher, ending, what="the end to wait for the row")
        assert await asyncio.wait_for(ending, timeout=10) == 0
    finally:
        await watcher.close()
    after = await _current(db, conversation.id)
    assert after.is_open
    assert after.countdown_deadline is None
    assert await _idle_signals(db, conversation.id) == [True, False]
