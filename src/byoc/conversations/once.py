"""A message's transaction, run so that the message is stored once whatever retries arrive.

A message that names an id (the platform's message id, CXone's message id or the request's
idempotency key: its `retry_id`) is stored at most once per channel; a retry of it is answered
with the stored message (`Delivered.duplicate`). The transaction first runs without looking
for an earlier copy, since nearly every message is new and the look is a statement of its own;
what it would have found is caught all the same:

- the message's unique key on its channel refuses the INSERT (`DuplicateError`, nothing
  written): the earlier copy committed, before or while this ran;
- a refusal between the place where the transaction would have looked (`Attempt.earlier`)
  and the INSERT (`ByocError`: the conversation ended since the copy was stored, say) might
  be one the copy should have answered. A refusal before that place (an unknown channel or
  thread) is final: looking would not have changed it.

After either, the transaction runs again, looking first: it replays the copy it finds, or
fails as it would have. A `Contention` (PostgreSQL chose it as a deadlock's victim: nothing
written) runs it again too, and so does a duplicate key of a message without an id: another
transaction inserted a row this one read as missing (a new customer's first two messages at
once, on PostgreSQL), and the next run finds it. So does a foreign key's refusal
(`ReferenceChanged`): a row the run read was deleted before its write committed (an erasure
of the customer), and the next run finds it gone. Three runs in all. A failed run leaves
nothing behind: its writes are rolled back with its transaction (or its savepoint, in an
SQLite group).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial

from sqlalchemy import Connection

from byoc.conversations.models import Delivered
from byoc.errors import ByocError
from byoc.store import Contention, Database, DuplicateError, ReferenceChanged
from byoc.store.records import Message


class Attempt:
    """One run of a message's transaction: whether it looks for an earlier copy of the
    message, and whether it got as far as the place where it would."""

    __slots__ = ("look_first", "reached_look")

    def __init__(self, look_first: bool) -> None:
        self.look_first = look_first
        self.reached_look = False

    def earlier(self, find: Callable[[], Message | None]) -> Message | None:
        """Called by the transaction where it would look for the message's earlier copy: that
        copy (`find()`) on a run that looks, else None. A run that looks has written nothing
        before this call; one that does not may have (a reply's sequence number:
        `replies.store_reply`), and whatever refuses it afterwards rolls that back."""
        self.reached_look = True
        return find() if self.look_first else None


# A message's transaction.
MessageTx = Callable[[Connection, Attempt], Delivered]


async def write_once(
    db: Database, retry_id: str | None, tx: MessageTx, then: Callable[[Delivered], None]
) -> Delivered:
    """Run `tx` until it stores the message or replays its earlier copy (module docstring),
    then call `then` with the result (the caller dispatches the row its transaction claimed).
    Shielded: once stored, the row is dispatched even if the request is cancelled meanwhile
    (a client gone, a shutdown), rather than waiting for its claim's lease to run out."""

    async def write() -> Delivered:
        delivered = await _stored_once(db, retry_id, tx)
        then(delivered)
        return delivered

    return await asyncio.shield(write())


async def _stored_once(db: Database, retry_id: str | None, tx: MessageTx) -> Delivered:
    look_first = False
    for attempts_left in (2, 1, 0):
        attempt = Attempt(look_first)
        try:
            return await db.run_write(partial(_run, tx, attempt))
        except (Contention, DuplicateError, ReferenceChanged):
            if not attempts_left:
                raise
            look_first = True
        except ByocError:
            if not retry_id or attempt.look_first or not attempt.reached_look or not attempts_left:
                raise
            look_first = True
    raise AssertionError("unreachable: the last attempt returns or raises")


def _run(tx: MessageTx, attempt: Attempt, conn: Connection) -> Delivered:
    return tx(conn, attempt)
