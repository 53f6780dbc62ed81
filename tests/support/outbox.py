"""Outbox rows as the store returns them, for tests of what consumes them."""

from __future__ import annotations

from typing import Any

from byoc.store.records import OutboxRow


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
