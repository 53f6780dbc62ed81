"""Intake paced by delivery: a message's intake waits while the outbox's deliveries lag.

A process can take messages in faster than its outbox delivers them. Under such a flood the
backlog feeds itself: a row claimed at its insert goes out with what its intake held, while a
row that queued must be claimed by a pass and read again, so every row that queues makes the
next delivery dearer, and the backlog grows even at rates the process could sustain (measured
in bench/README.md, "Intake paced by delivery"). The pacer keeps the outbox bounded instead:
while the deliveries lag, a message's intake waits (`wait`) before its transaction, so the
intake slows down to the rate the outbox delivers.

Lag, as the worker sees it: each pass that has room for `room` more deliveries reports the
rows it claimed (`claimed`), and the pacer counts those that had been due for longer than
`max_lag_seconds`. A lane catching up after an outage of its platform gives a pass one late
row, the head of that lane; a backlog across the process gives many. So the outbox counts as
behind when one pass claimed at least `late_rows` late rows (or as many as it had room for),
and as caught up again at the first pass that claimed fewer. A pass without room for any
delivery claims nothing and tells nothing.

`wait` returns at once while caught up. Otherwise it returns once caught up, or after
`wait_seconds` at most: an intake is slowed, never refused, and nothing is lost. A pacer
with `max_lag_seconds` 0 never waits.

The observer is told "caught_up" or "waited_out" once for every intake that had to wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from byoc.store.records import OutboxRow


class IntakePacer:
    def __init__(
        self,
        *,
        max_lag_seconds: float,
        wait_seconds: float,
        late_rows: int,
        observer: Callable[[str], None] | None = None,
    ) -> None:
        if max_lag_seconds < 0 or wait_seconds < 0 or late_rows < 1:
            raise ValueError("lag and wait must be at least 0, late_rows at least 1")
        self._max_lag_ms = int(max_lag_seconds * 1000)
        self._wait_seconds = wait_seconds
        self._late_rows = late_rows
        self._enabled = max_lag_seconds > 0 and wait_seconds > 0
        self._observer = observer
        self._caught_up = asyncio.Event()
        self._caught_up.set()

    @classmethod
    def off(cls) -> IntakePacer:
        """A pacer that never waits."""
        return cls(max_lag_seconds=0, wait_seconds=0, late_rows=1)

    @property
    def behind(self) -> bool:
        return not self._caught_up.is_set()

    def claimed(self, rows: Sequence[OutboxRow], room: int, now_ms: int) -> None:
        """A pass with room for `room` deliveries (at least 1) claimed `rows` (perhaps none)."""
        if not self._enabled:
            return
        late = sum(1 for row in rows if now_ms - row.next_attempt_at > self._max_lag_ms)
        if late >= min(self._late_rows, room):
            self._caught_up.clear()
        else:
            self._caught_up.set()

    async def wait(self) -> None:
        """Before an intake's transaction: wait while the deliveries lag (see the module
        docstring), at most `wait_seconds`."""
        if self._caught_up.is_set():
            return
        try:
            async with asyncio.timeout(self._wait_seconds):
                await self._caught_up.wait()
        except TimeoutError:
            self._observe("waited_out")
        else:
            self._observe("caught_up")

    def _observe(self, result: str) -> None:
        if self._observer is not None:
            self._observer(result)
