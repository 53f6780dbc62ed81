"""Outbox rows: enqueue, claim, settle, list, count and re-drive.

Synchronous, on the caller's `Connection`, so they join a transaction function run by
`Database.run_write` / `run_read`, or are run by it on their own
(`await db.run_read(rows.list_rows, state=None)`). Each function that stamps or compares a
time takes `now` (ms, from the caller's clock: see `byoc.clock`), so that the rows a worker
claims were stamped on the same clock it reads. Where SQLite and PostgreSQL differ (row locks,
id lists) is `byoc.store.dialect`'s to say.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    String,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)

from byoc.store import messages
from byoc.store import schema as t
from byoc.store.compiled import batched, execute
from byoc.store.db import now_ms
from byoc.store.dialect import (
    InJsonIds,
    insert_after_lane_lock,
    locked,
    locks_lanes,
    skip_locked_cte,
)
from byoc.store.records import Message, OutboxRow, dumps

PENDING = "pending"
DEAD = "dead"


# Built once: these run for every message (see `byoc.store`).
_ENQUEUE = insert(t.outbox).returning(t.outbox.c.id)
_ENQUEUED = ("lane", "kind", "payload", "state", "attempts", "next_attempt_at")
# Lane order is id order, and a claim trusts that every earlier row of a lane is visible. On
# PostgreSQL two transactions inserting into one lane could commit out of id order (the id is
# drawn at insert, the row shows at commit), so the later row would be delivered first and the
# earlier one, showing up behind it, claimed while it is still in flight. Every producer of a
# lane therefore takes the lane's lock (until its commit) before drawing the id: in the same
# statement as the insert (`dialect.insert_after_lane_lock`), or in an earlier one of its
# transaction (its message's sequence number's UPDATE: see `byoc.conversations.queueing`).
# SQLite has one writer at a time: nothing to do there.
_ENQUEUE_AFTER_LANE_LOCK = insert_after_lane_lock(
    t.outbox, (*_ENQUEUED, "created_at", "updated_at")
).returning(t.outbox.c.id)
# Each lane's oldest pending row: one pass over the (lane, state, id) index. (A per-row
# "no earlier pending row in this lane" test made a claim cost O(backlog) on one long lane.)
_LANE_HEADS = (
    select(func.min(t.outbox.c.id)).where(t.outbox.c.state == PENDING).group_by(t.outbox.c.lane)
)
_DUE = (
    select(t.outbox.c.id)
    .where(
        t.outbox.c.id.in_(_LANE_HEADS),
        t.outbox.c.next_attempt_at <= bindparam("now"),
        (t.outbox.c.claimed_until.is_(None)) | (t.outbox.c.claimed_until < bindparam("now")),
    )
    .order_by(t.outbox.c.id)
    .limit(bindparam("limit"))
)
# Up to `limit` due rows claimed, and returned, by one statement: the due rows that no other
# transaction holds (`locked(skip=True)`), locked, then stamped with the claim.
_DUE_UNLOCKED = skip_locked_cte(_DUE, "due", t.outbox)
_CLAIM_DUE = (
    update(t.outbox)
    .where(t.outbox.c.id == _DUE_UNLOCKED.c.id)
    .values(claimed_until=bindparam("claimed_until"), claimed_by=bindparam("owner"))
    .returning(*t.outbox.c)
)
# An id list is one JSON parameter, so the SQL stays the same whatever the list's length and is
# compiled once.
_COMPLETE = delete(t.outbox).where(InJsonIds(t.outbox.c.id, "ids_json"))
_EARLIER = t.outbox.alias("earlier")
# A row inserted and, when nothing older is pending in its lane, claimed by the same statement
# (`enqueue_claimed`). Its id is drawn after the test; the lane's lock (PostgreSQL) is the
# caller's to hold by then.
_OLDER = exists().where(_EARLIER.c.lane == bindparam("lane"), _EARLIER.c.state == PENDING)
_HEAD = select((~_OLDER).label("head")).subquery("head")  # tested once, used twice
_ENQUEUE_CLAIMED = (
    insert(t.outbox)
    .from_select(
        [*_ENQUEUED, "created_at", "updated_at", "claimed_until", "claimed_by"],
        select(
            *(
                bindparam(name, type_=t.outbox.c[name].type)
                for name in (*_ENQUEUED, "created_at", "updated_at")
            ),
            case((_HEAD.c.head, bindparam("claimed_until", type_=BigInteger()))),
            case((_HEAD.c.head, bindparam("owner", type_=String()))),
        ).select_from(_HEAD),
    )
    .returning(*t.outbox.c)
)
# The same, and the message the row delivers inserted by the statement too (PostgreSQL: a
# data-modifying CTE): one round trip for a message and its delivery, when the transaction
# holds the lane's lock already (`enqueue_claimed(message=...)`).
_ENQUEUE_CLAIMED_WITH_MESSAGE = _ENQUEUE_CLAIMED.add_cte(messages.INSERT_MESSAGE_CTE)


def enqueue(
    conn: Connection,
    *,
    lane: str,
    kind: str,
    payload: dict[str, Any],
    now: int,
    delay_ms: int = 0,
) -> int:
    """Insert a row as given. The application queues through `byoc.outbox.kinds.enqueue`,
    which derives the kind and the lane from a typed payload."""
    params = _new_row(lane, kind, payload, now, delay_ms)
    statement = _ENQUEUE_AFTER_LANE_LOCK if locks_lanes(conn) else _ENQUEUE
    return int(execute(conn, statement, params).scalar_one())


def _new_row(
    lane: str, kind: str, payload: dict[str, Any], now: int, delay_ms: int = 0
) -> dict[str, Any]:
    """The parameters of a new pending row, due `delay_ms` after `now`."""
    return {
        "lane": lane,
        "kind": kind,
        "payload": dumps(payload),
        "state": PENDING,
        "attempts": 0,
        "next_attempt_at": now + delay_ms,
        "created_at": now,
        "updated_at": now,
    }


def _row(m: Any) -> OutboxRow:
    return OutboxRow(
        id=m["id"],
        lane=m["lane"],
        kind=m["kind"],
        payload=json.loads(m["payload"]),
        state=m["state"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        last_error=m["last_error"],
        created_at=m["created_at"],
    )


def claim_due(
    conn: Connection, *, owner: str, limit: int, lease_ms: int, now: int
) -> list[OutboxRow]:
    """Claim up to `limit` due rows, at most one per lane: the lane's oldest pending row, in
    one statement. Rows another instance is claiming at the same moment are skipped, not
    waited for."""
    params = {"now": now, "limit": limit, "claimed_until": now + lease_ms, "owner": owner}
    claimed = [_row(r._mapping) for r in execute(conn, _CLAIM_DUE, params)]
    claimed.sort(key=lambda row: row.id)  # RETURNING keeps no order
    return claimed


@dataclass(frozen=True)
class Claim:
    """A claim a row may take at its insert (`enqueue_claimed`): whose, and until when (ms)."""

    owner: str
    until: int


def enqueue_claimed(
    conn: Connection,
    *,
    lane: str,
    kind: str,
    payload: dict[str, Any],
    now: int,
    claim: Claim | None,
    message: Message | None = None,
) -> OutboxRow | None:
    """Insert a row, due now, claimed by `claim` when nothing older is pending in its lane (as
    `claim_due` would claim it), in one statement: the row as claimed, or None when an older
    row of its lane waits or `claim` is None (the row is inserted all the same, and a pass
    claims it in turn).
    With `message` (the message the row delivers), that is inserted too: by the same statement
    on PostgreSQL (a data-modifying CTE, run in no set order with the outbox row's insert;
    either failing fails both), before it on SQLite (`messages.insert_message`).

    On PostgreSQL the caller's transaction must hold the lane's lock already, taken by an
    earlier statement (`dialect.lane_lock` with this lane):
    a statement sees what had committed when it began, so only then does it see every earlier
    row of the lane. SQLite has one writer at a time: nothing to hold there."""
    statement = _ENQUEUE_CLAIMED
    params = _new_row(lane, kind, payload, now)
    params["claimed_until"] = claim.until if claim is not None else None
    params["owner"] = claim.owner if claim is not None else None
    if message is not None and locks_lanes(conn):
        statement = _ENQUEUE_CLAIMED_WITH_MESSAGE
        params.update(messages.insert_message_cte_params(message))
    elif message is not None:
        messages.insert_message(conn, message)
    inserted = execute(conn, statement, params).one()._mapping
    return _row(inserted) if inserted["claimed_by"] is not None else None


def complete_many(conn: Connection, row_ids: list[int]) -> None:
    """Delete delivered rows, one statement for a whole batch."""
    if row_ids:
        execute(conn, _COMPLETE, {"ids_json": json.dumps(row_ids)})


def settle(
    conn: Connection, row_ids: list[int], writes: Iterable[Callable[[Connection], object]]
) -> None:
    """Delete delivered rows and run what their deliveries write with that. On PostgreSQL the
    statements go together, one round trip per statement whatever the number of rows
    (`compiled.batched`: see `byoc.outbox.outcome.Settle` for what that asks of a write)."""
    with batched(conn):
        complete_many(conn, row_ids)
        for write in writes:
            write(conn)


def reschedule(conn: Connection, row_id: int, *, delay_ms: int, error: str, now: int) -> None:
    conn.execute(
        update(t.outbox)
        .where(t.outbox.c.id == row_id)
        .values(
            attempts=t.outbox.c.attempts + 1,
            next_attempt_at=now + delay_ms,
            claimed_until=None,
            claimed_by=None,
            last_error=error[:2000],
            updated_at=now,
        )
    )


def bury(conn: Connection, row_id: int, *, error: str, now: int) -> None:
    """Dead-letter a row; it stays visible to `byoc outbox list` until re-driven."""
    conn.execute(
        update(t.outbox)
        .where(t.outbox.c.id == row_id)
        .values(
            state=DEAD,
            attempts=t.outbox.c.attempts + 1,
            claimed_until=None,
            claimed_by=None,
            last_error=error[:2000],
            updated_at=now,
        )
    )


def release_claims(conn: Connection, owner: str) -> None:
    """Hand back everything this instance claimed (graceful shutdown)."""
    conn.execute(
        update(t.outbox)
        .where(t.outbox.c.claimed_by == owner, t.outbox.c.state == PENDING)
        .values(claimed_until=None, claimed_by=None)
    )


def lock_lanes(conn: Connection, lanes: list[str]) -> None:
    """Lock every row of these lanes until the commit, in id order, waiting for a settle that
    holds one (a customer's erasure, before it locks their messages, as a settle does)."""
    if lanes:
        rows = select(t.outbox.c.id).where(t.outbox.c.lane.in_(lanes)).order_by(t.outbox.c.id)
        conn.execute(locked(rows))


def delete_lanes(conn: Connection, lanes: list[str]) -> int:
    """Delete every row of these lanes, pending or dead (a customer's erasure: nothing of
    theirs may be delivered afterwards); how many went. A row in flight is deleted too: its
    worker's settle or retry then finds nothing to change."""
    if not lanes:
        return 0
    return conn.execute(delete(t.outbox).where(t.outbox.c.lane.in_(lanes))).rowcount


def count_by_state(conn: Connection) -> list[tuple[str, int, int | None]]:
    """Per state: how many rows, and the oldest row's creation time."""
    o = t.outbox
    query = select(o.c.state, func.count(), func.min(o.c.created_at)).group_by(o.c.state)
    return [(str(state), int(count), oldest) for state, count, oldest in conn.execute(query)]


def count_dead(conn: Connection) -> int:
    query = select(func.count()).select_from(t.outbox).where(t.outbox.c.state == DEAD)
    return int(conn.execute(query).scalar_one())


def list_rows(
    conn: Connection, *, state: str | None, kind: str | None = None, limit: int = 100
) -> list[OutboxRow]:
    query = select(t.outbox).order_by(t.outbox.c.id).limit(limit)
    if state is not None:
        query = query.where(t.outbox.c.state == state)
    if kind is not None:
        query = query.where(t.outbox.c.kind == kind)
    return [_row(r._mapping) for r in conn.execute(query)]


def redrive(conn: Connection, row_ids: list[int] | None, *, kind: str | None = None) -> int:
    """Put dead rows (those named, or all; of `kind` only, if given) back in the queue, due
    now, with a fresh retry budget. (An operator's command: the machine's clock.)"""
    now = now_ms()
    query = update(t.outbox).where(t.outbox.c.state == DEAD)
    if row_ids is not None:
        query = query.where(t.outbox.c.id.in_(row_ids))
    if kind is not None:
        query = query.where(t.outbox.c.kind == kind)
    result = conn.execute(
        query.values(state=PENDING, attempts=0, next_attempt_at=now, updated_at=now)
    )
    return result.rowcount
