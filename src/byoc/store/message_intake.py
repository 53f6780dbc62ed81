"""A customer's message taken in one statement (PostgreSQL): the conversation it goes to, found
as `conversations.customer_and_conversation` finds it, given its sequence number and the
customer's activity (`conversations.next_seq_and_customer_active`), returned joined with its
customer, and, when asked, with the conversation's outbox lane locked.

That is one round trip where a read, then the UPDATE, took two. It takes only the common case:
a known customer whose stored profile the message would not change, writing to an open
conversation without a countdown. Anything else (a new customer, a profile to write, a thread
of another customer's or an ended one, no open conversation, a countdown) finds no row and
changes nothing, and the caller reads and writes as before (`byoc.conversations.lookups`).
When its UPDATE waited for the row and then found it changed (ended, a countdown started),
it still holds the row's lock until the commit: the caller's writes that follow lock the
conversation's row before the customer's, as an erasure does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, String, bindparam, func, select
from sqlalchemy.sql import ColumnElement

from byoc.store import schema as t
from byoc.store.compiled import execute
from byoc.store.conversations import conversation_from_row, next_seq_and_customer_active
from byoc.store.customers import customer_from_row
from byoc.store.dialect import joins_updated_rows, lane_lock
from byoc.store.records import Conversation, Customer

# The customer columns a message's profile may set, each compared with what the message gives
# (`given_<column>`; None: the message leaves it as stored). Custom fields as their JSON text.
PROFILE_COLUMNS = ("first_name", "last_name", "nickname", "image", "custom_fields")

_FOUND = t.conversations.alias("found")
# The customer's conditions. Their parameters (`of_channel`, `of_customer`, `given_<column>`,
# and `named_thread` below) are named after no column of `conversations`: the UPDATE would take
# a parameter named after one of its columns for that column's new value.
_THEIRS = (
    t.customers.c.channel_id == bindparam("of_channel"),
    t.customers.c.external_id == bindparam("of_customer"),
    *(
        func.coalesce(
            bindparam("given_" + name, type_=String()), t.customers.c[name]
        ).is_not_distinct_from(t.customers.c[name])
        for name in PROFILE_COLUMNS
    ),
)


def _theirs(*where: ColumnElement[bool]) -> Any:
    """The conversations of that customer that `where` picks."""
    joined = t.customers.join(_FOUND, t.customers.c.id == _FOUND.c.customer_id)
    return select(_FOUND.c.id).select_from(joined).where(*where, *_THEIRS)


_THREAD_ID = _theirs(_FOUND.c.id == bindparam("named_thread")).scalar_subquery()
_LATEST_OPEN_ID = (
    _theirs(_FOUND.c.state == "open").order_by(_FOUND.c.created_at.desc()).limit(1)
).scalar_subquery()


def _taken(found_id: ColumnElement[Any]) -> tuple[Any, Any]:
    """The statement, plain and with the lane's lock: a column of the one joined row (none
    when the UPDATE changes nothing), so taken after the UPDATE locked the conversation's
    row, in the order every producer takes the two. The lane is named by the `lane_prefix`
    parameter followed by the conversation's id."""
    taken = next_seq_and_customer_active(found_id).cte("taken")
    plain = select(taken, *(c.label("customer__" + c.name) for c in t.customers.c)).join(
        t.customers, t.customers.c.id == taken.c.customer_id
    )
    lane = bindparam("lane_prefix", type_=String()) + taken.c.id
    return plain, plain.add_columns(lane_lock(lane).label("lane_locked"))


_FOR_THREAD, _FOR_THREAD_LOCKING = _taken(_THREAD_ID)
_FOR_LATEST, _FOR_LATEST_LOCKING = _taken(_LATEST_OPEN_ID)


def take_for_customer_message(
    conn: Connection,
    channel_id: str,
    external_id: str,
    thread_id: str | None,
    given: Mapping[str, str | None],
    *,
    at: int,
    lane_prefix: str | None = None,
) -> tuple[int, Conversation, Customer] | None:
    """For a message of the customer `external_id` of the channel, to the thread `thread_id`
    (if theirs) or else to their latest open conversation: its sequence number, the
    conversation as this transaction leaves it, and the customer. `given` holds the profile
    the message carries, by `PROFILE_COLUMNS`. None, with nothing changed, when the common case
    does not hold (see the module docstring), and always on SQLite, where the reads cost no
    round trip. With `lane_prefix`, the lane `lane_prefix + conversation id` is locked too,
    until the commit."""
    if not joins_updated_rows(conn):
        return None
    params: dict[str, Any] = {"of_channel": channel_id, "of_customer": external_id, "at": at}
    params.update(("given_" + name, given.get(name)) for name in PROFILE_COLUMNS)
    if thread_id is None:
        plain, locking = _FOR_LATEST, _FOR_LATEST_LOCKING
    else:
        plain, locking = _FOR_THREAD, _FOR_THREAD_LOCKING
        params["named_thread"] = thread_id
    if lane_prefix is None:
        row = execute(conn, plain, params).first()
    else:
        row = execute(conn, locking, {**params, "lane_prefix": lane_prefix}).first()
    if row is None:
        return None
    conversation = conversation_from_row(row)
    return conversation.next_seq - 1, conversation, customer_from_row(row, "customer__")
