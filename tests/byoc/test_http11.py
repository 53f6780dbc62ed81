"""`byoc.http` on its own HTTP/1.1 client, against raw servers on loopback (TLS included)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from byoc.http import HttpClient, HttpResponseTooLarge, HttpTimeout, HttpTransportError

Handler = Callable[["RawServer", asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


class RawServer:
    """Counts connections; `handler(server, reader, writer, connection_number)` serves each."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(self, reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length) if length else b""
        self.requests.append(head + body)
        return head + body


@asynccontextmanager
async def raw_server(
    handler: Handler, *, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[RawServer]:
    server = RawServer(handler)
    listening = await asyncio.start_server(server._serve, "127.0.0.1", 0, ssl=tls)
    port = listening.sockets[0].getsockname()[1]
    server.url = f"{'https' if tls else 'http'}://{host}:{port}"
    async with listening:
        yield server


def keep_alive(body: bytes = b'{"ok":true}', extra: bytes = b"") -> Handler:
    async def handler(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int
    ) -> None:
        while True:
            await server.read_request(reader)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + extra
                + b"Content-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            await writer.drain()

    return handler


async def test_keep_alive_reuses_one_connection_and_sends_what_was_asked() -> None:
    async with raw_server(keep_alive()) as server, HttpClient() as http:
        for n in range(3):
            answer = await http.request(
                "POST",
                server.url + "/channels/a%2Fb/messages?x=1",
                json={"n": n},
                headers={"Authorization": "Bearer t"},
                timeout=2,
            )
            assert answer.status_code == 200
            assert answer.json() == {"ok": True}
            assert answer.headers["content-type"] == "application/json"
            assert answer.reason_phrase == "OK"
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /channels/a%2Fb/messages?x=1 HTTP/1.1\r\n")
    assert f"Host: {server.url.removeprefix('http://')}".encode() in first
    assert b"Authorization: Bearer t\r\n" in first
    assert b"Content-Length: 7\r\n" in first
    assert first.endswith(b'{"n":0}')


async def test_chunked_and_until_close_bodies() -> None:
    async def chunked(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await server.read_request(reader)
        if n == 1:
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            await writer.drain()
            await server.read_request(reader)  # the connection stays usable
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end")
        await writer.drain()

    async with raw_server(chunked) as server, HttpClient() as http:
        first = await http.request("GET", server.url + "/", timeout=2)
        assert first.content == b"hello world"
        second = await http.request("GET", server.url + "/", timeout=2)
        assert second.content == b"until the end"
        third = await http.request("GET", server.url + "/", timeout=2)
        assert third.content == b"until the end"
    assert server.connections == 2  # the until-close answer was not reused


async def test_an_idle_connection_closed_by_the_server_is_replaced() -> None:
    async def one_each(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int
    ) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        # then close the kept connection, as a server's keep-alive timeout does

    async with raw_server(one_each) as server, HttpClient() as http:
        for _ in range(3):
            assert (
                await http.request("POST", server.url + "/", content=b"x", timeout=2)
            ).status_code == 204
            await asyncio.sleep(0.05)
    assert server.connections == 3


async def test_a_request_lost_on_a_kept_connection_is_sent_once_more() -> None:
    async def drop_second(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        if n == 1:
            await server.read_request(reader)
            writer.transport.abort()  # read it, never answered: the race with a keep-alive close

    async with raw_server(drop_second) as server, HttpClient() as http:
        assert (
            await http.request("POST", server.url + "/", content=b"1", timeout=2)
        ).content == b"ok"
        assert (
            await http.request("POST", server.url + "/", content=b"2", timeout=2)
        ).content == b"ok"
    assert server.connections == 2
    assert len(server.requests) == 3


async def test_a_fresh_connection_that_breaks_is_an_error_not_a_loop() -> None:
    async def drop(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int
    ) -> None:
        await server.read_request(reader)
        writer.transport.abort()

    async with raw_server(drop) as server, HttpClient() as http:
        with pytest.raises(HttpTransportError, match="closed before the answer"):
            await http.request("POST", server.url + "/", content=b"x", timeout=2)
    assert server.connections == 1


async def test_answers_larger_than_allowed_are_refused() -> None:
    async def big(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await server.read_request(reader)
        if n == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(10):
                writer.write(b"10\r\n" + b"y" * 16 + b"\r\n")
            writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with raw_server(big) as server, HttpClient() as http:
        for _ in range(2):
            request = http.build_request("GET", server.url + "/file")
            with pytest.raises(HttpResponseTooLarge):
                await http.send(replace(request, max_response_bytes=50), timeout=2)
    assert server.connections == 2  # a refused answer's connection is not reused


async def test_a_silent_server_times_out_and_its_connection_is_dropped() -> None:
    async def silent_first(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
    ) -> None:
        await server.read_request(reader)
        if n == 1:
            await asyncio.sleep(5)
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with raw_server(silent_first) as server, HttpClient() as http:
        with pytest.raises(HttpTimeout):
            await http.request("GET", server.url + "/", timeout=0.2)
        assert (await http.request("GET", server.url + "/", timeout=2)).content == b"ok"
    assert server.connections == 2


async def test_connection_refused_and_malformed_answers_are_transport_errors() -> None:
    async def garbage(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int
    ) -> None:
        await server.read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async with raw_server(garbage) as server, HttpClient() as http:
        with pytest.raises(HttpTransportError, match="malformed"):
            await http.request("GET", server.url + "/", timeout=2)
        port = server.url.rsplit(":", 1)[1]
    async with HttpClient() as http:
        with pytest.raises(HttpTransportError, match="cannot connect"):
            await http.request("GET", f"http://127.0.0.1:{port}/", timeout=2)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_verifies_the_server_against_the_trust_store(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    async with raw_server(keep_alive(), tls=tls, host="localhost") as server:
        async with HttpClient() as http:  # the system's trust store: this certificate is unknown
            with pytest.raises(HttpTransportError, match="cannot connect"):
                await http.request("GET", server.url + "/", timeout=2)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # now it is trusted
        async with HttpClient() as http:
            for _ in range(2):
                answer = await http.request("GET", server.url + "/x", timeout=2)
                assert answer.json() == {"ok": True}
    assert server.connections == 1  # one kept connection (a refused handshake never got here)


def test_the_same_on_uvloop() -> None:
    """`byoc serve` runs on uvloop, whose transports are not asyncio's classes."""
    import uvloop

    async def scenario() -> int:
        async with raw_server(keep_alive()) as server, HttpClient() as http:
            for _ in range(3):
                answer = await http.request("POST", server.url + "/", json={}, timeout=2)
                assert answer.json() == {"ok": True}
            return server.connections

    assert uvloop.run(scenario()) == 1
