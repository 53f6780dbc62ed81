"""Outbox rows as the store returns them, the payloads queued of a kind, and a worker that
records what it delivers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, select

from byoc.outbox.outcome import RetryPolicy, Settled
from byoc.outbox.preloads import Preload
from byoc.outbox.worker import OutboxWorker
from byoc.store import Database
from byoc.store import schema as t
from byoc.store.records import OutboxRow


async def queued_payloads(db: Database, kind: str) -> list[dict[str, Any]]:
    """The payloads of every outbox row of `kind`, oldest first."""

    def read(conn: Connection) -> list[dict[str, Any]]:
        query = select(t.outbox.c.payload).where(t.outbox.c.kind == kind).order_by(t.outbox.c.id)
        return [json.loads(payload) for payload in conn.scalars(query)]

    return await db.run_read(read)


def row_of(kind: str, lane: str, payload: dict[str, Any], *, row_id: int = 1) -> OutboxRow:
    """A pending row of `kind` in `lane`, never attempted."""
    return OutboxRow(
        id=row_id,
        lane=lane,
        kind=kind,
        payload=payload,
        state="pending",
        attempts=0,
        next_attempt_at=0,
        last_error=None,
        created_at=0,
    )


class Recorder:
    """An outbox worker ("w1") whose handlers for `kinds` record each row they are given, in
    order, and settle it: for tests of what is delivered, and when, rather than how."""

    def __init__(
        self,
        db: Database,
        kinds: Iterable[str],
        *,
        preloads: Mapping[str, Preload] | None = None,
    ) -> None:
        self.rows: list[OutboxRow] = []
        handlers = dict.fromkeys(kinds, self._deliver)
        self.worker = OutboxWorker(
            db, handlers, owner="w1", policy=RetryPolicy(), preloads=preloads
        )

    async def _deliver(self, row: OutboxRow) -> Settled:
        self.rows.append(row)
        return Settled()

    @property
    def kinds(self) -> list[str]:
        return [row.kind for row in self.rows]
