"""Wakes whoever holds a customer's socket. Notifications carry ids and hints, never the truth:
a subscriber that misses one (queue overflow, another instance) re-reads the store, so a lost
notification costs latency, not data."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from byoc.store import dialect

log = logging.getLogger(__name__)

Notification = dict[str, Any]

RESYNC: Notification = {"kind": "messages"}

# The PostgreSQL channel every instance's bus listens on.
CHANNEL = "byoc_bus"
# The key under which a change of the box clients is announced (`byoc.store.clients`).
CLIENTS_CHANGED = "byoc:clients"
# NOTIFY payloads are capped at 8000 bytes.
MAX_PAYLOAD = 7900


def notify_payload(key: str, notification: Notification, sender: str = "") -> str:
    """A notification for `key` as the bus sends it to the other instances. A sender that is
    no bus (a transaction of the store) leaves `sender` empty: every bus hears it."""
    payload = json.dumps({"i": sender, "k": key, "n": notification}, separators=(",", ":"))
    if len(payload) > MAX_PAYLOAD:
        payload = json.dumps({"i": sender, "k": key, "n": RESYNC})
    return payload


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


class PostgresBus(LocalBus):
    """Fan-out across instances with PostgreSQL `LISTEN/NOTIFY`.

    Local subscribers are woken directly; other instances hear it through the channel. If the
    listening connection drops, every local subscriber is told to re-read the store once the
    connection is back, so whatever was said meanwhile is not missed.
    """

    CHANNEL = CHANNEL

    def __init__(self, dsn: str, queue_size: int = 256) -> None:
        super().__init__(queue_size)
        self._dsn = dsn
        self._instance = secrets.token_hex(6)
        self._outgoing: asyncio.Queue[str] = asyncio.Queue(maxsize=10_000)
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="bus-listen"),
            asyncio.create_task(self._send(), name="bus-send"),
        ]
        try:
            await asyncio.wait_for(self.connected.wait(), timeout=10)
        except TimeoutError:
            log.warning("bus: PostgreSQL listener not connected yet; continuing")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def publish(self, key: str, notification: Notification) -> None:
        super().publish(key, notification)
        payload = notify_payload(key, notification, self._instance)
        try:
            self._outgoing.put_nowait(payload)
        except asyncio.QueueFull:
            log.warning(
                "bus: outgoing queue full; other instances will catch up on their next sync"
            )

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            return
        if message.get("i") == self._instance:
            return
        LocalBus.publish(self, str(message["k"]), dict(message["n"]))

    def _resync_everyone(self) -> None:
        for key in list(self._subscribers):
            LocalBus.publish(self, key, RESYNC)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            lost = asyncio.Event()
            conn = await self._listening(lost)
            if conn is None:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
                continue
            delay = 0.5
            try:
                self.connected.set()
                self._resync_everyone()
                await lost.wait()
                log.warning("bus: listener connection lost; reconnecting")
            finally:
                self.connected.clear()
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)

    async def _listening(self, lost: asyncio.Event) -> asyncpg.Connection | None:
        """A connection that LISTENs on the channel, setting `lost` when it goes; None when
        either step failed (a connection lost between the two included)."""
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(self._dsn, timeout=10)
            conn.add_termination_listener(lambda _c: lost.set())
            await conn.add_listener(self.CHANNEL, self._on_notify)
            return conn
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("bus: cannot listen (%s); retrying", exc)
            if conn is not None:
                conn.terminate()
            return None

    async def _send(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while True:
                payload = await self._outgoing.get()
                try:
                    if conn is None or conn.is_closed():
                        conn = await asyncpg.connect(self._dsn, timeout=10)
                    await conn.execute(dialect.NOTIFY_ON_DRIVER, self.CHANNEL, payload)
                except (OSError, asyncpg.PostgresError) as exc:
                    # Lost notifications cost latency only: subscribers re-read on resync.
                    log.warning("bus: NOTIFY failed (%s)", exc)
                    conn = None
                    await asyncio.sleep(0.5)
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)
