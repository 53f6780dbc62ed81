"""Privacy: the retention purge of ended conversations, and a customer's erasure.

Named queries on the caller's `Connection`: run them with `Database.run_read` / `run_write`,
alone or inside a transaction function (see `byoc.store`).

What the purge deletes of a conversation ended long ago: its messages, and the attachments those
messages carried (the stored files are the rows' `data`: deleting a row deletes its file). The
conversation row stays, holding no content (ids, state, times, why it ended), stamped
`purged_at`. An attachment is found from the link a message carries
(`…/attachments/{id}/{token}`) and deleted only when it belongs to the conversation's customer,
so a link an agent copied from another customer's conversation never deletes that customer's file.

A customer's erasure deletes everything of theirs: attachments, messages, conversations and the
customer row (name, platform user id, profile, custom fields). Outbox rows are not this
module's: `byoc.conversations.erasure` deletes them in the same transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, update

from byoc.store import schema as t
from byoc.store.dialect import locked
from byoc.store.records import Customer, loads_or_none

_C = t.conversations
_M = t.messages
_A = t.attachments

# The id in one of our attachment links (`byoc.channels.attachment_store.attachment_url`).
_ATTACHMENT_LINK = re.compile(r"/attachments/([A-Za-z0-9_-]+)/")


@dataclass(frozen=True)
class PurgeBatch:
    """What one purge transaction deleted, and whether another may find more."""

    messages: int
    attachments: int
    conversations: int  # conversations whose last content went: stamped `purged_at`
    more: bool


def _attachment_ids(attachments_json: str | None) -> set[str]:
    found: set[str] = set()
    for attachment in loads_or_none(attachments_json) or []:
        url = attachment.get("url") if isinstance(attachment, dict) else None
        if isinstance(url, str) and (match := _ATTACHMENT_LINK.search(url)):
            found.add(match.group(1))
    return found


def _delete_attachments_of(conn: Connection, owned: Iterable[tuple[str, str]]) -> int:
    """Delete the attachments named by (attachment id, customer id) pairs whose row belongs to
    that customer; how many went."""
    pairs = set(owned)
    if not pairs:
        return 0
    rows = conn.execute(
        select(_A.c.id, _A.c.customer_id).where(_A.c.id.in_(sorted({a for a, _ in pairs})))
    )
    ids = sorted(row.id for row in rows if (row.id, row.customer_id) in pairs)
    if ids:
        conn.execute(delete(_A).where(_A.c.id.in_(ids)))
    return len(ids)


def purge_ended(conn: Connection, *, ended_before: int, limit: int, now: int) -> PurgeBatch:
    """One bounded batch of the retention purge: up to `limit` conversations ended before
    `ended_before` (ms) and not purged yet, oldest end first, and up to `limit` of their
    messages with the attachments those carried. A conversation left without messages is
    stamped `purged_at = now`.

    Open conversations are never touched, whatever their age. On PostgreSQL the conversations
    and messages are locked `SKIP LOCKED`: another instance purging at the same moment takes
    other conversations, and a message some other transaction holds (a late delivery settling
    it, then its conversation) is left for a later batch rather than waited for, so the purge
    does not deadlock with it. (Its attachments are deleted with it, never skipped: a file
    whose message went would be kept for ever.) SQLite has one writer at a time.
    """
    due = locked(
        select(_C.c.id, _C.c.customer_id)
        .where(_C.c.state == "ended", _C.c.purged_at.is_(None), _C.c.ended_at < ended_before)
        .order_by(_C.c.ended_at, _C.c.id)
        .limit(limit),
        _C,
        skip=True,
    )
    customer_of = {row.id: row.customer_id for row in conn.execute(due)}
    if not customer_of:
        return PurgeBatch(0, 0, 0, more=False)
    conversation_ids = sorted(customer_of)
    found = conn.execute(
        locked(
            select(_M.c.id, _M.c.conversation_id, _M.c.attachments)
            .where(_M.c.conversation_id.in_(conversation_ids))
            .limit(limit),
            _M,
            skip=True,
        )
    ).all()
    owned = [
        (attachment_id, customer_of[row.conversation_id])
        for row in found
        for attachment_id in _attachment_ids(row.attachments)
    ]
    attachments = _delete_attachments_of(conn, owned)
    if found:
        conn.execute(delete(_M).where(_M.c.id.in_([row.id for row in found])))
    left = {
        row[0]
        for row in conn.execute(
            select(_M.c.conversation_id)
            .where(_M.c.conversation_id.in_(conversation_ids))
            .distinct()
        )
    }
    emptied = [c for c in conversation_ids if c not in left]
    if emptied:
        conn.execute(update(_C).where(_C.c.id.in_(emptied)).values(purged_at=now))
    # Another batch may find more: a full one, or a full set of conversations that made
    # progress (a batch that only met held rows stops; the next pass tries again).
    more = len(found) == limit or (len(customer_of) == limit and bool(emptied))
    return PurgeBatch(len(found), attachments, len(emptied), more=more)


# --- erasure -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Erased:
    """What a customer's erasure deleted."""

    customer_id: str
    conversation_ids: list[str]
    messages: int
    attachments: int


def conversations_of(conn: Connection, customer_id: str, *, lock: bool = False) -> list[str]:
    """The ids of the customer's conversations, in order; with `lock`, their rows locked until
    the commit (PostgreSQL)."""
    query = select(_C.c.id).where(_C.c.customer_id == customer_id).order_by(_C.c.id)
    return [row[0] for row in conn.execute(locked(query) if lock else query)]


def erase_customer_data(conn: Connection, customer: Customer, found: list[str]) -> Erased | None:
    """Delete the customer's attachments, messages and conversations, then the customer row.
    `found`: their conversations as the caller read them (`conversations_of`). None, with
    nothing deleted, when the row is gone once locked (another erasure of theirs committed
    meanwhile).

    On PostgreSQL the rows are locked first, in the order the other writers lock them: the
    messages of `found` (after their outbox rows, which the caller locks: a settle locks a
    row, its message, then the conversation), the conversations (a message's transaction
    locks its conversation, then the customer), the customer's row, which holds back every
    insert that refers to it (a new conversation, an upload) until this commits, and then the
    conversations opened meanwhile. So a message being stored in a conversation of theirs
    commits first and is deleted with it, and one that waited for this finds the rows gone.
    A message stored between those locks is not locked by them: its delivery's settle may
    then deadlock with this, rarely; PostgreSQL aborts one, and either runs again
    (`byoc.conversations.erasure.erase`, the outbox's settle).
    On SQLite writers take turns, and the locks are no-ops."""
    if found:
        theirs = select(_M.c.id).where(_M.c.conversation_id.in_(found)).order_by(_M.c.id)
        conn.execute(locked(theirs))
        conversations_of(conn, customer.id, lock=True)
    customer_row = select(t.customers.c.id).where(t.customers.c.id == customer.id)
    if conn.execute(locked(customer_row)).first() is None:
        return None
    conversation_ids = conversations_of(conn, customer.id, lock=True)  # and any opened meanwhile
    attachments = conn.execute(delete(_A).where(_A.c.customer_id == customer.id)).rowcount
    messages = 0
    if conversation_ids:
        gone = conn.execute(delete(_M).where(_M.c.conversation_id.in_(conversation_ids)))
        messages = gone.rowcount
        conn.execute(delete(_C).where(_C.c.id.in_(conversation_ids)))
    conn.execute(delete(t.customers).where(t.customers.c.id == customer.id))
    return Erased(customer.id, conversation_ids, messages, attachments)
