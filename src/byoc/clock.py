"""Time, injected: every deadline, lease, backoff and poll interval is measured on a `Clock`.

Two readings, for two jobs:

- `now_ms()`: wall-clock milliseconds since the epoch, the only time unit the store keeps.
  Stored deadlines (idle warnings, countdowns, leases, retry times) are compared with it.
- `monotonic()`: seconds that never go backwards, for scheduling loops, so a wall-clock step
  (NTP, a leap) neither stalls a poll loop nor makes it spin.

Waiting is on the clock too: `sleep_until(deadline)` returns once `monotonic()` reaches the
deadline, and `wait(event, until=deadline)` once the event is set or the deadline is reached.
`Periodic` runs a background chore at every interval until stopped. `SystemClock` is the real
one. `ManualClock` stands still until `advance()` moves it, which
wakes every sleeper whose deadline it passed, so tests of idle timeouts, countdowns, polls,
leases and backoff move time forward instead of sleeping through it. Its sleepers may run on
any thread's event loop (tests run servers in threads of their own); `advance()` may be
called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Protocol

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock time in integer milliseconds since the epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (its origin means nothing)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once `monotonic()` has reached `deadline`."""
        ...

    async def wait(self, event: asyncio.Event, *, until: float) -> bool:
        """Wait for `event` until `monotonic()` reaches `until`; True when the event is set."""
        ...


class SystemClock:
    """The machine's clocks."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))

    async def wait(self, event: asyncio.Event, *, until: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=max(0.0, until - time.monotonic()))
        return event.is_set()


class ManualClock:
    """A clock that moves only when told to (`advance`), for tests.

    It starts at the machine's wall-clock time (so stored timestamps look like real ones) and
    at monotonic time 0.
    """

    def __init__(self, start_ms: int | None = None) -> None:
        self._lock = threading.Lock()
        self._now_ms = int(time.time() * 1000) if start_ms is None else start_ms
        self._monotonic_ms = 0
        self._sleepers: list[tuple[float, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def now_ms(self) -> int:
        with self._lock:
            return self._now_ms

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic_ms / 1000

    async def sleep_until(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (deadline, loop, future)
        with self._lock:
            if self._monotonic_ms / 1000 >= deadline:
                return
            self._sleepers.append(entry)
        try:
            await future
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._sleepers.remove(entry)

    async def wait(self, event: asyncio.Event, *, until: float) -> bool:
        if event.is_set():
            return True
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.sleep_until(until))
        try:
            await asyncio.wait((waiter, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, sleeper):
                task.cancel()
            for task in (waiter, sleeper):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return event.is_set()

    @property
    def sleepers(self) -> int:
        """How many coroutines are asleep on this clock now."""
        with self._lock:
            return len(self._sleepers)

    def advance(self, ms: int) -> None:
        """Move both readings forward by `ms` and wake every sleeper whose deadline passed."""
        if ms < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now_ms += ms
            self._monotonic_ms += ms
            now = self._monotonic_ms / 1000
            due = [entry for entry in self._sleepers if entry[0] <= now]
            self._sleepers = [entry for entry in self._sleepers if entry[0] > now]
        for _, loop, future in due:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                loop.call_soon_threadsafe(_wake, future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Periodic:
    """A background chore (`chore()`, in a subclass) that `run()` runs now and then an interval
    after each run began, until `stop()` (which also ends the wait at once). A run that fails is
    tried again at the next interval: with an `expected` error (the store briefly out of reach)
    logged as a warning, with any other one logged with its traceback. A failing chore never
    ends the loop: nobody would notice."""

    what = "background chore"  # how the log lines name it

    def __init__(self, clock: Clock, interval_seconds: float, *, expected: type[Exception]):
        self._clock = clock
        self._interval = interval_seconds
        self._expected = expected
        self._stopped = asyncio.Event()

    async def chore(self) -> object:
        raise NotImplementedError

    async def run(self) -> None:
        while not self._stopped.is_set():
            next_run = self._clock.monotonic() + self._interval
            try:
                await self.chore()
            except self._expected as exc:
                log.warning("%s failed, tried again at the next interval: %s", self.what, exc)
            except Exception:
                log.exception("%s failed unexpectedly, tried again next interval", self.what)
            await self._clock.wait(self._stopped, until=next_run)

    def stop(self) -> None:
        self._stopped.set()
