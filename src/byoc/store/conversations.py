"""Conversations (DE threads): their state, sequence numbers, deadlines and end checks.

Named queries on the caller's `Connection`: run them with `Database.run_read` / `run_write`,
alone or inside a transaction function (see `byoc.store`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, case, func, insert, or_, select, update
from sqlalchemy.sql.base import Executable

from byoc.store import schema as t
from byoc.store.compiled import execute
from byoc.store.customers import customer_from_row
from byoc.store.dialect import joins_updated_rows, lane_lock, locks_lanes
from byoc.store.locks import wait_for_others
from byoc.store.records import Conversation, Customer


def conversation_from_row(row: Row[Any], prefix: str = "") -> Conversation:
    m = row._mapping
    return Conversation(**{k: m[prefix + k] for k in Conversation.__dataclass_fields__})


_GET_CONVERSATION = select(t.conversations).where(t.conversations.c.id == bindparam("id"))


def get_conversation(conn: Connection, conversation_id: str) -> Conversation | None:
    row = execute(conn, _GET_CONVERSATION, {"id": conversation_id}).first()
    return conversation_from_row(row) if row else None


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
    return (conversation_from_row(row), customer_from_row(row, "customer__")) if row else None


# What a customer's message reads, in one statement: its customer (by the platform's id), and
# the conversation it goes to: the thread named, if it is that customer's, else the customer's
# latest open one. No row when the customer is new; no conversation when there is none.
_LATEST = t.conversations.alias("latest")
_LATEST_OPEN_ID = (
    select(_LATEST.c.id)
    .where(_LATEST.c.customer_id == t.customers.c.id, _LATEST.c.state == "open")
    .order_by(_LATEST.c.created_at.desc())
    .limit(1)
    .scalar_subquery()
)


def _customer_with(conversation_joined: Any) -> Any:
    return (
        select(*(c.label("customer__" + c.name) for c in t.customers.c), t.conversations)
        .select_from(t.customers.outerjoin(t.conversations, conversation_joined))
        .where(
            t.customers.c.channel_id == bindparam("channel_id"),
            t.customers.c.external_id == bindparam("external_id"),
        )
    )


_CUSTOMER_AND_THREAD = _customer_with(
    and_(
        t.conversations.c.id == bindparam("thread_id"),
        t.conversations.c.customer_id == t.customers.c.id,
    )
)
_CUSTOMER_AND_LATEST_OPEN = _customer_with(t.conversations.c.id == _LATEST_OPEN_ID)


def customer_and_conversation(
    conn: Connection, channel_id: str, external_id: str, thread_id: str | None
) -> tuple[Customer | None, Conversation | None]:
    """The customer `external_id` of the channel, and the conversation their message goes to:
    the thread `thread_id` if it is theirs, or without one their latest open conversation."""
    params = {"channel_id": channel_id, "external_id": external_id}
    if thread_id is None:
        row = execute(conn, _CUSTOMER_AND_LATEST_OPEN, params).first()
    else:
        row = execute(conn, _CUSTOMER_AND_THREAD, {**params, "thread_id": thread_id}).first()
    if row is None:
        return None, None
    conversation = conversation_from_row(row) if row._mapping["id"] is not None else None
    return customer_from_row(row, "customer__"), conversation


def lock_opening(conn: Connection, of: str) -> bool:
    """Before opening a conversation for `of` (a customer's id; `de:` and a CXone thread's
    id): wait, until the commit, for any other transaction that may be opening one for it
    (`locks.wait_for_others`). True when it may have waited: what was read before may be
    stale, the conversation may exist now."""
    return wait_for_others(conn, "opening:" + of)


def find_conversation_by_de_thread(conn: Connection, de_thread_id: str) -> Conversation | None:
    """The conversation CXone's thread id names: the open one, or else the newest."""
    c = t.conversations.c
    query = select(t.conversations).where(c.de_thread_id == de_thread_id)
    query = query.order_by((c.state == "open").desc(), c.created_at.desc()).limit(1)
    row = conn.execute(query).first()
    return conversation_from_row(row) if row else None


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
    return conversation_from_row(row) if row else None


def insert_conversation(conn: Connection, conversation: Conversation) -> None:
    values = {k: getattr(conversation, k) for k in Conversation.__dataclass_fields__}
    conn.execute(insert(t.conversations).values(**values))


_NEXT_SEQ = (
    update(t.conversations)
    .where(t.conversations.c.id == bindparam("conversation_id"))
    .values(next_seq=t.conversations.c.next_seq + 1)
    .returning(*t.conversations.c)
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
    .returning(*t.conversations.c)
)


# A reply's whole read and write of its conversation in one statement (PostgreSQL): the UPDATE
# of `_NEXT_SEQ_AND_IDLE` on the conversation if it is in the channel named, its row joined
# with its customer's.
# (The parameter is not named after the column: an UPDATE would take it for a new value.)
_TAKEN_FOR_REPLY = _NEXT_SEQ_AND_IDLE.where(
    t.conversations.c.channel_id == bindparam("in_channel")
).cte("taken")
_NEXT_SEQ_FOR_REPLY = select(
    _TAKEN_FOR_REPLY, *(c.label("customer__" + c.name) for c in t.customers.c)
).join(t.customers, t.customers.c.id == _TAKEN_FOR_REPLY.c.customer_id)
# The same, then an outbox lane's lock (`lock_lane`): a column of the joined row (one at most,
# both joins being on keys, and none when the UPDATE finds nothing), so taken after the UPDATE
# locked the conversation's row, in the order every producer takes the two.
_NEXT_SEQ_FOR_REPLY_LOCKING = _NEXT_SEQ_FOR_REPLY.add_columns(lane_lock().label("lane_locked"))


def next_seq_for_reply(
    conn: Connection,
    conversation_id: str,
    *,
    channel_id: str,
    idle_deadline: int,
    lock_lane: str | None = None,
) -> tuple[int, Conversation, Customer] | None:
    """What `next_seq` does with `idle_deadline`, if `conversation_id` is a conversation of
    `channel_id`: the number, the conversation as this transaction leaves it, and its customer.
    None, with nothing changed, when there is no such conversation. One statement where an
    UPDATE's rows can be joined (`dialect.joins_updated_rows`); on SQLite, a read then the
    UPDATE (no round trips to save there). With `lock_lane`, on PostgreSQL, the statement also
    takes that outbox lane's lock when it finds the conversation, held until the commit."""
    params = {"conversation_id": conversation_id, "idle_deadline": idle_deadline}
    if joins_updated_rows(conn):
        statement, with_lane = _locking(
            conn, _NEXT_SEQ_FOR_REPLY, _NEXT_SEQ_FOR_REPLY_LOCKING, params, lock_lane
        )
        row = execute(conn, statement, {**with_lane, "in_channel": channel_id}).first()
        if row is None:
            return None
        conversation, customer = conversation_from_row(row), customer_from_row(row, "customer__")
    else:
        found = get_conversation_and_customer(conn, conversation_id)
        if found is None or found[0].channel_id != channel_id:
            return None
        customer = found[1]
        conversation = conversation_from_row(execute(conn, _NEXT_SEQ_AND_IDLE, params).one())
    return conversation.next_seq - 1, conversation, customer


# The same, and the customer's activity recorded (`customer_active`): one statement for what a
# customer's message does to its conversation while no countdown runs.
# Only while the conversation is open and no countdown runs: an idle warning or an end that
# committed after the caller read the row leaves it alone (`next_seq_if_no_countdown`: None).
def next_seq_and_customer_active(conversation_id: Any) -> Any:
    """That UPDATE of the conversation whose id `conversation_id` gives (an expression)."""
    return (
        update(t.conversations)
        .where(
            t.conversations.c.id == conversation_id,
            t.conversations.c.state == "open",
            t.conversations.c.countdown_deadline.is_(None),
        )
        .values(
            next_seq=t.conversations.c.next_seq + 1,
            idle_deadline=None,
            last_customer_activity_at=bindparam("at"),
        )
        .returning(*t.conversations.c)
    )


_NEXT_SEQ_AND_CUSTOMER_ACTIVE = next_seq_and_customer_active(bindparam("conversation_id"))
# Each UPDATE above, then an outbox lane's lock (`lock_lane`): a RETURNING column, so taken after
# the UPDATE locked the conversation's row, in the order every producer takes the two
# (PostgreSQL).
_NEXT_SEQ_LOCKING = _NEXT_SEQ.returning(lane_lock().label("lane_locked"))
_NEXT_SEQ_AND_IDLE_LOCKING = _NEXT_SEQ_AND_IDLE.returning(lane_lock().label("lane_locked"))
_NEXT_SEQ_AND_CUSTOMER_ACTIVE_LOCKING = _NEXT_SEQ_AND_CUSTOMER_ACTIVE.returning(
    lane_lock().label("lane_locked")
)


def _locking(
    conn: Connection,
    plain: Executable,
    locking: Executable,
    params: dict[str, Any],
    lock_lane: str | None,
) -> tuple[Executable, dict[str, Any]]:
    """`locking`, with its lane, when a lane's lock is asked for on PostgreSQL; else `plain`."""
    if lock_lane is not None and locks_lanes(conn):
        return locking, {**params, "lane": lock_lane}
    return plain, params


def next_seq(
    conn: Connection,
    conversation_id: str,
    *,
    idle_deadline: int | None = None,
    lock_lane: str | None = None,
) -> tuple[int, Conversation]:
    """Reserve the conversation's next message sequence number inside the caller's transaction;
    with `idle_deadline`, also start the idle clock if the conversation is open and no countdown
    runs (one statement for what an agent message does to its conversation). The number, and
    the conversation as the transaction leaves it: its row stays locked until the commit, so
    that is what any read before then would find. With `lock_lane`, on PostgreSQL, the
    statement also takes that outbox lane's lock, held until the commit."""
    params: dict[str, Any] = {"conversation_id": conversation_id}
    if idle_deadline is None:
        pair = (_NEXT_SEQ, _NEXT_SEQ_LOCKING)
    else:
        pair = (_NEXT_SEQ_AND_IDLE, _NEXT_SEQ_AND_IDLE_LOCKING)
        params["idle_deadline"] = idle_deadline
    statement, params = _locking(conn, *pair, params, lock_lane)
    conversation = conversation_from_row(execute(conn, statement, params).one())
    return conversation.next_seq - 1, conversation


def next_seq_if_no_countdown(
    conn: Connection, conversation_id: str, *, at: int, lock_lane: str | None = None
) -> tuple[int, Conversation] | None:
    """A customer's message while no countdown runs: its sequence number and the conversation
    (as `next_seq`), and what `customer_active` records, in one statement. A compare-and-set:
    None, and nothing changed, when the row has ended or a countdown runs on it by now,
    whatever the caller read before. `lock_lane` as for `next_seq` (taken only with a number)."""
    statement, params = _locking(
        conn,
        _NEXT_SEQ_AND_CUSTOMER_ACTIVE,
        _NEXT_SEQ_AND_CUSTOMER_ACTIVE_LOCKING,
        {"conversation_id": conversation_id, "at": at},
        lock_lane,
    )
    row = execute(conn, statement, params).first()
    if row is None:
        return None
    conversation = conversation_from_row(row)
    return conversation.next_seq - 1, conversation


_IDLE = t.conversations.c.idle_deadline
_CUSTOMER_ACTIVE = (
    update(t.conversations)
    .where(
        t.conversations.c.id == bindparam("conversation_id"),
        t.conversations.c.state == "open",
        t.conversations.c.countdown_deadline.is_(None),
    )
    .values(
        idle_deadline=case((_IDLE.is_(None), _IDLE), else_=bindparam("restart")),
        last_customer_activity_at=bindparam("at"),
    )
)


def customer_active(
    conn: Connection, conversation_id: str, at: int, restart: int | None = None
) -> bool:
    """The customer did something: a reply they owed is owed until `restart` (None: a message,
    owed no more). Only while open and no countdown runs (a compare-and-set; False otherwise:
    `lifecycle.customer_spoke` cancels a countdown instead)."""
    params = {"conversation_id": conversation_id, "at": at, "restart": restart}
    return bool(execute(conn, _CUSTOMER_ACTIVE, params).rowcount == 1)


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
    return [conversation_from_row(r) for r in conn.execute(query)]


def conversations_to_check(
    conn: Connection, limit: int, now: int, skip_channels: tuple[str, ...] = ()
) -> list[Conversation]:
    """Open conversations CXone knows, the poll may ask about at `now`, least checked first."""
    c = t.conversations.c
    query = (
        select(t.conversations)
        .where(c.state == "open", c.de_contact_id.is_not(None), c.channel_id.not_in(skip_channels))
        .where(or_(c.de_poll_after.is_(None), c.de_poll_after <= now))
        .order_by(func.coalesce(c.de_checked_at, 0), c.id)
        .limit(limit)
    )
    return [conversation_from_row(r) for r in conn.execute(query)]


def count_pending_timers(conn: Connection) -> int:
    c = t.conversations.c
    timers = or_(c.idle_deadline.is_not(None), c.countdown_deadline.is_not(None))
    return int(conn.execute(select(func.count()).where(c.state == "open", timers)).scalar_one())
