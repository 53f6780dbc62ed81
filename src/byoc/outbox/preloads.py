"""Preloads: the reads a kind's deliveries need, run in the transaction that claims their rows.

A kind may register a `Preload` with the `OutboxWorker`. Whenever rows of that kind are claimed
(fresh, by the transaction that stored them; due, by a pass), the preload reads for all of them
at once, in that transaction, and each row goes to its delivery with the result as its
`context`: the deliveries read nothing of their own. A fresh row may come with what its intake
held already (`OutboxWorker.take_fresh`), which the preload takes instead of reading.

A preload never raises for a row it cannot serve; it gives None for it, and that row's handler
reads, and fails, for itself. Should a preload raise all the same, its rows get None and the
error is logged: one malformed row must not stop every pass that claims it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from sqlalchemy import Connection

from byoc.store.records import OutboxRow

log = logging.getLogger(__name__)

# Each row's context, in the order of the rows given.
Preload = Callable[[Connection, Sequence[OutboxRow]], Sequence[object]]


def with_contexts(
    conn: Connection, claimed: list[OutboxRow], preloads: Mapping[str, Preload]
) -> list[OutboxRow]:
    """The rows, each with what its kind's preload read for it: one call per kind present."""
    by_kind: dict[str, list[int]] = {}
    for index, row in enumerate(claimed):
        if row.kind in preloads:
            by_kind.setdefault(row.kind, []).append(index)
    for kind, indexes in by_kind.items():
        try:
            contexts: Sequence[object] = preloads[kind](conn, [claimed[i] for i in indexes])
        except Exception:
            # A bug, or a row no check foresaw: the claim stands and these rows' handlers read
            # for themselves (and fail, and are retried or buried) rather than every pass
            # failing on them. (A failed statement would abort a PostgreSQL transaction, and
            # the pass with it: a preload sends the database only what it has checked.)
            log.exception("outbox: the preload of %d %s rows failed", len(indexes), kind)
            contexts = [None] * len(indexes)
        for index, context in zip(indexes, contexts, strict=True):
            claimed[index] = replace(claimed[index], context=context)
    return claimed
