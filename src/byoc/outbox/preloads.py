"""Preloads: the reads a kind's deliveries need, run in the transaction that claims their rows.

A kind may register a `Preload` with the `OutboxWorker`. Whenever rows of that kind are claimed
(fresh, by the transaction that stored them; due, by a pass), the preload reads for all of them
at once, in that transaction, and each row goes to its delivery with the result as its
`context`: the deliveries read nothing of their own. A preload never raises for a row it cannot
serve; it gives None for it, and that row's handler reads, and fails, for itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from sqlalchemy import Connection

from byoc.store.records import OutboxRow

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
        contexts = preloads[kind](conn, [claimed[i] for i in indexes])
        for index, context in zip(indexes, contexts, strict=True):
            claimed[index] = replace(claimed[index], context=context)
    return claimed
