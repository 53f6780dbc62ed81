"""A message stored with its delivery queued, and claimed for delivery at once where it can be.

Every stored message has an outbox row that delivers it. When the outbox worker has room
(`FreshRows.fresh_claim`), the row is inserted already claimed if nothing older waits in its
lane, and goes to its delivery once the transaction commits, without waiting for a pass.

On PostgreSQL the claim's test ("nothing older is pending in the lane") is only sound once the
transaction holds the lane's lock, which every producer of a lane takes before it draws its
row's id (`byoc.outbox.rows`): the message's insert takes it, so the row's insert, a later
statement, sees every earlier row of the lane. In one statement it would not: a statement sees
what had committed when it began, before it waited for the lock: two statements. A reply or a
customer's message takes the lock with its sequence number's UPDATE instead (`replies`,
`lifecycle.customer_wrote`), and then the message and its row are one statement.
"""

from __future__ import annotations

from sqlalchemy import Connection

from byoc.conversations.models import FreshRows
from byoc.outbox import kinds
from byoc.store import messages
from byoc.store.messages import MessageInContext
from byoc.store.records import Message, OutboxRow


def store_message(
    conn: Connection,
    message: Message,
    delivery: kinds.Payload,
    *,
    now: int,
    fresh_rows: FreshRows | None = None,
    held: MessageInContext | None = None,
    lane_locked: bool = False,
) -> OutboxRow | None:
    """Insert `message` and queue `delivery` (its row's payload) in the caller's transaction.
    With `fresh_rows`: the row, claimed for that worker, when it heads its lane and the worker
    has room, with what its preload takes from `held` (the message in context, as the intake
    has it); the caller hands it to `fresh_rows.dispatch` after the commit. Otherwise None.
    `lane_locked`: the transaction holds the delivery lane's lock already (on PostgreSQL, taken
    with the sequence number: `lock_lane`), so the message and its row are inserted by one
    statement."""
    if fresh_rows is None:
        messages.insert_message(conn, message)
        kinds.enqueue(conn, delivery, now=now)
        return None
    if not lane_locked:
        messages.insert_message(conn, message, lock_lane=delivery.lane())
    claim = fresh_rows.fresh_claim()  # its lease counted from after any wait for the lock
    if claim is None:
        if lane_locked:
            messages.insert_message(conn, message)
        kinds.enqueue(conn, delivery, now=now)
        return None
    along = message if lane_locked else None  # inserted by the row's own statement
    row = kinds.enqueue_claimed(conn, delivery, now=now, claim=claim, message=along)
    return fresh_rows.take_fresh(conn, row, held) if row is not None else None
