"""Rate limits shared by every connection of this process, on the `limits` library.

A limit is written as `limits` parses it (`"8/10 seconds"`, `"30/minute"`) and is counted in a
moving window per key, so bursts at a window's edge cannot double it. The counters live in this
process's memory (the synchronous storage: a call takes microseconds and never waits on I/O,
so it runs on the event loop; the asyncio storage would hop to a thread per key to expire
entries). With N instances behind a load balancer a client may get up to N times the
limit, unless the balancer keeps a client on one instance.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


def parse_limit(text: str) -> RateLimitItem:
    """`"30/minute"` as a limit; ValueError for anything `limits` does not read."""
    return parse(text)


class RateLimits:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, limit: RateLimitItem, *key: str) -> bool:
        """Count one event against `key`; False (and not counted) when the limit is spent."""
        return self._limiter.hit(limit, *key)

    def allows(self, limit: RateLimitItem, *key: str) -> bool:
        """Whether one more event would be within the limit, without counting it."""
        return self._limiter.test(limit, *key)

    def retry_after(self, limit: RateLimitItem, *key: str) -> int:
        """Whole seconds until the window admits another event (at least 1)."""
        stats = self._limiter.get_window_stats(limit, *key)
        return max(1, math.ceil(stats.reset_time - time.time()))
