"""The bus's listening connection on PostgreSQL comes back whenever it is lost, also when it is
lost between the connect and the LISTEN. The connection goes through a TCP relay on loopback
that cuts a connection as its client sends its first query. The same holds for the connection
that sends the bus's notifications."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.engine import make_url

from byoc.bus import CHANNEL, PostgresBus
from tests.support.postgres import fresh_database

# ReadyForQuery: the type byte, the length (5) and the transaction status (idle).
READY_FOR_QUERY = b"Z\x00\x00\x00\x05I"


class CuttingRelay:
    """Relays TCP to PostgreSQL; the next `cuts` connections are closed, both ends, when the
    client sends anything after the server said it is ready for queries (ReadyForQuery, at
    the end of the start-up): a connection that opened and then was lost."""

    def __init__(self, host: str, port: int, cuts: int) -> None:
        self._target = (host, port)
        self.cuts = cuts
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        cut, self.cuts = self.cuts > 0, max(self.cuts - 1, 0)
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        ready = False

        async def client_to_server() -> None:
            while data := await reader.read(65536):
                if cut and ready:
                    return
                upstream_writer.write(data)
                await upstream_writer.drain()

        async def server_to_client() -> None:
            nonlocal ready
            while data := await upstream_reader.read(65536):
                ready = ready or READY_FOR_QUERY in data
                writer.write(data)
                await writer.drain()

        try:
            done, pending = await asyncio.wait(
                [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())],
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, *done, return_exceptions=True)
        finally:
            for w in (writer, upstream_writer):
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()


@contextlib.asynccontextmanager
async def relayed_bus(url: str, cuts: int) -> AsyncIterator[tuple[PostgresBus, CuttingRelay]]:
    parsed = make_url(url)
    relay = CuttingRelay(parsed.host or "127.0.0.1", parsed.port or 5432, cuts)
    port = await relay.start()
    dsn = parsed.set(drivername="postgresql", port=port).render_as_string(hide_password=False)
    bus = PostgresBus(dsn)
    try:
        yield bus, relay
    finally:
        await bus.stop()
        await relay.stop()


async def _notify(url: str, key: str) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        payload = json.dumps({"i": "test", "k": key, "n": {"kind": "ping"}})
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)
    finally:
        await conn.close(timeout=5)


def test_a_listener_lost_before_its_listen_connects_again() -> None:
    with fresh_database() as url:

        async def scenario() -> None:
            async with (
                relayed_bus(url, cuts=1) as (bus, relay),
                bus.subscribe("cus_1") as subscription,
            ):
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
    with fresh_database() as url:

        async def scenario() -> None:
            heard: list[str] = []
            dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
            watcher = await asyncpg.connect(dsn, timeout=10)
            await watcher.add_listener(
                CHANNEL, lambda *args: heard.append(json.loads(args[3])["k"])
            )
            try:
                async with relayed_bus(url, cuts=0) as (bus, relay):
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
