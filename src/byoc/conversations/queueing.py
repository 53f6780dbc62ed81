"""A message stored with its delivery queued, and claimed for delivery at once where it can be.

Every stored message has an outbox row that delivers it. When the outbox worker has room
(`FreshRows.fresh_claim`), the row is inserted already claimed if nothing older waits in its
lane, and goes to its delivery once the transaction commits, without waiting for a pass.

On PostgreSQL the claim's test ("nothing older is pending in the lane") is only sound once the
transaction holds the lane's lock, which every producer of a lane takes before it draws its
row's id (`byoc.outbox.rows`), and only in a later statement than the one that took it: a
statement sees what had committed when it began, before it waited for the lock. So a caller
with a worker to claim for takes the lock with the message's sequence number, in the UPDATE
that reserves it (`conversations.next_seq` and its kin with `lock_lane`, `message_intake`),
and the message and its row are then one statement.
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
) -> OutboxRow | None:
    """Insert `message` and queue `delivery` (its row's payload) in the caller's transaction.
    With `fresh_rows`: the row, claimed for that worker, when it heads its lane and the worker
    has room, with what its preload takes from `held` (the message in context, as the intake
    has it); the caller hands it to `fresh_rows.dispatch` after the commit. Otherwise None.
    With `fresh_rows`, on PostgreSQL, the message and its row are one statement either way.
    With `fresh_rows` the transaction must hold the delivery lane's lock already (on
    PostgreSQL: see the module docstring)."""
    if fresh_rows is None:
        messages.insert_message(conn, message)
        kinds.enqueue(conn, delivery, now=now)
        return None
    # After the lock's wait. None when the worker has no room: the row is queued unclaimed, by
    # the same one statement with its message (a pass claims it in turn).
    claim = fresh_rows.fresh_claim()
    row = kinds.enqueue_claimed(conn, delivery, now=now, claim=claim, message=message)
    return fresh_rows.take_fresh(conn, row, held) if row is not None else None
