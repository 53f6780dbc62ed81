"""Conversations written straight into the store, with their messages and attachments: for
tests of what happens to stored data (retention, erasure) rather than of how it got there."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, func, select

from byoc.channels.attachment_store import attachment_url
from byoc.ids import new_id
from byoc.settings import Settings
from byoc.store import channels, conversations, customers, messages, tenants
from byoc.store import schema as t
from byoc.store.attachments import insert_attachment
from byoc.store.records import Channel, Conversation, Customer, Message, StoredAttachment
from byoc.tenancy import DEFAULT_TENANT_ID, default_tenant

PUBLIC_URL = "https://byoc.example"


def clean(conn: Connection) -> None:
    """Empty every table a seeded test writes (a PostgreSQL database is shared by a module)."""
    for table in (t.outbox, t.attachments, t.messages, t.conversations, t.customers, t.channels):
        conn.execute(delete(table))


def add_channel(conn: Connection, channel_id: str | None = None) -> Channel:
    """A channel of the default tenant (written too, with the development settings' values,
    when the store has no such tenant yet)."""
    if tenants.get_tenant(conn, DEFAULT_TENANT_ID) is None:
        tenants.upsert_tenant(conn, default_tenant(Settings(environment="development")))
    channel = Channel(
        id=channel_id or "chat_" + secrets.token_hex(6),
        tenant_id=DEFAULT_TENANT_ID,
        adapter="webhook",
        name="seeded",
        webhook_url="https://platform.example/webhook",
        secret=secrets.token_urlsafe(24),
        created_at=0,
    )
    channels.insert_channel(conn, channel)
    return channel


def add_customer(conn: Connection, channel: Channel, external_id: str) -> Customer:
    customer = Customer(
        id=new_id("cus"),
        channel_id=channel.id,
        external_id=external_id,
        first_name="First " + external_id,
        last_name="Last " + external_id,
        nickname=None,
        image=None,
        custom_fields=[{"ident": "email", "value": external_id + "@example.com"}],
    )
    customers.save_customer(conn, customer, is_new=True)
    return customer


def add_attachment(conn: Connection, customer: Customer, data: bytes) -> dict[str, Any]:
    """A stored file of the customer's; the link a message carries to it."""
    stored = StoredAttachment(
        id=new_id("att"),
        channel_id=customer.channel_id,
        customer_id=customer.id,
        access_token=secrets.token_urlsafe(24),
        friendly_name="file.txt",
        mime_type="text/plain",
        size=len(data),
        created_at=0,
        referenced_at=0,
    )
    insert_attachment(conn, stored, data)
    return {
        "friendlyName": stored.friendly_name,
        "url": attachment_url(PUBLIC_URL, stored.id, stored.access_token),
        "id": stored.id,
    }


@dataclass
class Seeded:
    conversation: Conversation
    message_ids: list[str] = field(default_factory=list)
    attachment_ids: list[str] = field(default_factory=list)


def add_conversation(
    conn: Connection,
    customer: Customer,
    *,
    created_at: int,
    ended_at: int | None,
    texts: list[str],
    attachments: list[dict[str, Any]] | None = None,
) -> Seeded:
    """A conversation (ended at `ended_at`, open when None) with one message per text; the
    first message carries `attachments` (links from `add_attachment`)."""
    conversation = Conversation(
        id=new_id("thr"),
        channel_id=customer.channel_id,
        customer_id=customer.id,
        state="open" if ended_at is None else "ended",
        origin="customer",
        de_thread_id=None,
        de_contact_id=None,
        next_seq=len(texts),
        last_customer_activity_at=created_at,
        created_at=created_at,
        ended_at=ended_at,
        ended_reason=None if ended_at is None else "agent",
    )
    conversations.insert_conversation(conn, conversation)
    seeded = Seeded(conversation)
    carried = [{k: v for k, v in a.items() if k != "id"} for a in attachments or []]
    for seq, text in enumerate(texts):
        message = Message(
            id=new_id("msg"),
            channel_id=customer.channel_id,
            conversation_id=conversation.id,
            seq=seq,
            direction="inbound" if seq % 2 == 0 else "outbound",
            sender="customer" if seq % 2 == 0 else "agent",
            text=text,
            content={"type": "TEXT", "payload": {"text": text}},
            attachments=carried if seq == 0 else [],
            author=None,
            platform_message_id=None,
            de_message_id=None,
            status="sent",
            created_at=created_at + seq,
        )
        messages.insert_message(conn, message)
        seeded.message_ids.append(message.id)
    seeded.attachment_ids = [str(a["id"]) for a in attachments or []]
    return seeded


def count(conn: Connection, table: Any, *where: Any) -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())
