"""What an outbox handler returns: one `Outcome` for every kind of delivery.

Settled     delivered; `write` joins the transaction that deletes the row (a `Together` write
            joins those of the other rows settled with it into one call), `after_commit`
            runs once that transaction has committed
Retry       the other side is unavailable: try again after a backoff
DeadLetter  the other side refused the delivery: dead-letter the row now
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

A = TypeVar("A")

# What a handler wants written once its row is delivered: run in the transaction that deletes
# the row (synchronous: see `Database.run_write`), so a delivery costs no write of its own.
# The writes of the rows settled together run in `byoc.outbox.rows.settle` (batched): a write's
# prebuilt statements that return nothing may run after the rest of it, together with the
# other rows' executions of the same statement. So a write changes only rows of its own
# delivery (its message, its conversation) and does not read back what it wrote. What it
# returns is not used (a store function that says whether it changed a row may be one).
Settle = Callable[[Connection], object]
# Run once the transaction that deleted the row has committed; must not raise or block.
AfterCommit = Callable[[], None]


@dataclass(frozen=True)
class Together(Generic[A]):
    """A settle write that the rows settled in one transaction share: `run(conn, [arg, ...])`
    runs once for every row whose write is a `Together` with this same `run` (in the order the
    rows finished), instead of once per row. E.g. one UPDATE marks a whole pass's messages
    sent, where a `Settle` per row ran one statement each. A row settled alone (after its
    pass failed) gets `run(conn, [arg])`."""

    run: Callable[[Connection, list[A]], None]
    arg: A


Write = Settle | Together[Any] | None


def joined(writes: Iterable[Write]) -> list[Settle]:
    """Rows' settle writes as the calls to make, in order: the `Together` writes that share a
    `run` joined into one call, where the first of them was."""
    calls: list[Settle] = []
    args_of: dict[Callable[[Connection, list[Any]], None], list[Any]] = {}
    for write in writes:
        if isinstance(write, Together):
            args = args_of.get(write.run)
            if args is None:
                args = args_of[write.run] = []
                calls.append(partial(_run_together, write.run, args))
            args.append(write.arg)
        elif write is not None:
            calls.append(write)
    return calls


def _run_together(
    run: Callable[[Connection, list[Any]], None], args: list[Any], conn: Connection
) -> None:
    run(conn, args)


@dataclass(frozen=True)
class Settled:
    """What a handler wants done once its row is delivered: `write` in the transaction that
    deletes the row, then `after_commit` once that transaction has committed."""

    write: Write = None
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


@dataclass(frozen=True)
class RetryPolicy:
    """What a `Retry` costs, as the worker applies it: the backoff before the next attempt,
    and how many attempts a row gets before it is dead-lettered."""

    max_attempts: int = 12
    base_seconds: float = 0.5
    max_seconds: float = 60.0

    def delay_ms(self, attempts: int, retry_after: float | None, rng: random.Random) -> int:
        """Exponential backoff with jitter; a server's Retry-After is a floor, not a suggestion."""
        ceiling = min(self.max_seconds, self.base_seconds * (2**attempts))
        delay = ceiling * rng.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_seconds * 10))
        return int(delay * 1000)
