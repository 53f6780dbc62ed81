"""Queries, one function per question, all on a connection the caller's transaction owns.

Synchronous, on a SQLAlchemy `Connection`: transaction functions run them in one go through
`Database.run_write` / `run_read` (see `byoc.store.db`). `byoc.store.repositories` offers
the same functions on an `AsyncConnection` for code that holds one.

Statements on the request paths are built once, at import, with bind parameters: building a
Core statement per call (and its cache key) costs more than SQLite takes to run it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, case, func, insert, select, update

from byoc.store import schema as t
from byoc.store.compiled import execute
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


def upsert_tenant(conn: Connection, tenant: Tenant) -> None:
    values = {k: getattr(tenant, k) for k in Tenant.__dataclass_fields__}
    existing = get_tenant(conn, tenant.id)
    if existing is None:
        conn.execute(insert(t.tenants).values(**values, created_at=now_ms()))
    elif existing != tenant:
        conn.execute(update(t.tenants).where(t.tenants.c.id == tenant.id).values(**values))


_GET_TENANT = select(t.tenants).where(t.tenants.c.id == bindparam("id"))


def get_tenant(conn: Connection, tenant_id: str) -> Tenant | None:
    row = execute(conn, _GET_TENANT, {"id": tenant_id}).first()
    return _tenant(row) if row else None


def list_tenants(conn: Connection) -> list[Tenant]:
    rows = conn.execute(select(t.tenants).order_by(t.tenants.c.id))
    return [_tenant(r) for r in rows]


# --- OAuth clients (what CXone authenticates with) ---------------------------------------------


def _client(row: Row[Any]) -> OAuthClient:
    m = row._mapping
    return OAuthClient(**{k: m[k] for k in OAuthClient.__dataclass_fields__})


def insert_client(conn: Connection, client_id: str, name: str, secret_hash: str) -> None:
    conn.execute(
        insert(t.oauth_clients).values(
            client_id=client_id, name=name, secret_hash=secret_hash, created_at=now_ms()
        )
    )


def get_client(conn: Connection, client_id: str) -> OAuthClient | None:
    query = select(t.oauth_clients).where(t.oauth_clients.c.client_id == client_id)
    row = conn.execute(query).first()
    return _client(row) if row else None


def list_clients(conn: Connection) -> list[OAuthClient]:
    rows = conn.execute(select(t.oauth_clients).order_by(t.oauth_clients.c.created_at))
    return [_client(r) for r in rows]


def revoke_client(conn: Connection, client_id: str) -> bool:
    result = conn.execute(
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


def insert_channel(conn: Connection, channel: Channel) -> None:
    values = {k: getattr(channel, k) for k in Channel.__dataclass_fields__}
    values["settings"] = dumps(channel.settings) if channel.settings else None
    conn.execute(insert(t.channels).values(**values))


_GET_CHANNEL = select(t.channels).where(
    t.channels.c.id == bindparam("id"), t.channels.c.deleted_at.is_(None)
)


def get_channel(conn: Connection, channel_id: str) -> Channel | None:
    row = execute(conn, _GET_CHANNEL, {"id": channel_id}).first()
    return _channel(row) if row else None


def list_channels(conn: Connection) -> list[Channel]:
    query = select(t.channels).where(t.channels.c.deleted_at.is_(None)).order_by(t.channels.c.id)
    return [_channel(r) for r in conn.execute(query)]


def update_channel(conn: Connection, /, channel_id: str, **values: Any) -> None:
    if "settings" in values:
        values["settings"] = dumps(values["settings"]) if values["settings"] else None
    conn.execute(update(t.channels).where(t.channels.c.id == channel_id).values(**values))


def delete_channel(conn: Connection, channel_id: str) -> bool:
    result = conn.execute(
        update(t.channels)
        .where(t.channels.c.id == channel_id, t.channels.c.deleted_at.is_(None))
        .values(deleted_at=now_ms())
    )
    return result.rowcount > 0


# --- customers -------------------------------------------------------------------------------


def _customer(row: Row[Any], prefix: str = "") -> Customer:
    m = row._mapping
    return Customer(
        id=m[prefix + "id"],
        channel_id=m[prefix + "channel_id"],
        external_id=m[prefix + "external_id"],
        first_name=m[prefix + "first_name"],
        last_name=m[prefix + "last_name"],
        nickname=m[prefix + "nickname"],
        image=m[prefix + "image"],
        custom_fields=loads_or_none(m[prefix + "custom_fields"]),
        opted_out=bool(m[prefix + "opted_out"]),
    )


_GET_CUSTOMER = select(t.customers).where(t.customers.c.id == bindparam("id"))


def get_customer(conn: Connection, customer_id: str) -> Customer | None:
    row = execute(conn, _GET_CUSTOMER, {"id": customer_id}).first()
    return _customer(row) if row else None


_FIND_CUSTOMER = select(t.customers).where(
    t.customers.c.channel_id == bindparam("channel_id"),
    t.customers.c.external_id == bindparam("external_id"),
)


def find_customer(conn: Connection, channel_id: str, external_id: str) -> Customer | None:
    params = {"channel_id": channel_id, "external_id": external_id}
    row = execute(conn, _FIND_CUSTOMER, params).first()
    return _customer(row) if row else None


def save_customer(conn: Connection, customer: Customer, *, is_new: bool) -> None:
    values = {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "nickname": customer.nickname,
        "image": customer.image,
        "custom_fields": None if customer.custom_fields is None else dumps(customer.custom_fields),
    }
    if is_new:
        conn.execute(
            insert(t.customers).values(
                id=customer.id,
                channel_id=customer.channel_id,
                external_id=customer.external_id,
                created_at=now_ms(),
                **values,
            )
        )
    else:
        conn.execute(update(t.customers).where(t.customers.c.id == customer.id).values(**values))


# --- conversations ---------------------------------------------------------------------------


def _conversation(row: Row[Any], prefix: str = "") -> Conversation:
    m = row._mapping
    return Conversation(**{k: m[prefix + k] for k in Conversation.__dataclass_fields__})


_GET_CONVERSATION = select(t.conversations).where(t.conversations.c.id == bindparam("id"))


def get_conversation(conn: Connection, conversation_id: str) -> Conversation | None:
    row = execute(conn, _GET_CONVERSATION, {"id": conversation_id}).first()
    return _conversation(row) if row else None


_GET_CONVERSATION_AND_CUSTOMER = (
    select(t.conversations, *(c.label("customer__" + c.name) for c in t.customers.c))
    .join(t.customers, t.customers.c.id == t.conversations.c.customer_id)
    .where(t.conversations.c.id == bindparam("id"))
)


def get_conversation_and_customer(
    conn: Connection, conversation_id: str
) -> tuple[Conversation, Customer] | None:
    """A conversation with its customer, in one statement (what every reply needs)."""
    row = execute(conn, _GET_CONVERSATION_AND_CUSTOMER, {"id": conversation_id}).first()
    return (_conversation(row), _customer(row, "customer__")) if row else None


def find_conversation_by_de_thread(conn: Connection, de_thread_id: str) -> Conversation | None:
    query = select(t.conversations).where(t.conversations.c.de_thread_id == de_thread_id)
    row = conn.execute(query).first()
    return _conversation(row) if row else None


_LATEST_CONVERSATION = (
    select(t.conversations)
    .where(t.conversations.c.customer_id == bindparam("customer_id"))
    .order_by(t.conversations.c.created_at.desc())
    .limit(1)
)
_LATEST_OPEN_CONVERSATION = (
    select(t.conversations)
    .where(
        t.conversations.c.customer_id == bindparam("customer_id"),
        t.conversations.c.state == "open",
    )
    .order_by(t.conversations.c.created_at.desc())
    .limit(1)
)


def latest_conversation(
    conn: Connection, customer_id: str, *, open_only: bool
) -> Conversation | None:
    query = _LATEST_OPEN_CONVERSATION if open_only else _LATEST_CONVERSATION
    row = execute(conn, query, {"customer_id": customer_id}).first()
    return _conversation(row) if row else None


def insert_conversation(conn: Connection, conversation: Conversation) -> None:
    values = {k: getattr(conversation, k) for k in Conversation.__dataclass_fields__}
    conn.execute(insert(t.conversations).values(**values))


_NEXT_SEQ = (
    update(t.conversations)
    .where(t.conversations.c.id == bindparam("conversation_id"))
    .values(next_seq=t.conversations.c.next_seq + 1)
    .returning(t.conversations.c.next_seq)
)
# The same, and the idle clock started in the same statement: the customer owes a reply unless
# the conversation is over or a countdown already runs (`lifecycle.idle_deadline_after_agent`).
_NEXT_SEQ_AND_IDLE = (
    update(t.conversations)
    .where(t.conversations.c.id == bindparam("conversation_id"))
    .values(
        next_seq=t.conversations.c.next_seq + 1,
        idle_deadline=case(
            (
                and_(
                    t.conversations.c.state == "open",
                    t.conversations.c.countdown_deadline.is_(None),
                ),
                bindparam("idle_deadline"),
            ),
            else_=t.conversations.c.idle_deadline,
        ),
    )
    .returning(t.conversations.c.next_seq)
)


def next_seq(conn: Connection, conversation_id: str, *, idle_deadline: int | None = None) -> int:
    """Reserve the conversation's next message sequence number inside the caller's transaction;
    with `idle_deadline`, also start the idle clock if the conversation is open and no countdown
    runs (one statement for what an agent message does to its conversation)."""
    if idle_deadline is None:
        result = execute(conn, _NEXT_SEQ, {"conversation_id": conversation_id})
    else:
        params = {"conversation_id": conversation_id, "idle_deadline": idle_deadline}
        result = execute(conn, _NEXT_SEQ_AND_IDLE, params)
    return int(result.scalar_one()) - 1


_CUSTOMER_ACTIVE = (
    update(t.conversations)
    .where(t.conversations.c.id == bindparam("conversation_id"))
    .values(idle_deadline=None, last_customer_activity_at=bindparam("at"))
)


def customer_active(conn: Connection, conversation_id: str, at: int) -> None:
    """The customer did something: they owe no reply (no countdown runs; see `lifecycle`)."""
    execute(conn, _CUSTOMER_ACTIVE, {"conversation_id": conversation_id, "at": at})


_CHECKED_IN_CXONE = (
    update(t.conversations)
    .where(t.conversations.c.id == bindparam("conversation_id"))
    .values(de_checked_at=bindparam("at"))
)


def mark_checked_in_cxone(conn: Connection, conversation_id: str, at: int) -> None:
    """CXone was asked about the conversation's contact at `at` (see `lifecycle`)."""
    execute(conn, _CHECKED_IN_CXONE, {"conversation_id": conversation_id, "at": at})


def update_conversation(conn: Connection, /, conversation_id: str, **values: Any) -> None:
    conn.execute(
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


_INSERT_MESSAGE = insert(t.messages)


def insert_message(conn: Connection, message: Message) -> None:
    execute(
        conn,
        _INSERT_MESSAGE,
        {
            "id": message.id,
            "channel_id": message.channel_id,
            "conversation_id": message.conversation_id,
            "seq": message.seq,
            "direction": message.direction,
            "sender": message.sender,
            "text": message.text,
            "content": dumps(message.content),
            "attachments": dumps(message.attachments) if message.attachments else None,
            "author": None if message.author is None else dumps(message.author),
            "platform_message_id": message.platform_message_id,
            "de_message_id": message.de_message_id,
            "status": message.status,
            "created_at": message.created_at,
        },
    )


_GET_MESSAGE = select(t.messages).where(t.messages.c.id == bindparam("id"))
_FIND_MESSAGE_BY_PLATFORM_ID = select(t.messages).where(
    t.messages.c.channel_id == bindparam("channel_id"),
    t.messages.c.platform_message_id == bindparam("platform_message_id"),
)
_FIND_MESSAGE_BY_DE_ID = select(t.messages).where(
    t.messages.c.channel_id == bindparam("channel_id"),
    t.messages.c.de_message_id == bindparam("de_message_id"),
)
_SET_MESSAGE_STATUS = (
    update(t.messages)
    .where(t.messages.c.id == bindparam("message_id"))
    .values(status=bindparam("status"))
)


_GET_MESSAGE_IN_CONTEXT = (
    select(
        t.messages,
        *(c.label("conversation__" + c.name) for c in t.conversations.c),
        *(c.label("customer__" + c.name) for c in t.customers.c),
    )
    .join(t.conversations, t.conversations.c.id == t.messages.c.conversation_id)
    .join(t.customers, t.customers.c.id == t.conversations.c.customer_id)
    .where(t.messages.c.id == bindparam("id"))
)


def get_message_in_context(
    conn: Connection, message_id: str
) -> tuple[Message, Conversation, Customer] | None:
    """A message with its conversation and customer, in one statement (every delivery)."""
    row = execute(conn, _GET_MESSAGE_IN_CONTEXT, {"id": message_id}).first()
    if row is None:
        return None
    return _message(row), _conversation(row, "conversation__"), _customer(row, "customer__")


def get_message(conn: Connection, message_id: str) -> Message | None:
    row = execute(conn, _GET_MESSAGE, {"id": message_id}).first()
    return _message(row) if row else None


def find_message_by_platform_id(
    conn: Connection, channel_id: str, platform_message_id: str
) -> Message | None:
    params = {"channel_id": channel_id, "platform_message_id": platform_message_id}
    row = execute(conn, _FIND_MESSAGE_BY_PLATFORM_ID, params).first()
    return _message(row) if row else None


def find_message_by_de_id(conn: Connection, channel_id: str, de_message_id: str) -> Message | None:
    params = {"channel_id": channel_id, "de_message_id": de_message_id}
    row = execute(conn, _FIND_MESSAGE_BY_DE_ID, params).first()
    return _message(row) if row else None


def set_message_attachments(
    conn: Connection, message_id: str, attachments: list[dict[str, Any]]
) -> None:
    conn.execute(
        update(t.messages)
        .where(t.messages.c.id == message_id)
        .values(attachments=dumps(attachments) if attachments else None)
    )


def set_message_status(conn: Connection, message_id: str, status: str) -> None:
    execute(conn, _SET_MESSAGE_STATUS, {"message_id": message_id, "status": status})


_LIST_MESSAGES = (
    select(t.messages)
    .where(
        t.messages.c.conversation_id == bindparam("conversation_id"),
        t.messages.c.seq > bindparam("after_seq"),
    )
    .order_by(t.messages.c.seq)
    .limit(bindparam("limit"))
)


def list_messages(
    conn: Connection, conversation_id: str, *, after_seq: int = -1, limit: int = 500
) -> list[Message]:
    params = {"conversation_id": conversation_id, "after_seq": after_seq, "limit": limit}
    return [_message(r) for r in execute(conn, _LIST_MESSAGES, params)]


def count_rows(conn: Connection, table: str, where: Iterable[Any] = ()) -> int:
    tbl = t.metadata.tables[table]
    query = select(func.count()).select_from(tbl)
    conditions: Sequence[Any] = list(where)
    if conditions:
        query = query.where(and_(*conditions))
    return int(conn.execute(query).scalar_one())


# --- uploaded attachments ----------------------------------------------------------------------


def insert_attachment(conn: Connection, attachment: StoredAttachment, data: bytes) -> None:
    values = {k: getattr(attachment, k) for k in StoredAttachment.__dataclass_fields__}
    conn.execute(insert(t.attachments).values(**values, data=data))


def get_attachment(
    conn: Connection, attachment_id: str, *, with_data: bool = False
) -> tuple[StoredAttachment, bytes | None] | None:
    columns = [t.attachments.c[k] for k in StoredAttachment.__dataclass_fields__]
    if with_data:
        columns.append(t.attachments.c.data)
    query = select(*columns).where(t.attachments.c.id == attachment_id)
    row = conn.execute(query).first()
    if row is None:
        return None
    m = row._mapping
    attachment = StoredAttachment(**{k: m[k] for k in StoredAttachment.__dataclass_fields__})
    return attachment, (bytes(m["data"]) if with_data else None)


# --- lifecycle: deadlines and end checks -------------------------------------------------------


def transition_conversation(
    conn: Connection, /, conversation_id: str, expect: dict[str, Any], **values: Any
) -> bool:
    """Compare-and-set: change the row only if it still holds `expect`. Exactly one of several
    instances racing on the same deadline wins; the others see False."""
    conditions = [t.conversations.c.id == conversation_id]
    for column, value in expect.items():
        col = t.conversations.c[column]
        conditions.append(col.is_(None) if value is None else col == value)
    result = conn.execute(update(t.conversations).where(*conditions).values(**values))
    return result.rowcount == 1


def due_conversations(
    conn: Connection, deadline_column: str, now: int, limit: int
) -> list[Conversation]:
    col = t.conversations.c[deadline_column]
    query = (
        select(t.conversations)
        .where(t.conversations.c.state == "open", col.is_not(None), col <= now)
        .order_by(col)
        .limit(limit)
    )
    return [_conversation(r) for r in conn.execute(query)]


def conversations_to_check(conn: Connection, limit: int) -> list[Conversation]:
    """Open conversations CXone knows, least recently checked first."""
    query = (
        select(t.conversations)
        .where(t.conversations.c.state == "open", t.conversations.c.de_contact_id.is_not(None))
        .order_by(func.coalesce(t.conversations.c.de_checked_at, 0), t.conversations.c.id)
        .limit(limit)
    )
    return [_conversation(r) for r in conn.execute(query)]


def count_pending_timers(conn: Connection) -> int:
    query = select(func.count()).where(
        t.conversations.c.state == "open",
        (t.conversations.c.idle_deadline.is_not(None))
        | (t.conversations.c.countdown_deadline.is_not(None)),
    )
    return int(conn.execute(query).scalar_one())


def set_opted_out(conn: Connection, customer_id: str, opted_out: bool) -> None:
    conn.execute(
        update(t.customers).where(t.customers.c.id == customer_id).values(opted_out=int(opted_out))
    )
