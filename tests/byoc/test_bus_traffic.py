"""What goes on the bus. On PostgreSQL every notification is a NOTIFY that every instance
receives and decodes, so nothing goes there that no one shows: a webhook channel's platform
shows nothing live, and its customers' messages put nothing on the bus; the widget's channel
still publishes each message's status."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from byoc.bus import CHANNEL
from tests.support.emulator import Emulator
from tests.support.stack import running_stack
from tests.support.waiting import wait_for

# After the outbox is empty: far longer than a NOTIFY takes, the bus's first connection included.
QUIET_SECONDS = 2.0


class Notifications:
    """Every notification on the bus's channel of one database, heard on a connection and a
    thread of its own."""

    def __init__(self, database_url: str) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(False)
        self.heard: list[dict[str, Any]] = []
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen()), daemon=True)

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        try:
            await conn.add_listener(CHANNEL, lambda *args: self.heard.append(json.loads(args[3])))
            self._listening.set()
            while not self._stopping.is_set():
                await asyncio.sleep(0.02)
        finally:
            await conn.close(timeout=5)

    def send(self, key: str) -> None:
        """A notification of the test's own, heard like any other."""

        async def notify() -> None:
            conn = await asyncpg.connect(self._dsn, timeout=10)
            try:
                payload = json.dumps({"k": key, "n": {}, "i": "test"})
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
            finally:
                await conn.close(timeout=5)

        asyncio.run(notify())

    def __enter__(self) -> Notifications:
        self._thread.start()
        assert self._listening.wait(10), "not listening"
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._thread.join(10)


@pytest.mark.postgres
@pytest.mark.parametrize("adapter", ["webchat", "webhook"])
def test_a_customers_message_status_goes_on_the_bus_only_for_the_widget(
    tmp_path: Path, emulator: Emulator, postgres_url: str, adapter: str
) -> None:
    """A customer message reaches CXone and is settled as sent. On the widget's channel its
    status is heard on the bus (the listener hears the app); on a webhook channel nothing is
    heard for that customer, however long one waits (the test's own notification, sent after
    a wait, is heard: the listener still works)."""
    with (
        running_stack(tmp_path, emulator, database_url=postgres_url, adapter=adapter) as stack,
        Notifications(postgres_url) as bus,
    ):
        customer_id = stack.customer_says("hello", customer=f"{adapter}-user")["customerId"]
        wait_for(lambda: stack.outbox() == [], what="the create settled")

        def statuses() -> list[dict[str, Any]]:
            return [n["n"] for n in bus.heard if n["k"] == customer_id]

        if adapter == "webchat":
            wait_for(lambda: statuses(), what="the status on the bus")
            assert [n["status"] for n in statuses()] == ["sent"]
            return
        time.sleep(QUIET_SECONDS)
        bus.send("sentinel")
        wait_for(lambda: any(n["k"] == "sentinel" for n in bus.heard), what="the sentinel")
        assert statuses() == []
        assert bus.heard == [{"k": "sentinel", "n": {}, "i": "test"}]
