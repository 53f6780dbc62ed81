"""Queries, one function per question, all on a connection the caller's transaction owns."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Row, and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from byoc.store import schema as t
from byoc.store.db import now_ms
from byoc.store.records import (
    Channel,
    Conversation,
    Customer,
    Message,
    OAuthClient,
    StoredAttachment,
    Tenant,
    dumps,
    loads_or_none,
)

# --- tenants ---------------------------------------------------------------------------------


def _tenant(row: Row[Any]) -> Tenant:
    m = row._mapping
    return Tenant(**{k: m[k] for k in Tenant.__dataclass_fields__})


async def upsert_tenant(conn: AsyncConnection, tenant: Tenant) -> None:
    values = {k: getattr(tenant, k) for k in Tenant.__dataclass_fields__}
    existing = await get_tenant(conn, tenant.id)
    if existing is None:
        await conn.execute(insert(t.tenants).values(**values, created_at=now_ms()))
    elif existing != tenant:
        await conn.execute(update(t.tenants).where(t.tenants.c.id == tenant.id).values(**values))


async def get_tenant(conn: AsyncConnection, tenant_id: str) -> Tenant | None:
    row = (await conn.execute(select(t.tenants).where(t.tenants.c.id == tenant_id))).first()
    return _tenant(row) if row else None


async def list_tenants(conn: AsyncConnection) -> list[Tenant]:
    rows = await conn.execute(select(t.tenants).order_by(t.tenants.c.id))
    return [_tenant(r) for r in rows]


# --- OAuth clients (what CXone authenticates with) ---------------------------------------------


def _client(row: Row[Any]) -> OAuthClient:
    m = row._mapping
    return OAuthClient(**{k: m[k] for k in OAuthClient.__dataclass_fields__})


async def insert_client(conn: AsyncConnection, client_id: str, name: str, secret_hash: str) -> None:
    await conn.execute(
        insert(t.oauth_clients).values(
            client_id=client_id, name=name, secret_hash=secret_hash, created_at=now_ms()
        )
    )


async def get_client(conn: AsyncConnection, client_id: str) -> OAuthClient | None:
    query = select(t.oauth_clients).where(t.oauth_clients.c.client_id == client_id)
    row = (await conn.execute(query)).first()
    return _client(row) if row else None


async def list_clients(conn: AsyncConnection) -> list[OAuthClient]:
    rows = await conn.execute(select(t.oauth_clients).order_by(t.oauth_clients.c.created_at))
    return [_client(r) for r in rows]


async def revoke_client(conn: AsyncConnection, client_id: str) -> bool:
    result = await conn.execute(
        update(t.oauth_clients)
        .where(t.oauth_clients.c.client_id == client_id, t.oauth_clients.c.revoked_at.is_(None))
        .values(revoked_at=now_ms())
    )
    return result.rowcount > 0


# --- channels --------------------------------------------------------------------------------


def _channel(row: Row[Any]) -> Channel:
    m = row._mapping
    values = {k: m[k] for k in Channel.__dataclass_fields__ if k != "settings"}
    return Channel(**values, settings=loads_or_none(m["settings"]) or {})


async def insert_channel(conn: AsyncConnection, channel: Channel) -> None:
    values = {k: getattr(channel, k) for k in Channel.__dataclass_fields__}
    values["settings"] = dumps(channel.settings) if channel.settings else None
    await conn.execute(insert(t.channels).values(**values))


async def get_channel(conn: AsyncConnection, channel_id: str) -> Channel | None:
    query = select(t.channels).where(
        t.channels.c.id == channel_id, t.channels.c.deleted_at.is_(None)
    )
    row = (await conn.execute(query)).first()
    return _channel(row) if row else None


async def list_channels(conn: AsyncConnection) -> list[Channel]:
    query = select(t.channels).where(t.channels.c.deleted_at.is_(None)).order_by(t.channels.c.id)
    return [_channel(r) for r in await conn.execute(query)]


async def update_channel(conn: AsyncConnection, channel_id: str, **values: Any) -> None:
    if "settings" in values:
        values["settings"] = dumps(values["settings"]) if values["settings"] else None
    await conn.execute(update(t.channels).where(t.channels.c.id == channel_id).values(**values))


async def delete_channel(conn: AsyncConnection, channel_id: str) -> bool:
    result = await conn.execute(
        update(t.channels)
        .where(t.channels.c.id == channel_id, t.channels.c.deleted_at.is_(None))
        .values(deleted_at=now_ms())
    )
    return result.rowcount > 0


# --- customers -------------------------------------------------------------------------------


def _customer(row: Row[Any]) -> Customer:
    m = row._mapping
    return Customer(
        id=m["id"],
        channel_id=m["channel_id"],
        external_id=m["external_id"],
        first_name=m["first_name"],
        last_name=m["last_name"],
        nickname=m["nickname"],
        image=m["image"],
        custom_fields=loads_or_none(m["custom_fields"]),
        opted_out=bool(m["opted_out"]),
    )


async def get_customer(conn: AsyncConnection, customer_id: str) -> Customer | None:
    row = (await conn.execute(select(t.customers).where(t.customers.c.id == customer_id))).first()
    return _customer(row) if row else None


async def find_customer(
    conn: AsyncConnection, channel_id: str, external_id: str
) -> Customer | None:
    query = select(t.customers).where(
        t.customers.c.channel_id == channel_id, t.customers.c.external_id == external_id
    )
    row = (await conn.execute(query)).first()
    return _customer(row) if row else None


async def save_customer(conn: AsyncConnection, customer: Customer, *, is_new: bool) -> None:
    values = {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "nickname": customer.nickname,
        "image": customer.image,
        "custom_fields": None if customer.custom_fields is None else dumps(customer.custom_fields),
    }
    if is_new:
        await conn.execute(
            insert(t.customers).values(
                id=customer.id,
                channel_id=customer.channel_id,
                external_id=customer.external_id,
                created_at=now_ms(),
                **values,
            )
        )
    else:
        await conn.execute(
            update(t.customers).where(t.customers.c.id == customer.id).values(**values)
        )


# --- conversations ---------------------------------------------------------------------------


def _conversation(row: Row[Any]) -> Conversation:
    m = row._mapping
    return Conversation(**{k: m[k] for k in Conversation.__dataclass_fields__})


async def get_conversation(conn: AsyncConnection, conversation_id: str) -> Conversation | None:
    query = select(t.conversations).where(t.conversations.c.id == conversation_id)
    row = (await conn.execute(query)).first()
    return _conversation(row) if row else None


async def find_conversation_by_de_thread(
    conn: AsyncConnection, de_thread_id: str
) -> Conversation | None:
    query = select(t.conversations).where(t.conversations.c.de_thread_id == de_thread_id)
    row = (await conn.execute(query)).first()
    return _conversation(row) if row else None


async def latest_conversation(
    conn: AsyncConnection, customer_id: str, *, open_only: bool
) -> Conversation | None:
    query = select(t.conversations).where(t.conversations.c.customer_id == customer_id)
    if open_only:
        query = query.where(t.conversations.c.state == "open")
    query = query.order_by(t.conversations.c.created_at.desc()).limit(1)
    row = (await conn.execute(query)).first()
    return _conversation(row) if row else None


async def insert_conversation(conn: AsyncConnection, conversation: Conversation) -> None:
    values = {k: getattr(conversation, k) for k in Conversation.__dataclass_fields__}
    await conn.execute(insert(t.conversations).values(**values))


async def next_seq(conn: AsyncConnection, conversation_id: str) -> int:
    """Reserve the conversation's next message sequence number inside the caller's transaction."""
    result = await conn.execute(
        update(t.conversations)
        .where(t.conversations.c.id == conversation_id)
        .values(next_seq=t.conversations.c.next_seq + 1)
        .returning(t.conversations.c.next_seq)
    )
    return int(result.scalar_one()) - 1


async def update_conversation(conn: AsyncConnection, conversation_id: str, **values: Any) -> None:
    await conn.execute(
        update(t.conversations).where(t.conversations.c.id == conversation_id).values(**values)
    )


# --- messages --------------------------------------------------------------------------------


def _message(row: Row[Any]) -> Message:
    m = row._mapping
    return Message(
        id=m["id"],
        channel_id=m["channel_id"],
        conversation_id=m["conversation_id"],
        seq=m["seq"],
        direction=m["direction"],
        sender=m["sender"],
        text=m["text"],
        content=loads_or_none(m["content"]) or {},
        attachments=loads_or_none(m["attachments"]) or [],
        author=loads_or_none(m["author"]),
        platform_message_id=m["platform_message_id"],
        de_message_id=m["de_message_id"],
        status=m["status"],
        created_at=m["created_at"],
    )


async def insert_message(conn: AsyncConnection, message: Message) -> None:
    await conn.execute(
        insert(t.messages).values(
            id=message.id,
            channel_id=message.channel_id,
            conversation_id=message.conversation_id,
            seq=message.seq,
            direction=message.direction,
            sender=message.sender,
            text=message.text,
            content=dumps(message.content),
            attachments=dumps(message.attachments) if message.attachments else None,
            author=None if message.author is None else dumps(message.author),
            platform_message_id=message.platform_message_id,
            de_message_id=message.de_message_id,
            status=message.status,
            created_at=message.created_at,
        )
    )


async def get_message(conn: AsyncConnection, message_id: str) -> Message | None:
    row = (await conn.execute(select(t.messages).where(t.messages.c.id == message_id))).first()
    return _message(row) if row else None


async def find_message_by_platform_id(
    conn: AsyncConnection, channel_id: str, platform_message_id: str
) -> Message | None:
    query = select(t.messages).where(
        t.messages.c.channel_id == channel_id,
        t.messages.c.platform_message_id == platform_message_id,
    )
    row = (await conn.execute(query)).first()
    return _message(row) if row else None


async def find_message_by_de_id(
    conn: AsyncConnection, channel_id: str, de_message_id: str
) -> Message | None:
    query = select(t.messages).where(
        t.messages.c.channel_id == channel_id, t.messages.c.de_message_id == de_message_id
    )
    row = (await conn.execute(query)).first()
    return _message(row) if row else None


async def set_message_status(conn: AsyncConnection, message_id: str, status: str) -> None:
    await conn.execute(
        update(t.messages).where(t.messages.c.id == message_id).values(status=status)
    )


async def list_messages(
    conn: AsyncConnection, conversation_id: str, *, after_seq: int = -1, limit: int = 500
) -> list[Message]:
    query = (
        select(t.messages)
        .where(t.messages.c.conversation_id == conversation_id, t.messages.c.seq > after_seq)
        .order_by(t.messages.c.seq)
        .limit(limit)
    )
    return [_message(r) for r in await conn.execute(query)]


async def count_rows(conn: AsyncConnection, table: str, where: Iterable[Any] = ()) -> int:
    tbl = t.metadata.tables[table]
    query = select(func.count()).select_from(tbl)
    conditions: Sequence[Any] = list(where)
    if conditions:
        query = query.where(and_(*conditions))
    return int((await conn.execute(query)).scalar_one())


# --- uploaded attachments ----------------------------------------------------------------------


async def insert_attachment(
    conn: AsyncConnection, attachment: StoredAttachment, data: bytes
) -> None:
    values = {k: getattr(attachment, k) for k in StoredAttachment.__dataclass_fields__}
    await conn.execute(insert(t.attachments).values(**values, data=data))


async def get_attachment(
    conn: AsyncConnection, attachment_id: str, *, with_data: bool = False
) -> tuple[StoredAttachment, bytes | None] | None:
    columns = [t.attachments.c[k] for k in StoredAttachment.__dataclass_fields__]
    if with_data:
        columns.append(t.attachments.c.data)
    query = select(*columns).where(t.attachments.c.id == attachment_id)
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    m = row._mapping
    attachment = StoredAttachment(**{k: m[k] for k in StoredAttachment.__dataclass_fields__})
    return attachment, (bytes(m["data"]) if with_data else None)


# --- lifecycle: deadlines and end checks -------------------------------------------------------


async def transition_conversation(
    conn: AsyncConnection, conversation_id: str, expect: dict[str, Any], **values: Any
) -> bool:
    """Compare-and-set: change the row only if it still holds `expect`. Exactly one of several
    instances racing on the same deadline wins; the others see False."""
    conditions = [t.conversations.c.id == conversation_id]
    for column, value in expect.items():
        col = t.conversations.c[column]
        conditions.append(col.is_(None) if value is None else col == value)
    result = await conn.execute(update(t.conversations).where(*conditions).values(**values))
    return result.rowcount == 1


async def due_conversations(
    conn: AsyncConnection, deadline_column: str, now: int, limit: int
) -> list[Conversation]:
    col = t.conversations.c[deadline_column]
    query = (
        select(t.conversations)
        .where(t.conversations.c.state == "open", col.is_not(None), col <= now)
        .order_by(col)
        .limit(limit)
    )
    return [_conversation(r) for r in await conn.execute(query)]


async def conversations_to_check(conn: AsyncConnection, limit: int) -> list[Conversation]:
    """Open conversations CXone knows, least recently checked first."""
    query = (
        select(t.conversations)
        .where(t.conversations.c.state == "open", t.conversations.c.de_contact_id.is_not(None))
        .order_by(func.coalesce(t.conversations.c.de_checked_at, 0), t.conversations.c.id)
        .limit(limit)
    )
    return [_conversation(r) for r in await conn.execute(query)]


async def count_pending_timers(conn: AsyncConnection) -> int:
    query = select(func.count()).where(
        t.conversations.c.state == "open",
        (t.conversations.c.idle_deadline.is_not(None))
        | (t.conversations.c.countdown_deadline.is_not(None)),
    )
    return int((await conn.execute(query)).scalar_one())


async def set_opted_out(conn: AsyncConnection, customer_id: str, opted_out: bool) -> None:
    await conn.execute(
        update(t.customers).where(t.customers.c.id == customer_id).values(opted_out=int(opted_out))
    )
