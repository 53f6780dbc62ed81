"""A readiness verdict that is cached, so that probes do not hammer what they check."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from byoc.cxone import CxoneError
from byoc.store import StoreError

log = logging.getLogger(__name__)


class CachedVerdict:
    """Runs an expensive check at most once per `ttl_seconds`; concurrent probes share it.

    Kubernetes probes every few seconds from every kubelet; CXone must not see each of them.
    """

    def __init__(self, ttl_seconds: float = 10.0, timeout_seconds: float = 3.0) -> None:
        self.ttl_seconds = ttl_seconds
        self.timeout_seconds = timeout_seconds
        self._verdict: str | None = None
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()

    async def get(self, check: Callable[[], Awaitable[None]]) -> str:
        if time.monotonic() - self._checked_at < self.ttl_seconds and self._verdict is not None:
            return self._verdict
        async with self._lock:
            if time.monotonic() - self._checked_at < self.ttl_seconds and self._verdict:
                return self._verdict
            try:
                await asyncio.wait_for(check(), timeout=self.timeout_seconds)
                verdict = "ok"
            except TimeoutError:
                verdict = f"unavailable: no answer within {self.timeout_seconds:g} s"
            except (CxoneError, StoreError, LookupError) as exc:
                # The verdict is public (`/readyz`): URLs and causes go to the log only.
                log.warning("readiness check failed: %s", exc)
                verdict = f"unavailable: {type(exc).__name__}"
            self._verdict, self._checked_at = verdict, time.monotonic()
            return verdict
