"""What an outbox handler returns: one `Outcome` for every kind of delivery.

Settled     delivered; `write` joins the transaction that deletes the row, `after_commit`
            runs once that transaction has committed
Retry       the other side is unavailable: try again after a backoff
DeadLetter  the other side refused the delivery: dead-letter the row now
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection

# What a handler wants written once its row is delivered: run in the transaction that deletes
# the row (synchronous: see `Database.run_write`), so a delivery costs no write of its own.
Settle = Callable[[Connection], None]
# Run once the transaction that deleted the row has committed; must not raise or block.
AfterCommit = Callable[[], None]


@dataclass(frozen=True)
class Settled:
    """What a handler wants done once its row is delivered: `write` in the transaction that
    deletes the row, then `after_commit` once that transaction has committed."""

    write: Settle | None = None
    after_commit: AfterCommit | None = None


@dataclass(frozen=True)
class Retry:
    """The other side is unavailable: try again after a backoff (at least `retry_after`)."""

    reason: str
    retry_after: float | None = None


@dataclass(frozen=True)
class DeadLetter:
    """The other side refused the delivery: dead-letter the row now."""

    reason: str


Outcome = Settled | Retry | DeadLetter
