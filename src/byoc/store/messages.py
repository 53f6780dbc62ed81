"""Messages of a conversation, in both directions.

Named queries on the caller's `Connection`: run them with `Database.run_read` / `run_write`,
alone or inside a transaction function (see `byoc.store`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import Connection, Row, bindparam, insert, select, update

from byoc.store import schema as t
from byoc.store.channels import channel_from_row
from byoc.store.compiled import execute
from byoc.store.conversations import conversation_from_row
from byoc.store.customers import customer_from_row
from byoc.store.dialect import InJsonIds
from byoc.store.records import Channel, Conversation, Customer, Message, dumps, loads_or_none


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
    execute(conn, _INSERT_MESSAGE, message_row(message))


# The same insert as a CTE, its parameters named `message_<column>`, for a statement that
# inserts the message beside another row (PostgreSQL: `outbox.rows.enqueue_claimed`).
INSERT_MESSAGE_CTE = (
    insert(t.messages)
    .values({c.name: bindparam("message_" + c.name, type_=c.type) for c in t.messages.c})
    .cte("message")
)


def insert_message_cte_params(message: Message) -> dict[str, Any]:
    """The parameters of `INSERT_MESSAGE_CTE` for `message`."""
    return {"message_" + name: value for name, value in message_row(message).items()}


def message_row(message: Message) -> dict[str, Any]:
    """`message` as the values of its row."""
    return {
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
    }


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

# The ids as one JSON parameter: one compiled statement whatever their number. Only the
# messages still in the status `was`: a receipt may have moved one on meanwhile.
_SET_STATUS_OF_MANY = (
    update(t.messages)
    .where(InJsonIds(t.messages.c.id, "ids_json"), t.messages.c.status == bindparam("was"))
    .values(status=bindparam("status"))
)

# An agent message's status moves forward only: a receipt may come before the delivery's
# settle, receipts race, and a delivery given up may have reached the platform after all.
# The statuses a status may follow (`advance_status`), as one JSON parameter.
_ADVANCE_STATUS = (
    update(t.messages)
    .where(t.messages.c.id == bindparam("message_id"), InJsonIds(t.messages.c.status, "from_json"))
    .values(status=bindparam("status"))
)
_MAY_FOLLOW = {
    "delivered": ("queued", "sent", "failed"),
    "seen": ("queued", "sent", "delivered", "failed"),
    "failed": ("queued",),
}


# Messages with their conversation, customer and channel (None once deleted), by id list.
_GET_MESSAGES_IN_CONTEXT = (
    select(
        t.messages,
        *(c.label("conversation__" + c.name) for c in t.conversations.c),
        *(c.label("customer__" + c.name) for c in t.customers.c),
        *(c.label("channel__" + c.name) for c in t.channels.c),
    )
    .join(t.conversations, t.conversations.c.id == t.messages.c.conversation_id)
    .join(t.customers, t.customers.c.id == t.conversations.c.customer_id)
    .outerjoin(
        t.channels,
        (t.channels.c.id == t.conversations.c.channel_id) & t.channels.c.deleted_at.is_(None),
    )
    .where(InJsonIds(t.messages.c.id, "ids_json"))
)


MessageInContext = tuple[Message, Conversation, Customer, Channel | None]


def _message_in_context(row: Row[Any]) -> MessageInContext:
    channel = channel_from_row(row, "channel__") if row._mapping["channel__id"] else None
    return (
        _message(row),
        conversation_from_row(row, "conversation__"),
        customer_from_row(row, "customer__"),
        channel,
    )


def get_messages_in_context(
    conn: Connection, message_ids: Sequence[str]
) -> dict[str, MessageInContext]:
    """Messages with their conversation, customer and channel (None once deleted), in one
    statement, by message id; a message that is gone is absent. What deliveries read: the
    rows a pass of the outbox claims, or one delivery's message."""
    if not message_ids:
        return {}
    found = execute(conn, _GET_MESSAGES_IN_CONTEXT, {"ids_json": json.dumps(list(message_ids))})
    return {row._mapping["id"]: _message_in_context(row) for row in found}


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


def set_status_of_many(conn: Connection, message_ids: list[str], status: str, *, was: str) -> None:
    """One statement for many messages (the ones an outbox pass settles): those still `was`."""
    if message_ids:
        params = {"ids_json": json.dumps(message_ids), "status": status, "was": was}
        execute(conn, _SET_STATUS_OF_MANY, params)


def mark_sent(conn: Connection, message_ids: list[str]) -> None:
    """These messages reached the customer's platform (unless a receipt said more already)."""
    set_status_of_many(conn, message_ids, "sent", was="queued")


def advance_status(
    conn: Connection, message_id: str, status: Literal["delivered", "seen", "failed"]
) -> bool:
    """Move the agent message on to `status` (a receipt; a delivery given up): True when it
    did, False for a repeat or a status it is past (seen is final; failed only if queued)."""
    params = {"message_id": message_id, "status": status}
    params["from_json"] = json.dumps(_MAY_FOLLOW[status])
    return bool(execute(conn, _ADVANCE_STATUS, params).rowcount == 1)


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
