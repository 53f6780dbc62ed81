"""Retention: conversations ended more than `BYOC_RETENTION_DAYS` ago lose their messages and
attachments, in bounded batches, on the injected clock; open and recently ended conversations
keep everything. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import Connection, select

from byoc.clock import ManualClock
from byoc.conversations import lifecycle
from byoc.conversations.retention import DAY_MS, RetentionPurger
from byoc.settings import Settings
from byoc.store import Database, conversations, migrations
from byoc.store import schema as t
from byoc.store.attachments import get_attachment
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.seed import (
    Seeded,
    add_attachment,
    add_channel,
    add_conversation,
    add_customer,
    clean,
    count,
)
from tests.support.stack import running_stack
from tests.support.waiting import advance, run_async, wait_for

BATCH = 50


def purger(db: Database, clock: ManualClock, **options: float) -> RetentionPurger:
    settings: dict[str, float] = {
        "days": 30,
        "interval_seconds": 3600,
        "batch_size": BATCH,
        "pause_seconds": 0,
        **options,
    }
    return RetentionPurger(
        db,
        clock,
        days=int(settings["days"]),
        interval_seconds=settings["interval_seconds"],
        batch_size=int(settings["batch_size"]),
        pause_seconds=settings["pause_seconds"],
    )


@dataclass
class World:
    old: Seeded  # ended 25 days ago: 120 messages, two attachments and a copied link
    older: Seeded  # ended 28 days ago: 3 messages
    recent: Seeded  # ended yesterday
    open: Seeded  # open, started 400 days ago
    bobs_file: str  # bob's attachment, linked from a message of `old`


async def seed_world(db: Database, clock: ManualClock) -> World:
    now = clock.now_ms()

    def seed(conn: Connection) -> World:
        channel = add_channel(conn)
        alice = add_customer(conn, channel, "alice")
        bob = add_customer(conn, channel, "bob")
        carol = add_customer(conn, channel, "carol")
        bobs = add_attachment(conn, bob, b"bob's file")
        old = add_conversation(
            conn,
            alice,
            created_at=now - 26 * DAY_MS,
            ended_at=now - 25 * DAY_MS,
            texts=[f"alice says {i}" for i in range(120)],
            attachments=[
                add_attachment(conn, alice, b"alice one"),
                add_attachment(conn, alice, b"alice two"),
                bobs,  # an agent pasted a link to bob's file: it is bob's, and stays
            ],
        )
        older = add_conversation(
            conn,
            alice,
            created_at=now - 29 * DAY_MS,
            ended_at=now - 28 * DAY_MS,
            texts=["a", "b", "c"],
        )
        recent = add_conversation(
            conn,
            bob,
            created_at=now - 2 * DAY_MS,
            ended_at=now - DAY_MS,
            texts=["bob 1", "bob 2"],
            attachments=[bobs],
        )
        still_open = add_conversation(
            conn, carol, created_at=now - 400 * DAY_MS, ended_at=None, texts=["carol 1", "carol 2"]
        )
        return World(old, older, recent, still_open, str(bobs["id"]))

    return await db.run_write(seed)


async def messages_of(db: Database, seeded: Seeded) -> int:
    conversation_id = seeded.conversation.id
    return await db.run_read(count, t.messages, t.messages.c.conversation_id == conversation_id)


async def purged_at(db: Database, seeded: Seeded) -> int | None:
    def read(conn: Connection) -> int | None:
        query = select(t.conversations.c.purged_at).where(
            t.conversations.c.id == seeded.conversation.id
        )
        value: int | None = conn.execute(query).scalar_one()
        return value

    return await db.run_read(read)


async def test_a_purge_empties_long_ended_conversations_in_bounded_batches(db: Database) -> None:
    clock = ManualClock()
    world = await seed_world(db, clock)
    purge = purger(db, clock)

    # 25 and 28 days ago is inside 30 days: nothing goes.
    nothing = await purge.purge_pass()
    assert (nothing.messages, nothing.conversations) == (0, 0)

    clock.advance(10 * DAY_MS)
    batches = []
    while True:
        batch = await purge.purge_batch()
        batches.append(batch)
        assert batch.messages <= BATCH
        if not batch.more:
            break
    assert len(batches) >= 3  # 123 messages in batches of 50
    assert sum(b.messages for b in batches) == 123
    assert sum(b.attachments for b in batches) == 2
    assert sum(b.conversations for b in batches) == 2

    assert await messages_of(db, world.old) == 0
    assert await messages_of(db, world.older) == 0
    for attachment_id in world.old.attachment_ids[:2]:
        assert await db.run_read(get_attachment, attachment_id) is None
    assert await db.run_read(get_attachment, world.bobs_file) is not None
    # The rows stay, without content, stamped.
    assert await purged_at(db, world.old) == clock.now_ms()
    assert await purged_at(db, world.older) == clock.now_ms()

    # Ended yesterday (now 11 days ago) and open for 410 days: untouched.
    assert await messages_of(db, world.recent) == 2
    assert await messages_of(db, world.open) == 2
    assert await purged_at(db, world.recent) is None
    assert await purged_at(db, world.open) is None
    assert await db.run_read(count, t.customers) == 3

    again = await purge.purge_pass()
    assert (again.messages, again.conversations, again.batches) == (0, 0, 1)


async def test_the_purge_runs_on_the_clock_and_pauses_between_batches(db: Database) -> None:
    clock = ManualClock()
    world = await seed_world(db, clock)
    clock.advance(10 * DAY_MS)
    purged: Counter[str] = Counter()
    purge = RetentionPurger(
        db,
        clock,
        days=30,
        interval_seconds=3600,
        batch_size=BATCH,
        pause_seconds=5,
        on_purged=lambda kind, n: purged.update({kind: n}),
    )
    task = asyncio.create_task(purge.run())
    try:
        # The first pass runs at once: one batch, then a pause on the clock.
        await asyncio.to_thread(wait_for, lambda: clock.sleepers >= 1, what="the first batch")
        remaining = await messages_of(db, world.old) + await messages_of(db, world.older)
        assert remaining == 123 - BATCH
        await asyncio.to_thread(advance, clock, 5000)
        remaining = await messages_of(db, world.old) + await messages_of(db, world.older)
        assert remaining == 123 - 2 * BATCH
        await asyncio.to_thread(advance, clock, 5000)
        assert await messages_of(db, world.old) + await messages_of(db, world.older) == 0
        assert purged == {"message": 123, "attachment": 2, "conversation": 2}

        # Yesterday's conversation (11 days ago by now) goes at the first pass once it is
        # 30 days old.
        await asyncio.to_thread(advance, clock, 18 * DAY_MS)
        assert await messages_of(db, world.recent) == 2
        await asyncio.to_thread(advance, clock, DAY_MS)
        assert await messages_of(db, world.recent) == 0
        assert await messages_of(db, world.open) == 2
        # Bob's file went with the conversation of his that carried it.
        assert await db.run_read(get_attachment, world.bobs_file) is None
    finally:
        purge.stop()
        await asyncio.wait_for(task, timeout=10)


async def test_two_instances_purging_at_once_share_the_work(db_url: str, db: Database) -> None:
    clock = ManualClock()
    now = clock.now_ms()

    def seed(conn: Connection) -> None:
        channel = add_channel(conn)
        for n in range(30):
            customer = add_customer(conn, channel, f"user-{n}")
            add_conversation(
                conn,
                customer,
                created_at=now - 50 * DAY_MS,
                ended_at=now - 40 * DAY_MS,
                texts=[f"{n}/{i}" for i in range(10)],
                attachments=[add_attachment(conn, customer, b"x")],
            )

    await db.run_write(seed)
    other = Database(db_url)
    try:
        first = purger(db, clock, batch_size=20)
        second = purger(other, clock, batch_size=20)
        totals = await asyncio.gather(first.purge_pass(), second.purge_pass())
    finally:
        await other.close()
    assert sum(total.messages for total in totals) == 300
    assert sum(total.attachments for total in totals) == 30
    assert sum(total.conversations for total in totals) == 30
    assert await db.run_read(count, t.messages) == 0
    assert await db.run_read(count, t.attachments) == 0
    assert await db.run_read(count, t.conversations, t.conversations.c.purged_at.is_(None)) == 0


def test_the_app_purges_when_retention_is_set(
    tmp_path: Path, emulator: Emulator, db_url: str
) -> None:
    if db_url.startswith("postgresql"):
        run_async(_empty(db_url))
    clock = ManualClock()
    with running_stack(
        tmp_path,
        emulator,
        clock=clock,
        database_url=db_url,
        retention_days=1,
        retention_interval_seconds=60,
    ) as stack:
        thread = stack.customer_says("please forget me", customer="u-gdpr")["threadId"]
        kept = stack.customer_says("still talking", customer="u-open")["threadId"]
        wait_for(lambda: not stack.outbox(), what="both messages to reach CXone")

        async def end_it() -> None:
            database = Database(db_url)
            try:

                def tx(conn: Connection) -> None:
                    conversation = conversations.get_conversation(conn, thread)
                    assert conversation is not None
                    lifecycle.end_conversation(
                        conn, conversation, reason="agent", now=clock.now_ms()
                    )

                await database.run_write(tx)
            finally:
                await database.close()

        run_async(end_it())
        advance(clock, DAY_MS + 60_000)

        async def messages_in(conversation_id: str) -> int:
            database = Database(db_url)
            try:
                return await database.run_read(
                    count, t.messages, t.messages.c.conversation_id == conversation_id
                )
            finally:
                await database.close()

        wait_for(lambda: run_async(messages_in(thread)) == 0, what="the purge")
        assert run_async(messages_in(kept)) == 1
        metrics = loopback.get(stack.url + "/metrics").text
        assert 'byoc_retention_purged_total{kind="message"} 1.0' in metrics
        assert 'byoc_retention_purged_total{kind="conversation"} 1.0' in metrics


async def _empty(db_url: str) -> None:
    database = Database(db_url)
    try:
        await migrations.upgrade(database)
        await database.run_write(clean)
    finally:
        await database.close()


def test_retention_is_off_unless_set_and_at_least_one_day() -> None:
    assert Settings(environment="development").retention_days is None
    assert Settings(environment="development", retention_days=7).retention_days == 7
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        Settings(environment="development", retention_days=0)
