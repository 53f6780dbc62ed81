"""Waiting in tests: `wait_for` a condition (`wait_for_async` on an event loop), `advance` a
`ManualClock` and wait for what it woke, and `run_async` a coroutine from sync code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

from byoc.clock import ManualClock

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | Literal[False] | None],
    *,
    timeout: float = 10.0,
    what: str = "condition",
    pause: Callable[[float], None] = time.sleep,
) -> T:
    """Poll `predicate` until it returns something true, and return that; fail after `timeout`
    seconds naming `what`. `pause` sleeps between polls (a browser test passes one that
    keeps Playwright's event handlers running: `widget_page.in_page`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        pause(0.02)


async def wait_for_async(
    predicate: Callable[[], Awaitable[T | Literal[False] | None]],
    *,
    timeout: float = 10.0,
    what: str = "condition",
) -> T:
    """`wait_for` on the running event loop: await `predicate` until it returns something
    true, sleeping on the loop between polls so that the tasks it waits for run."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even where an event loop is running
    (Playwright's sync API keeps one on the test's thread)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def advance(clock: ManualClock, ms: int, *, timeout: float = 10.0) -> None:
    """Move `clock` forward by `ms`, then wait until every loop it woke is asleep on it again:
    whatever the new time made due has been found (not necessarily delivered yet)."""
    asleep = clock.sleepers
    clock.advance(ms)
    wait_for(lambda: clock.sleepers >= asleep, timeout=timeout, what="the woken loops to sleep")
