"""Outbox rows: enqueue, claim, settle, list and re-drive."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from byoc.store import schema as t
from byoc.store.db import now_ms
from byoc.store.records import OutboxRow, dumps

PENDING = "pending"
DEAD = "dead"


async def enqueue(
    conn: AsyncConnection, *, lane: str, kind: str, payload: dict[str, Any], delay_ms: int = 0
) -> int:
    now = now_ms()
    result = await conn.execute(
        insert(t.outbox)
        .values(
            lane=lane,
            kind=kind,
            payload=dumps(payload),
            state=PENDING,
            attempts=0,
            next_attempt_at=now + delay_ms,
            created_at=now,
            updated_at=now,
        )
        .returning(t.outbox.c.id)
    )
    return int(result.scalar_one())


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


async def claim_due(
    conn: AsyncConnection, *, owner: str, limit: int, lease_ms: int, skip_locked: bool
) -> list[OutboxRow]:
    """Claim up to `limit` due rows, at most one per lane: the lane's oldest pending row."""
    now = now_ms()
    o = t.outbox
    earlier = t.outbox.alias("earlier")
    query = (
        select(o)
        .where(
            o.c.state == PENDING,
            o.c.next_attempt_at <= now,
            (o.c.claimed_until.is_(None)) | (o.c.claimed_until < now),
            ~exists().where(
                and_(earlier.c.lane == o.c.lane, earlier.c.state == PENDING, earlier.c.id < o.c.id)
            ),
        )
        .order_by(o.c.id)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True, of=o)
    rows = [_row(r._mapping) for r in await conn.execute(query)]
    if rows:
        await conn.execute(
            update(o)
            .where(o.c.id.in_([r.id for r in rows]))
            .values(claimed_until=now + lease_ms, claimed_by=owner)
        )
    return rows


async def complete(conn: AsyncConnection, row_id: int) -> None:
    await conn.execute(delete(t.outbox).where(t.outbox.c.id == row_id))


async def reschedule(conn: AsyncConnection, row_id: int, *, delay_ms: int, error: str) -> None:
    now = now_ms()
    await conn.execute(
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


async def bury(conn: AsyncConnection, row_id: int, *, error: str) -> None:
    """Dead-letter a row; it stays visible to `byoc outbox list` until re-driven."""
    await conn.execute(
        update(t.outbox)
        .where(t.outbox.c.id == row_id)
        .values(
            state=DEAD,
            attempts=t.outbox.c.attempts + 1,
            claimed_until=None,
            claimed_by=None,
            last_error=error[:2000],
            updated_at=now_ms(),
        )
    )


async def release_claims(conn: AsyncConnection, owner: str) -> None:
    """Hand back everything this instance claimed (graceful shutdown)."""
    await conn.execute(
        update(t.outbox)
        .where(t.outbox.c.claimed_by == owner, t.outbox.c.state == PENDING)
        .values(claimed_until=None, claimed_by=None)
    )


async def list_rows(
    conn: AsyncConnection, *, state: str | None, limit: int = 100
) -> list[OutboxRow]:
    query = select(t.outbox).order_by(t.outbox.c.id).limit(limit)
    if state is not None:
        query = query.where(t.outbox.c.state == state)
    return [_row(r._mapping) for r in await conn.execute(query)]


async def redrive(conn: AsyncConnection, row_ids: list[int] | None) -> int:
    """Put dead rows back in the queue, due now, with a fresh retry budget."""
    now = now_ms()
    query = update(t.outbox).where(t.outbox.c.state == DEAD)
    if row_ids is not None:
        query = query.where(t.outbox.c.id.in_(row_ids))
    result = await conn.execute(
        query.values(state=PENDING, attempts=0, next_attempt_at=now, updated_at=now)
    )
    return result.rowcount
