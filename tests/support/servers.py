"""Real HTTP servers on loopback for the test suite.

Every test that talks HTTP goes through a real socket: the app under test runs in uvicorn on
127.0.0.1 with an ephemeral port, in a thread with its own event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn

if TYPE_CHECKING:
    from byoc.settings import Settings


def answering(request: Callable[[], httpx.Response]) -> Callable[[], httpx.Response | None]:
    """`request` as a `wait_for` predicate: its response, or None while nothing listens."""

    def attempt() -> httpx.Response | None:
        try:
            return request()
        except httpx.TransportError:
            return None

    return attempt


# Ports `free_port` hands out: below Linux's ephemeral range (32768-60999), which outgoing
# connections and `bind(0)` draw from, so that a port found free is not taken as a connection's
# source port before the test binds it; one slice per pytest-xdist worker, so that two workers
# never hand out the same port.
FREE_PORTS = range(20000, 32000)


def _worker_ports() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    index = int(worker) % count if worker.isdigit() else 0
    size = len(FREE_PORTS) // count
    return FREE_PORTS[index * size : (index + 1) * size]


_PORTS = _worker_ports()
_next_port = itertools.count(random.randrange(len(_PORTS)))  # another run on this machine


def free_port() -> int:
    """A loopback port nothing listens on now, for a server the test starts on it later. The
    worker's slice is walked in turn, so a port comes back only after all the others."""
    for _ in range(len(_PORTS)):
        port = _PORTS[next(_next_port) % len(_PORTS)]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORTS}")


# How a server is configured, given the app and the port its socket is bound to.
Configure = Callable[[Any, int], uvicorn.Config]


def uvicorn_config(app: Any, port: int) -> uvicorn.Config:
    """uvicorn's own defaults, quiet, with the WebSocket implementation the widget uses."""
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        ws="websockets-sansio",
    )


class ThreadedServer:
    """uvicorn in a background thread; `url` is valid between start() and stop()."""

    def __init__(
        self, app: Any, port: int | None = None, configure: Configure = uvicorn_config
    ) -> None:
        self.app = app
        # The listening socket is bound here and handed to uvicorn: a port merely found free
        # and bound later can be taken meanwhile by an outgoing connection (same range).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port or 0))
        self.port = int(self._socket.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(configure(app, self.port))
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
def serve(
    app: Any, port: int | None = None, configure: Configure = uvicorn_config
) -> Iterator[ThreadedServer]:
    server = ThreadedServer(app, port, configure).start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def byoc_serve(settings: Settings) -> Iterator[ThreadedServer]:
    """The middleware of `settings` on loopback with uvicorn configured by `server_config`, as
    `byoc serve` runs it: header deadline, keep-alive timeout, connection bound, guarded HTTP
    protocol."""
    from byoc.app import create_app
    from byoc.cli.serve import server_config

    def configure(app: Any, port: int) -> uvicorn.Config:
        return server_config(app, settings, host="127.0.0.1", port=port, log_level="warning")

    with serve(create_app(settings), configure=configure) as server:
        yield server
