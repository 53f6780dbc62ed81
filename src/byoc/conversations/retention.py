"""The retention purge: conversations ended more than `BYOC_RETENTION_DAYS` ago lose their
messages and attachments.

Every instance runs the purge; the store is its only state. A pass deletes in bounded batches
(`BYOC_RETENTION_BATCH` messages and conversations a transaction, `byoc.store.privacy.
purge_ended`) with a pause between batches, so a backlog (retention switched on over years of
conversations) is worked off without holding the writer for long (and off the event loop's
thread: `Database.run_bulk_write`). Two instances purging at
once share the work (PostgreSQL skips the conversations the other has locked) or take turns
(SQLite has one writer). Open conversations are never purged, whatever their age; the
conversation row stays, without content, stamped `purged_at`.

The age, the interval between passes and the pause are measured on the injected clock, so a
test moves it rather than waits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from byoc.clock import Clock, Periodic
from byoc.store import Database, StoreError
from byoc.store.privacy import PurgeBatch, purge_ended

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
# Between two batches of one pass: room for every other writer.
PAUSE_SECONDS = 0.2

# Called with a kind ("message", "attachment", "conversation") and how many of it went.
OnPurged = Callable[[str, int], None]


@dataclass
class PurgeTotals:
    messages: int = 0
    attachments: int = 0
    conversations: int = 0
    batches: int = 0

    def add(self, batch: PurgeBatch) -> None:
        self.messages += batch.messages
        self.attachments += batch.attachments
        self.conversations += batch.conversations
        self.batches += 1


class RetentionPurger(Periodic):
    what = "retention purge"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        days: int,
        interval_seconds: float,
        batch_size: int,
        pause_seconds: float = PAUSE_SECONDS,
        on_purged: OnPurged | None = None,
    ) -> None:
        if days < 1 or batch_size < 1:
            raise ValueError("days and batch_size must be at least 1")
        super().__init__(clock, interval_seconds, expected=StoreError)
        self._db = db
        self._age_ms = days * DAY_MS
        self._batch_size = batch_size
        self._pause = pause_seconds
        self._on_purged = on_purged

    async def purge_batch(self) -> PurgeBatch:
        """One transaction: at most `batch_size` conversations and messages."""
        now = self._clock.now_ms()
        batch = await self._db.run_bulk_write(
            partial(purge_ended, ended_before=now - self._age_ms, limit=self._batch_size, now=now)
        )
        if self._on_purged is not None:
            for kind, count in (
                ("message", batch.messages),
                ("attachment", batch.attachments),
                ("conversation", batch.conversations),
            ):
                if count:
                    self._on_purged(kind, count)
        return batch

    async def purge_pass(self) -> PurgeTotals:
        """Batches until one finds nothing more (or `stop()`), pausing between them."""
        totals = PurgeTotals()
        while not self._stopped.is_set():
            batch = await self.purge_batch()
            totals.add(batch)
            if not batch.more:
                break
            await self._clock.wait(self._stopped, until=self._clock.monotonic() + self._pause)
        if totals.messages or totals.conversations:
            log.info(
                "retention: purged %d messages and %d attachments; %d conversations ended"
                " before the retention period now hold no content",
                totals.messages,
                totals.attachments,
                totals.conversations,
            )
        return totals

    async def chore(self) -> PurgeTotals:
        return await self.purge_pass()
