"""Wakes whoever holds a customer's socket. Notifications carry ids and hints, never the truth:
a subscriber that misses one (queue overflow, another instance) re-reads the store, so a lost
notification costs latency, not data."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

Notification = dict[str, Any]

RESYNC: Notification = {"kind": "messages"}


class Subscription:
    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Notification] = asyncio.Queue(maxsize=maxsize)
        self._overflowed = False

    def offer(self, notification: Notification) -> None:
        try:
            self._queue.put_nowait(notification)
        except asyncio.QueueFull:
            self._overflowed = True

    async def get(self) -> Notification:
        if self._overflowed and self._queue.empty():
            self._overflowed = False
            return RESYNC
        return await self._queue.get()


class LocalBus:
    """In-process fan-out keyed by customer id (one process: the embedded default)."""

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    @asynccontextmanager
    async def subscribe(self, key: str) -> AsyncIterator[Subscription]:
        subscription = Subscription(self._queue_size)
        self._subscribers[key].add(subscription)
        try:
            yield subscription
        finally:
            subscribers = self._subscribers.get(key)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[key]

    def publish(self, key: str, notification: Notification) -> None:
        for subscription in tuple(self._subscribers.get(key, ())):
            subscription.offer(notification)

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())
