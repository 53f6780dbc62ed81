"""The injected clock: a ManualClock moves only when told to, and wakes exactly the sleepers
whose deadline it passed, whichever thread's event loop they sleep on."""

from __future__ import annotations

import asyncio
import threading

import pytest

from byoc.clock import ManualClock, Periodic, SystemClock
from byoc.store import StoreError
from tests.support.waiting import wait_for, wait_for_async


async def test_advance_wakes_the_sleepers_it_passed_and_no_other() -> None:
    clock = ManualClock(start_ms=1_000)
    woken: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep_until(clock.monotonic() + seconds)
        woken.append(name)

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("one", 1.0), ("five", 5.0))]
    while clock.sleepers < 2:
        await asyncio.sleep(0)
    clock.advance(999)
    await asyncio.sleep(0)
    assert woken == []
    assert clock.now_ms() == 1_999
    clock.advance(1)
    await tasks[0]
    assert woken == ["one"]
    assert clock.sleepers == 1
    clock.advance(4_000)
    await tasks[1]
    assert woken == ["one", "five"]
    assert (clock.monotonic(), clock.now_ms()) == (5.0, 6_000)


async def test_wait_returns_on_the_event_or_at_the_deadline() -> None:
    clock = ManualClock()
    event = asyncio.Event()
    waiting = asyncio.create_task(clock.wait(event, until=10.0))
    while clock.sleepers < 1:
        await asyncio.sleep(0)
    event.set()
    assert await waiting is True
    assert clock.sleepers == 0  # the sleeper went with the wait

    event.clear()
    timed_out = asyncio.create_task(clock.wait(event, until=10.0))
    while clock.sleepers < 1:
        await asyncio.sleep(0)
    clock.advance(10_000)
    assert await timed_out is False


def test_a_sleeper_on_another_threads_loop_is_woken() -> None:
    clock = ManualClock()
    done = threading.Event()

    def other_thread() -> None:
        asyncio.run(clock.sleep_until(60.0))
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    wait_for(lambda: clock.sleepers == 1, what="the other thread asleep")
    clock.advance(60_000)
    thread.join(timeout=10)
    assert done.is_set()


def test_the_clock_does_not_go_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        ManualClock().advance(-1)


async def test_the_system_clock_waits_in_real_time() -> None:
    clock = SystemClock()
    event = asyncio.Event()
    assert await clock.wait(event, until=clock.monotonic()) is False
    event.set()
    assert await clock.wait(event, until=clock.monotonic() + 60) is True


class Chore(Periodic):
    """A chore every 5 s of `clock` that fails with `failure` on its first run; `runs` holds
    the clock's time at each run."""

    what = "the chore"

    def __init__(self, clock: ManualClock, failure: Exception) -> None:
        super().__init__(clock, 5.0, expected=StoreError)
        self.manual = clock
        self.failure = failure
        self.started = clock.monotonic()
        self.runs: list[float] = []

    async def chore(self) -> None:
        self.runs.append(self.manual.monotonic() - self.started)
        if len(self.runs) == 1:
            raise self.failure

    async def asleep_after(self, count: int) -> None:
        """Wait until the chore ran `count` times and waits for the next interval."""

        async def asleep() -> bool:
            return len(self.runs) == count and self.manual.sleepers == 1

        await wait_for_async(asleep, what=f"run {count}")


async def test_a_periodic_chore_runs_each_interval_retries_a_failure_and_stops() -> None:
    clock = ManualClock()
    chore = Chore(clock, StoreError("the database is out of reach"))
    task = asyncio.create_task(chore.run())
    await chore.asleep_after(1)  # failed, logged
    clock.advance(4_999)
    await asyncio.sleep(0.05)
    assert chore.runs == [0.0]
    clock.advance(1)
    await chore.asleep_after(2)
    chore.stop()  # ends the wait at once
    await asyncio.wait_for(task, 10)
    assert chore.runs == [0.0, 5.0]


async def test_a_periodic_chore_logs_an_unexpected_error_and_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error nobody expected (a bug, a connection refused below the store) is logged with
    its traceback and the chore runs again next interval: the loop never dies unnoticed."""
    clock = ManualClock()
    chore = Chore(clock, ConnectionRefusedError("nobody listens"))
    task = asyncio.create_task(chore.run())
    await chore.asleep_after(1)
    clock.advance(5_000)
    await chore.asleep_after(2)
    chore.stop()
    await asyncio.wait_for(task, 10)
    failed = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert len(failed) == 1
    assert failed[0].exc_info is not None
