"""The HTTP protocol `byoc serve` runs: a response's head leaves with its body.

The server is uvicorn configured by `server_config`, as `byoc serve` runs it, on a real socket on
loopback, serving the middleware or a small ASGI app; the only addition is a record of what the
protocol hands its connection's transport (each write, forwarded unchanged) and of how much was
written when uvicorn counted each response complete.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from byoc.app import create_app
from byoc.cli.serve import server_config
from byoc.settings import Settings
from tests.support.servers import ThreadedServer, serve


@dataclass
class _Record:
    writes: list[bytes] = field(default_factory=list)
    # len(writes) each time a response was complete
    at_completion: list[int] = field(default_factory=list)


class _RecordedTransport:
    """A connection's transport that keeps a copy of each write and forwards everything."""

    def __init__(self, transport: asyncio.Transport, record: _Record) -> None:
        self._transport = transport
        self._record = record

    def write(self, data: bytes) -> None:
        self._record.writes.append(bytes(data))
        self._transport.write(data)

    def writelines(self, parts: Iterable[bytes]) -> None:
        parts = list(parts)
        self._record.writes.append(b"".join(parts))
        self._transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@contextmanager
def _recorded_server(app: Any, settings: Settings) -> Iterator[tuple[ThreadedServer, _Record]]:
    record = _Record()

    def configure(app: Any, port: int) -> uvicorn.Config:
        config = server_config(app, settings, host="127.0.0.1", port=port, log_level="warning")
        protocol = config.http
        assert isinstance(protocol, type)

        class Recorded(protocol):  # type: ignore[misc,valid-type]
            def connection_made(self, transport: asyncio.Transport) -> None:
                super().connection_made(_RecordedTransport(transport, record))

            def on_response_complete(self) -> None:
                record.at_completion.append(len(record.writes))
                super().on_response_complete()

        config.http = Recorded
        return config

    with serve(app, configure=configure) as server:
        yield server, record


def _settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'byoc.db'}")


class _App:
    """`/stream` sends its head, then its body once `body_may_go` is set; `/echo` answers
    the request's body; anything else answers `hello` (the body dropped on HEAD)."""

    def __init__(self) -> None:
        self.body_may_go = threading.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            while not self.body_may_go.is_set():
                await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": b"later"})
            return
        body = b"hello"
        if scope["path"] == "/echo":
            body = b""
            more = True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def test_the_middlewares_responses_leave_in_one_write_each(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    recorded = _recorded_server(create_app(settings), settings)
    with recorded as (server, record), httpx.Client(base_url=server.url) as client:
        answers = [client.get("/healthz") for _ in range(3)]
        missing = client.get("/no-such-page")

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert missing.status_code == 404
    # One keep-alive connection, four responses: four writes, each a head with its body.
    assert len(record.writes) == 4, record.writes
    for write, answer in zip(record.writes, [*answers, missing], strict=True):
        head, _, body = write.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % answer.status_code)
        assert body == answer.content


def test_a_streamed_responses_head_is_not_held_for_its_body(tmp_path: Path) -> None:
    app = _App()
    recorded = _recorded_server(app, _settings(tmp_path))
    with recorded as (server, record), httpx.Client(base_url=server.url, timeout=5) as client:
        answer = client.send(client.build_request("GET", "/stream"), stream=True)
        # The head arrived while the body does not exist yet.
        assert answer.status_code == 200
        assert answer.headers["transfer-encoding"] == "chunked"
        app.body_may_go.set()
        assert answer.read() == b"later"
        answer.close()

    assert record.writes[0].startswith(b"HTTP/1.1 200 ")
    assert record.writes[0].endswith(b"\r\n\r\n")
    assert b"".join(record.writes[1:]) == b"5\r\nlater\r\n0\r\n\r\n"


def test_a_head_responses_head_is_sent_by_the_time_it_is_complete(tmp_path: Path) -> None:
    # A HEAD response has no body write to carry its head. Once uvicorn counts the response
    # complete, the connection may be closed (to make room, or to shut down): nothing may be
    # held by then.
    recorded = _recorded_server(_App(), _settings(tmp_path))
    with recorded as (server, record), httpx.Client(base_url=server.url) as client:
        answers = [client.head("/"), client.get("/"), client.head("/")]

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert [answer.content for answer in answers] == [b"", b"hello", b""]
    assert record.at_completion == [1, 2, 3]
    assert [write.endswith(b"\r\n\r\n") for write in record.writes] == [True, False, True]


def test_an_interim_100_continue_is_not_taken_for_the_head(tmp_path: Path) -> None:
    recorded = _recorded_server(_App(), _settings(tmp_path))
    with recorded as (server, record), socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(5)
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n"
        )
        interim = b""
        while not interim.endswith(b"\r\n\r\n"):
            interim += sock.recv(1)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        answer = b""
        while not answer.endswith(b"hello"):
            chunk = sock.recv(4096)
            assert chunk, answer
            answer += chunk

    assert answer.startswith(b"HTTP/1.1 200 ")
    assert record.writes == [interim, answer]
