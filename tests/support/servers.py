"""Real HTTP servers on loopback for the test suite.

Every test that talks HTTP goes through a real socket: the app under test runs in uvicorn on
127.0.0.1 with an ephemeral port, in a thread with its own event loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn


def answering(request: Callable[[], httpx.Response]) -> Callable[[], httpx.Response | None]:
    """`request` as a `wait_for` predicate: its response, or None while nothing listens."""

    def attempt() -> httpx.Response | None:
        try:
            return request()
        except httpx.TransportError:
            return None

    return attempt


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadedServer:
    """uvicorn in a background thread; `url` is valid between start() and stop()."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        # The listening socket is bound here and handed to uvicorn: a port merely found free
        # and bound later can be taken meanwhile by an outgoing connection (same range).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port or 0))
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()


@contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[ThreadedServer]:
    server = ThreadedServer(app, port).start()
    try:
        yield server
    finally:
        server.stop()
