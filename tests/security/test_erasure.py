"""The right to erasure: `byoc customers erase --channel ID --customer PLATFORM_USER_ID`
deletes exactly that customer's data, writes an audit line without content, and is idempotent;
a delivery that refers to an erased message is settled, never retried or dead-lettered. On
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection
from websockets.exceptions import ConnectionClosed

from byoc.channels.keys import customer_reference
from byoc.outbox import kinds
from byoc.outbox import rows as outbox_rows
from byoc.store import Database, customers, now_ms
from byoc.store import schema as t
from byoc.store.records import Channel, Customer
from tests.support.cli import Cli, cli_env, run_cli
from tests.support.emulator import Emulator
from tests.support.logs import lines, restore_logging
from tests.support.seed import (
    Seeded,
    add_attachment,
    add_channel,
    add_conversation,
    add_customer,
    count,
)
from tests.support.stack import running_stack
from tests.support.waiting import run_async, wait_for
from tests.support.widget import agent_reply, custom_webchat, widget

__all__ = ["restore_logging"]  # a fixture: the command configures logging in this process

# Every test here runs `byoc customers erase`, which installs the JSON log handler.
pytestmark = pytest.mark.usefixtures("restore_logging")

SECRET_TEXT = "my card number is 4111 1111 1111 1111"


@pytest.fixture
def cli(tmp_path: Path, emulator: Emulator, db_url: str) -> Cli:
    return Cli(tmp_path, emulator, cli_env(tmp_path, emulator, BYOC_DATABASE_URL=db_url))


@dataclass
class Held:
    """What the store holds of one customer."""

    customer: Customer
    conversations: list[Seeded]


def hold(conn: Connection, channel: Channel, external_id: str, now: int) -> Held:
    """A customer with an ended and an open conversation, files, and deliveries queued."""
    customer = add_customer(conn, channel, external_id)
    ended = add_conversation(
        conn,
        customer,
        created_at=now - 10_000,
        ended_at=now - 5_000,
        texts=[SECRET_TEXT, "thanks", "bye"],
        attachments=[add_attachment(conn, customer, b"one"), add_attachment(conn, customer, b"2")],
    )
    still_open = add_conversation(
        conn, customer, created_at=now - 1_000, ended_at=None, texts=[SECRET_TEXT, "hello?"]
    )
    add_attachment(conn, customer, b"an upload no message carried")
    open_id = still_open.conversation.id
    kinds.enqueue(conn, kinds.AgentMessage(open_id, message_id=still_open.message_ids[1]), now=now)
    kinds.enqueue(conn, kinds.CustomerTyping(open_id, "isTypingOn", now + 60_000), now=now)
    dead = kinds.enqueue(
        conn,
        kinds.MessageStatus(ended.conversation.id, ended.message_ids[1], "seen", now),
        now=now,
    )
    outbox_rows.bury(conn, dead, error="refused", now=now)
    return Held(customer, [ended, still_open])


async def holdings(db: Database, held: Held) -> dict[str, int]:
    """How many rows of each kind the store holds for the customer."""

    def read(conn: Connection) -> dict[str, int]:
        ids = [s.conversation.id for s in held.conversations]
        lanes = [lane for c in ids for lane in kinds.conversation_lanes(c)]
        return {
            "customers": count(conn, t.customers, t.customers.c.id == held.customer.id),
            "conversations": count(conn, t.conversations, t.conversations.c.id.in_(ids)),
            "messages": count(conn, t.messages, t.messages.c.conversation_id.in_(ids)),
            "attachments": count(
                conn, t.attachments, t.attachments.c.customer_id == held.customer.id
            ),
            "outbox_rows": count(conn, t.outbox, t.outbox.c.lane.in_(lanes)),
        }

    return await db.run_read(read)


FULL = {"customers": 1, "conversations": 2, "messages": 5, "attachments": 3, "outbox_rows": 3}
NONE = dict.fromkeys(FULL, 0)


def audit_lines(stderr: str) -> list[dict[str, Any]]:
    return [line for line in lines(io.StringIO(stderr)) if line.get("logger") == "byoc.audit"]


async def test_erase_deletes_exactly_that_customers_data(db: Database, cli: Cli) -> None:
    def seed(conn: Connection) -> tuple[Channel, Held, Held, Held]:
        here, there = add_channel(conn), add_channel(conn)
        return (
            here,
            hold(conn, here, "u-1", 1_000_000),
            hold(conn, here, "u-2", 1_000_000),  # another customer of the same channel
            hold(conn, there, "u-1", 1_000_000),  # the same platform user on another channel
        )

    channel, erased, neighbour, elsewhere = await db.run_write(seed)
    for held in (erased, neighbour, elsewhere):
        assert await holdings(db, held) == FULL

    result = cli("customers", "erase", "--channel", channel.id, "--customer", "u-1", "--json")

    report = json.loads(result.stdout)
    reference = customer_reference(channel.secret, "u-1")
    assert report == {
        "channel": channel.id,
        "customer_ref": reference,
        "found": True,
        "customers": 1,
        "conversations": 2,
        "messages": 5,
        "attachments": 3,
        "outbox_rows": 3,
    }
    assert await holdings(db, erased) == NONE
    assert await db.run_read(customers.find_customer, channel.id, "u-1") is None
    assert await holdings(db, neighbour) == FULL
    assert await holdings(db, elsewhere) == FULL

    (line,) = audit_lines(result.stderr)
    assert line["level"] == "info"
    assert line["event"] == "customer_erasure"
    assert line["channel_id"] == channel.id
    assert line["customer_ref"] == reference
    assert line["found"] is True
    assert (line["conversations"], line["messages"], line["attachments"]) == (2, 5, 3)
    assert line["outbox_rows"] == 3
    assert line["ts"].endswith("Z")
    # Neither the content nor the platform user id is in what the command wrote.
    for output in (result.stdout, result.stderr):
        assert SECRET_TEXT not in output
        assert '"u-1"' not in output
        assert "First u-1" not in output


async def test_a_second_erase_finds_nothing_and_changes_nothing(db: Database, cli: Cli) -> None:
    def seed(conn: Connection) -> tuple[Channel, Held]:
        channel = add_channel(conn)
        hold(conn, channel, "u-1", 1_000_000)
        return channel, hold(conn, channel, "u-2", 1_000_000)

    channel, neighbour = await db.run_write(seed)
    cli("customers", "erase", "--channel", channel.id, "--customer", "u-1")

    again = cli("customers", "erase", "--channel", channel.id, "--customer", "u-1")

    assert again.returncode == 0
    assert "nothing to erase" in again.stdout
    reference = customer_reference(channel.secret, "u-1")
    assert reference in again.stdout
    (line,) = audit_lines(again.stderr)
    assert (line["found"], line["customer_ref"], line["messages"]) == (False, reference, 0)
    assert await holdings(db, neighbour) == FULL


async def test_an_unknown_channel_is_refused(db: Database, cli: Cli) -> None:
    result = cli("customers", "erase", "--channel", "nope", "--customer", "u-1", check=False)
    assert result.returncode == 1
    assert "no channel 'nope'" in result.stderr
    assert "byoc.audit" not in result.stderr


def test_erase_does_not_migrate_when_auto_migrate_is_off(
    tmp_path: Path, emulator: Emulator
) -> None:
    env = cli_env(tmp_path, emulator, BYOC_AUTO_MIGRATE="false")
    result = Cli(tmp_path, emulator, env)(
        "customers", "erase", "--channel", "c", "--customer", "u", check=False
    )
    assert result.returncode == 1
    assert "byoc db upgrade" in result.stderr


def test_a_delivery_of_an_erased_message_is_settled_without_sending(
    tmp_path: Path,
    emulator: Emulator,
    db_url: str,
    db: Database,  # an empty store
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with running_stack(tmp_path, emulator, database_url=db_url) as stack:
        accepted = stack.customer_says(SECRET_TEXT, customer="u-erased")
        thread, message_id = accepted["threadId"], accepted["id"]
        wait_for(lambda: not stack.outbox(), what="the message to reach CXone")
        cli = Cli(tmp_path, emulator, cli_env(tmp_path, emulator, BYOC_DATABASE_URL=db_url))
        cli("customers", "erase", "--channel", stack.channel_id, "--customer", "u-erased")

        # Deliveries queued by a request that was under way while the customer was erased.
        async def enqueue_late_rows() -> None:
            database = Database(db_url)
            try:

                def tx(conn: Connection) -> None:
                    now = now_ms()
                    kinds.enqueue(conn, kinds.MessageStatus(thread, message_id, "seen", 1), now=now)
                    kinds.enqueue(conn, kinds.AgentMessage(thread, message_id), now=now)
                    kinds.enqueue(conn, kinds.ConversationEnded(thread, reason="agent"), now=now)

                await database.run_write(tx)
            finally:
                await database.close()

        creates_before = len(emulator.requests(path_contains="/messages", method="POST"))
        run_async(enqueue_late_rows())
        wait_for(lambda: not stack.outbox(), what="the late rows to be settled")
        assert stack.platform.of_type("message.created") == []
        assert len(emulator.requests(path_contains="/messages", method="POST")) == creates_before

    settled = [r for r in caplog.records if "settled without delivery" in r.getMessage()]
    assert len(settled) == 3
    assert all(r.levelno == logging.WARNING for r in settled)
    assert not [r for r in caplog.records if SECRET_TEXT in r.getMessage()]
    assert not [r for r in caplog.records if "dead-lettered" in r.getMessage()]


async def test_an_open_widget_of_an_erased_customer_starts_afresh(
    tmp_path: Path, emulator: Emulator
) -> None:
    """Erased while the widget is connected: the socket's next frame finds its customer gone,
    the socket closes (4410) and the widget's reconnect is a new customer with nothing of the
    old one, whose conversation and replies work (before, every message failed with
    `conversation-not-found`, and replies went to the erased customer's subscription)."""
    async with custom_webchat(tmp_path, emulator) as chat:
        visitor = secrets.token_hex(16)
        async with widget(chat, visitorId=visitor) as w:
            first = (await w.say(SECRET_TEXT))["message"]
            env = cli_env(tmp_path, emulator, BYOC_DATABASE_URL=chat.stack.settings.database_url)
            argv = ["customers", "erase", "--channel", chat.channel_id]
            erased = await asyncio.to_thread(run_cli, [*argv, "--customer", f"anon:{visitor}"], env)
            assert erased.returncode == 0, erased.stderr
            await w.send({"type": "message", "clientId": "c-after", "text": "still there?"})
            with pytest.raises(ConnectionClosed) as closed:
                await w.expect("ack")
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4410

        hello = {"visitorId": visitor, "threadId": first["threadId"], "afterSeq": first["seq"]}
        async with widget(chat, **hello) as again:
            assert again.welcome["conversation"] is None
            assert again.welcome["messages"] == []
            message = (await again.say("still there?", client_id="c-after"))["message"]
            assert message["threadId"] != first["threadId"]
            await asyncio.to_thread(agent_reply, chat, message["threadId"], "welcome back")
            await again.expect("message", message__text="welcome back")


async def test_an_erased_customer_whose_widget_had_no_conversation_starts_afresh(
    tmp_path: Path, emulator: Emulator
) -> None:
    """The same with nothing written yet (a new visitor: the customer exists from the hello):
    the next message is stored for a new customer and acknowledged, then the socket closes, and
    the reconnect follows the new customer, so replies reach it."""
    async with custom_webchat(tmp_path, emulator) as chat:
        visitor = secrets.token_hex(16)
        async with widget(chat, visitorId=visitor) as w:
            old_customer = w.welcome["customerId"]
            env = cli_env(tmp_path, emulator, BYOC_DATABASE_URL=chat.stack.settings.database_url)
            argv = ["customers", "erase", "--channel", chat.channel_id]
            erased = await asyncio.to_thread(run_cli, [*argv, "--customer", f"anon:{visitor}"], env)
            assert erased.returncode == 0, erased.stderr
            message = (await w.say("hello?"))["message"]
            with pytest.raises(ConnectionClosed) as closed:
                await w.expect("message")
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4410

        async with widget(chat, visitorId=visitor) as again:
            assert again.welcome["customerId"] != old_customer
            assert again.welcome["conversation"]["threadId"] == message["threadId"]
            await asyncio.to_thread(agent_reply, chat, message["threadId"], "hello there")
            await again.expect("message", message__text="hello there")
