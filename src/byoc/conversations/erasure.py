"""A customer's right to erasure: everything this service holds about one platform user of one
channel goes, in one transaction.

That is the customer row (name, platform user id, picture, custom fields, opt-out), their
conversations, the messages of those conversations, their attachments (the files are the
rows' data), and every outbox row in those conversations' lanes, pending or dead, so nothing
of theirs is delivered afterwards. A delivery already under way when the transaction commits
finds its row gone; one that starts later finds the message gone and settles its row unsent
(`byoc.outbox.errors.Gone`).

CXone keeps its own copy of what it was sent (the contacts and their transcripts): erasing
there is done in CXone.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

from byoc.errors import ChannelNotFound
from byoc.outbox import kinds
from byoc.outbox import rows as outbox_rows
from byoc.store import Contention, Database, channels, customers, privacy
from byoc.store.records import Channel


@dataclass(frozen=True)
class Erasure:
    """What an erasure found and deleted; `customer_id` None when the channel holds no such
    customer (erased before, or never seen): nothing was deleted."""

    channel: Channel
    customer_id: str | None = None
    conversations: int = 0
    messages: int = 0
    attachments: int = 0
    outbox_rows: int = 0

    @property
    def found(self) -> bool:
        return self.customer_id is not None


async def erase(db: Database, channel_id: str, external_id: str) -> Erasure:
    """`erase_customer` in a transaction of its own, run again (three runs in all) when
    PostgreSQL aborted it to break a deadlock with a message's delivery settling meanwhile."""
    for runs_left in (2, 1, 0):
        try:
            return await db.run_bulk_write(erase_customer, channel_id, external_id)
        except Contention:
            if not runs_left:
                raise
    raise AssertionError("unreachable: the last run returns or raises")


def erase_customer(conn: Connection, channel_id: str, external_id: str) -> Erasure:
    """Erase the customer `external_id` (the platform's user id) of channel `channel_id`, in the
    caller's transaction. `ChannelNotFound` when no such channel was ever mapped (a deleted
    channel's customers can still be erased)."""
    channel = channels.get_channel_even_deleted(conn, channel_id)
    if channel is None:
        raise ChannelNotFound(f"no channel {channel_id!r}")
    customer = customers.find_customer(conn, channel.id, external_id)
    if customer is None:
        return Erasure(channel)
    found = privacy.conversations_of(conn, customer.id)
    # Their deliveries' rows are locked before anything else, as a settle locks them first.
    outbox_rows.lock_lanes(conn, _lanes(found))
    erased = privacy.erase_customer_data(conn, customer, found)
    if erased is None:  # erased meanwhile
        return Erasure(channel)
    lanes = _lanes(erased.conversation_ids)
    return Erasure(
        channel,
        customer_id=customer.id,
        conversations=len(erased.conversation_ids),
        messages=erased.messages,
        attachments=erased.attachments,
        outbox_rows=outbox_rows.delete_lanes(conn, lanes),
    )


def _lanes(conversation_ids: list[str]) -> list[str]:
    return [lane for c in conversation_ids for lane in kinds.conversation_lanes(c)]
