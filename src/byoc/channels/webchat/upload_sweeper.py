"""Deletes widget uploads that no message carried once their grace period is over.

An upload becomes referenced when a customer message carries it (the mark is written before
the message is sent); one never carried is a file nobody asked CXone to see, and would
otherwise be kept for ever. The store is the only state: each pass deletes the oldest such
uploads in bounded batches, so a restart, or several instances sweeping at once, loses and
repeats nothing. Time comes from the injected clock, so a test moves it rather than waits.
"""

from __future__ import annotations

import logging
from functools import partial

from byoc.clock import Clock, Periodic
from byoc.store import Database, StoreError
from byoc.store.attachments import delete_unreferenced

log = logging.getLogger(__name__)

# Batches in one pass: a backlog is worked off over several passes, not in one long burst of
# writes that would hold up customer messages.
MAX_BATCHES_PER_PASS = 10


class UploadSweeper(Periodic):
    what = "upload sweep"

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        grace_seconds: int,
        interval_seconds: float,
        batch_size: int,
    ) -> None:
        super().__init__(clock, interval_seconds, expected=StoreError)
        self._db = db
        self._grace_ms = grace_seconds * 1000
        self._batch_size = batch_size

    async def sweep_once(self) -> int:
        """One pass; how many uploads it deleted."""
        deleted = 0
        for _ in range(MAX_BATCHES_PER_PASS):
            batch = await self._db.run_bulk_write(
                partial(
                    delete_unreferenced,
                    created_before=self._clock.now_ms() - self._grace_ms,
                    limit=self._batch_size,
                )
            )
            deleted += batch
            if batch < self._batch_size:
                break
        if deleted:
            log.info("deleted %d uploads no message carried", deleted)
        return deleted

    async def chore(self) -> int:
        return await self.sweep_once()
