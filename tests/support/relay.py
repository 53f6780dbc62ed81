"""A TCP relay on loopback in front of PostgreSQL, on a thread of its own, that a test can cut:
the network faults between the middleware and its database, for real (the middleware connects
to the relay's port and speaks to a real server through it)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future
from types import TracebackType

from sqlalchemy.engine import make_url

# ReadyForQuery: the type byte, the length (5) and the transaction status (idle).
READY_FOR_QUERY = b"Z\x00\x00\x00\x05I"


class TcpRelay:
    """Relays connections to `url`'s server. `cuts`: the next so many connections are closed,
    both ends, when their client sends anything after the server said it is ready for queries
    (the end of the start-up): connections that opened and then were lost. `down()` closes the
    listening socket (a connect is refused) and every live connection; `up()` listens again
    on the same port."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._target = (parsed.host or "127.0.0.1", parsed.port or 5432)
        self._url = parsed
        self.cuts = 0
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> TcpRelay:
        self._thread.start()
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @property
    def url(self) -> str:
        """`url` with the relay's port in place of the server's."""
        return self._url.set(port=self.port).render_as_string(hide_password=False)

    def up(self) -> None:
        self._call(self._listen())

    def down(self) -> None:
        self._call(self._close())

    def _call(self, work: object) -> None:
        future: Future[None] = asyncio.run_coroutine_threadsafe(work, self._loop)  # type: ignore[arg-type]
        future.result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._relay, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._live):
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        cut, self.cuts = self.cuts > 0, max(self.cuts - 1, 0)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._live.update((writer, upstream_writer))
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

        tasks = [asyncio.create_task(client_to_server()), asyncio.create_task(server_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (writer, upstream_writer):
                self._live.discard(w)
                w.close()
                with contextlib.suppress(Exception):
                    await w.wait_closed()
