"""The HTTP protocol `byoc serve` runs: a response's head leaves with its body.

The server is uvicorn configured by `server_config`, as `byoc serve` runs it, on a real socket on
loopback; the only addition is a record of what the protocol hands its connection's transport
(each write, forwarded unchanged).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from byoc.app import create_app
from byoc.cli.serve import server_config
from byoc.settings import Settings
from tests.support.servers import ThreadedServer, serve


class _RecordedTransport:
    """A connection's transport that keeps a copy of each write and forwards everything."""

    def __init__(self, transport: asyncio.Transport, writes: list[bytes]) -> None:
        self._transport = transport
        self._writes = writes

    def write(self, data: bytes) -> None:
        self._writes.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


@contextmanager
def _recorded_server(app: Any, tmp_path: Path) -> Iterator[tuple[ThreadedServer, list[bytes]]]:
    writes: list[bytes] = []
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'byoc.db'}")

    def configure(app: Any, port: int) -> uvicorn.Config:
        config = server_config(app, settings, host="127.0.0.1", port=port, log_level="warning")
        protocol = config.http
        assert isinstance(protocol, type)

        class Recorded(protocol):  # type: ignore[misc,valid-type]
            def connection_made(self, transport: asyncio.Transport) -> None:
                super().connection_made(_RecordedTransport(transport, writes))

        config.http = Recorded
        return config

    with serve(app, configure=configure) as server:
        yield server, writes


def test_a_response_leaves_in_one_write(tmp_path: Path) -> None:
    recorded = _recorded_server(create_app(Settings()), tmp_path)
    with recorded as (server, writes), httpx.Client(base_url=server.url) as client:
        answers = [client.get("/healthz") for _ in range(3)]
        missing = client.get("/no-such-page")

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    assert missing.status_code == 404
    # One keep-alive connection, four responses: four writes, each a head with its body.
    assert len(writes) == 4, writes
    for write, answer in zip(writes, [*answers, missing], strict=True):
        head, _, body = write.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % answer.status_code)
        assert body == answer.content


def test_a_streamed_responses_head_is_not_held_for_its_body(tmp_path: Path) -> None:
    body_may_go = threading.Event()

    async def streamed(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while not body_may_go.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"later", "more_body": False})

    recorded = _recorded_server(streamed, tmp_path)
    with recorded as (server, writes), httpx.Client(base_url=server.url, timeout=5) as client:
        answer = client.send(client.build_request("GET", "/"), stream=True)
        # The head arrived while the body does not exist yet.
        assert answer.status_code == 200
        assert answer.headers["transfer-encoding"] == "chunked"
        body_may_go.set()
        assert answer.read() == b"later"
        answer.close()

    assert writes[0].startswith(b"HTTP/1.1 200 ")
    assert writes[0].endswith(b"\r\n\r\n")
    assert b"".join(writes[1:]) == b"5\r\nlater\r\n0\r\n\r\n"
