"""The bus's connections to PostgreSQL come back whenever they are lost: the listening one also
when it is lost between the connect and the LISTEN, the sending one mid-NOTIFY. Both go through
a TCP relay on loopback that cuts a connection as its client sends its first query."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.engine import make_url

from byoc.bus import CHANNEL, PostgresBus
from tests.support.postgres import fresh_database
from tests.support.relay import TcpRelay


@contextlib.asynccontextmanager
async def relayed_bus(relay: TcpRelay) -> AsyncIterator[PostgresBus]:
    bus = PostgresBus(make_url(relay.url).set(drivername="postgresql").render_as_string(False))
    try:
        yield bus
    finally:
        await bus.stop()


async def _notify(url: str, key: str) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        payload = json.dumps({"i": "test", "k": key, "n": {"kind": "ping"}})
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
    finally:
        await conn.close(timeout=5)


def test_a_listener_lost_before_its_listen_connects_again() -> None:
    with fresh_database() as url, TcpRelay(url) as relay:
        relay.cuts = 1

        async def scenario() -> None:
            async with relayed_bus(relay) as bus, bus.subscribe("cus_1") as subscription:
                await bus.start()
                await asyncio.wait_for(bus.connected.wait(), timeout=10)
                assert relay.connections >= 2  # the first was cut before its LISTEN
                await _notify(url, "cus_1")
                heard: list[dict[str, object]] = []
                while not heard or heard[-1] == {"kind": "messages"}:  # resyncs first
                    heard.append(await asyncio.wait_for(subscription.get(), timeout=10))
                assert heard[-1] == {"kind": "ping"}

        asyncio.run(scenario())


def test_a_notification_connection_lost_mid_send_connects_again() -> None:
    with fresh_database() as url, TcpRelay(url) as relay:

        async def scenario() -> None:
            heard: list[str] = []
            dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
            watcher = await asyncpg.connect(dsn, timeout=10)
            await watcher.add_listener(CHANNEL, lambda *a: heard.append(json.loads(a[3])["k"]))
            try:
                async with relayed_bus(relay) as bus:
                    await bus.start()
                    relay.cuts = 1  # the sender's first connection
                    bus.publish("cus_lost", {"kind": "ping"})
                    for _ in range(100):
                        if relay.connections >= 2 and relay.cuts == 0:
                            break
                        await asyncio.sleep(0.05)
                    await asyncio.sleep(1.0)  # the sender's pause after a failed NOTIFY
                    bus.publish("cus_after", {"kind": "ping"})
                    for _ in range(100):
                        if "cus_after" in heard:
                            break
                        await asyncio.sleep(0.05)
                    assert "cus_after" in heard
                    assert "cus_lost" not in heard  # lost with its connection
            finally:
                await watcher.close(timeout=5)

        asyncio.run(scenario())
