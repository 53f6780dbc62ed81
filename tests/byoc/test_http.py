"""`byoc.http` on aiohttp, against raw servers and proxies on loopback (TLS included)."""

from __future__ import annotations

import asyncio
import base64
import errno
import os
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from byoc.http import HttpClient, HttpResponseTooLarge, HttpTimeout, HttpTransportError
from byoc.proxies import Proxies


@pytest.fixture(autouse=True)
def no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests here set the proxy they mean; none comes from the environment they run in."""
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name)


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
            await asyncio.sleep(0.2)  # the server's FIN arrives while idle
    assert server.connections == 3


async def drop_second(
    server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int
) -> None:
    await server.read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await writer.drain()
    if n == 1:
        await server.read_request(reader)
        writer.transport.abort()  # read it, never answered: the race with a keep-alive close


async def test_an_idempotent_request_lost_on_a_kept_connection_is_sent_once_more() -> None:
    async with raw_server(drop_second) as server, HttpClient() as http:
        for body in (b"1", b"2"):
            answer = await http.request("PUT", server.url + "/", content=body, timeout=2)
            assert answer.content == b"ok"
    assert server.connections == 2
    assert len(server.requests) == 3


async def test_a_post_lost_on_a_kept_connection_is_left_to_its_caller() -> None:
    """The server may have acted on it: a POST is not sent again behind the caller's back."""
    async with raw_server(drop_second) as server, HttpClient() as http:
        await http.request("POST", server.url + "/", content=b"1", timeout=2)
        with pytest.raises(HttpTransportError, match="closed before the answer"):
            await http.request("POST", server.url + "/", content=b"2", timeout=2)
    assert len(server.requests) == 2


async def test_informational_answers_and_bodiless_ones() -> None:
    async def answers(
        server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _n: int
    ) -> None:
        await server.read_request(reader)
        writer.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx"
        )
        await writer.drain()
        for _ in range(2):
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async with raw_server(answers) as server, HttpClient() as http:
        first = await http.request("POST", server.url + "/", content=b"a", timeout=2)
        assert (first.status_code, first.content) == (201, b"x")
        for _ in range(2):
            answer = await http.request("POST", server.url + "/", content=b"b", timeout=2)
            assert answer.status_code == 204
    assert server.connections == 1  # a 204 without a length keeps its connection


async def test_targets_are_encoded_and_header_injection_refused() -> None:
    async with raw_server(keep_alive()) as server, HttpClient() as http:
        await http.request("GET", server.url + "/files/caf\u00e9 menu.pdf?a=b%2Fc", timeout=2)
        assert server.requests[0].startswith(b"GET /files/caf%C3%A9%20menu.pdf?a=b%2Fc HTTP/1.1")
        for value in ("v\r\nX-B: 1", "v\nX-B: 1", "v\rX-B: 1"):
            with pytest.raises(HttpTransportError, match="cannot be sent"):
                await http.request("GET", server.url + "/", headers={"X-A": value}, timeout=2)
        with pytest.raises(HttpTransportError, match="cannot be sent"):
            await http.request("GET", "http://127.0.0.1:port/", timeout=2)
    assert len(server.requests) == 1


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
        with pytest.raises(HttpTransportError, match="malformed answer"):
            await http.request("GET", server.url + "/", timeout=2)
        port = server.url.rsplit(":", 1)[1]
    async with HttpClient() as http:
        with pytest.raises(HttpTransportError, match="cannot connect"):
            await http.request("GET", f"http://127.0.0.1:{port}/", timeout=2)


class PinnedResolver(AbstractResolver):
    """Answers every name with the address it is given, or refuses it: the shape of a
    resolver that vets addresses. Records what it was asked."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.asked: list[tuple[str, int]] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append((host, port))
        if self.address is None:
            raise OSError(errno.EACCES, "refused by policy")  # the strerror is what is shown
        return [
            {
                "hostname": host,
                "host": self.address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


async def test_connections_go_where_the_given_resolver_says() -> None:
    resolver = PinnedResolver("127.0.0.1")
    async with raw_server(keep_alive()) as server, HttpClient(resolver=resolver) as http:
        port = int(server.url.rsplit(":", 1)[1])
        for _ in range(2):
            answer = await http.request("GET", f"http://service.test:{port}/x", timeout=2)
            assert answer.json() == {"ok": True}
    assert resolver.asked == [("service.test", port)]  # then the kept connection
    assert f"Host: service.test:{port}\r\n".encode() in server.requests[0]


async def test_a_name_the_resolver_refuses_is_never_connected_to() -> None:
    resolver = PinnedResolver(None)
    async with raw_server(keep_alive()) as server, HttpClient(resolver=resolver) as http:
        port = int(server.url.rsplit(":", 1)[1])
        with pytest.raises(HttpTransportError, match=r"cannot connect: .*refused by policy"):
            await http.request("POST", f"http://service.test:{port}/", json={}, timeout=2)
    assert resolver.asked == [("service.test", port)]
    assert server.connections == 0


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


# --- proxies --------------------------------------------------------------------------------


class ForwardProxy:
    """A forward proxy: CONNECT tunnels, and absolute-form requests forwarded in origin form.

    Every upstream connection goes to 127.0.0.1 (where the test servers listen) at the port
    asked for. `credentials` set: a CONNECT without them is answered 407. `silent`: CONNECT is
    never answered, and `closed` is set when the client lets go of the connection.
    """

    def __init__(self, credentials: str | None = None, *, silent: bool = False) -> None:
        self.authorization = None
        if credentials is not None:
            self.authorization = b"Basic " + base64.b64encode(credentials.encode())
        self.silent = silent
        self.heads: list[bytes] = []  # every request head the proxy read
        self.connections = 0
        self.closed = asyncio.Event()
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
            if method == b"CONNECT":
                await self._tunnel(head, target, reader, writer)
            else:
                await self._forward(head, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            # A client that gave up before its CONNECT was complete (a loaded machine can take
            # longer than the request's time limit to write it) has let go as well.
            if self.silent:
                self.closed.set()
        finally:
            writer.close()

    async def _tunnel(
        self,
        head: bytes,
        target: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        if self.silent:
            await reader.read()  # until the client closes
            self.closed.set()
            return
        if self.authorization and b"Proxy-Authorization: " + self.authorization not in head:
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 6\r\n\r\ndenied'
            )
            await writer.drain()
            return
        port = int(target.rsplit(b":", 1)[1])
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def _forward(
        self, head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        upstream: asyncio.StreamWriter | None = None
        answers: asyncio.Task[None] | None = None
        try:
            while True:
                line, rest = head.split(b"\r\n", 1)
                method, target, version = line.split(b" ")
                url = urlsplit(target.decode())
                assert url.scheme == "http", target  # absolute form, or this is no proxy request
                if upstream is None:
                    up_reader, upstream = await asyncio.open_connection("127.0.0.1", url.port)
                    answers = asyncio.create_task(pipe(up_reader, writer))
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                length = 0
                for header in rest.split(b"\r\n"):
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                upstream.write(b" ".join((method, path.encode(), version)) + b"\r\n" + rest + body)
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
        finally:
            if upstream is not None:
                upstream.close()
            if answers is not None:
                answers.cancel()


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@asynccontextmanager
async def forward_proxy(
    credentials: str | None = None, *, silent: bool = False, userinfo: str = ""
) -> AsyncIterator[ForwardProxy]:
    proxy = ForwardProxy(credentials, silent=silent)
    listening = await asyncio.start_server(proxy.serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    proxy.url = f"http://{userinfo}127.0.0.1:{port}"
    async with listening:
        yield proxy


@pytest.fixture
def trusted_tls(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> ssl.SSLContext:
    """The TLS test server's context, its certificate trusted by the client."""
    cert, key = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    return tls


async def https_through_a_proxy(tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch) -> None:
    async with (
        raw_server(keep_alive(), tls=tls, host="localhost") as server,
        forward_proxy() as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # not this one: the origin is https
        async with HttpClient() as http:
            for n in range(3):
                answer = await http.request("POST", server.url + "/x?y=1", json={"n": n}, timeout=2)
                assert answer.json() == {"ok": True}
        port = server.url.rsplit(":", 1)[1]
        assert len(proxy.heads) == 1
        assert proxy.heads[0].split(b"\r\n")[:2] == [
            f"CONNECT localhost:{port} HTTP/1.1".encode(),
            f"Host: localhost:{port}".encode(),
        ]
        assert proxy.connections == 1  # one tunnel,
        assert server.connections == 1  # kept
        assert server.requests[0].startswith(b"POST /x?y=1 HTTP/1.1\r\n")
        assert f"Host: localhost:{port}\r\n".encode() in server.requests[0]


async def test_https_goes_through_a_connect_tunnel_and_still_verifies_the_server(
    trusted_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    await https_through_a_proxy(trusted_tls, monkeypatch)
    monkeypatch.delenv("SSL_CERT_FILE")  # back to the system's trust store: refused, tunnel or not
    async with (
        raw_server(keep_alive(), tls=trusted_tls, host="localhost") as server,
        forward_proxy() as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        async with HttpClient() as http:
            with pytest.raises(HttpTransportError, match=r"cannot connect: .*certificate verify"):
                await http.request("GET", server.url + "/", timeout=2)


def test_the_tunnel_on_uvloop(trusted_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS started inside the tunnel on uvloop's transports, as `byoc serve` runs."""
    import uvloop

    uvloop.run(https_through_a_proxy(trusted_tls, monkeypatch))


async def test_http_goes_to_the_proxy_in_absolute_form_with_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with (
        raw_server(keep_alive()) as server,
        forward_proxy(userinfo="us%40er:p%3As%20s@") as proxy,
    ):
        monkeypatch.setenv("http_proxy", proxy.url)
        async with HttpClient() as http:
            for _ in range(2):
                answer = await http.request("GET", server.url + "/a%2Fb?q=1", timeout=2)
                assert answer.json() == {"ok": True}
    authority = server.url.removeprefix("http://")
    credentials = base64.b64encode(b"us@er:p:s s").decode()
    assert len(proxy.heads) == 2
    for head in proxy.heads:
        lines = head.split(b"\r\n")
        assert lines[:2] == [
            f"GET http://{authority}/a%2Fb?q=1 HTTP/1.1".encode(),
            f"Host: {authority}".encode(),
        ]
        assert f"Proxy-Authorization: Basic {credentials}".encode() in lines
    assert proxy.connections == 1  # kept alive to the proxy
    assert server.requests[0].startswith(b"GET /a%2Fb?q=1 HTTP/1.1\r\n")


async def test_connect_sends_the_credentials_of_the_proxy_url(
    trusted_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        raw_server(keep_alive(), tls=trusted_tls, host="localhost") as server,
        forward_proxy("al:s3cr:t", userinfo="al:s3cr%3At@") as proxy,
    ):
        monkeypatch.setenv("ALL_PROXY", proxy.url)  # the fallback for https too
        async with HttpClient() as http:
            assert (await http.request("GET", server.url + "/", timeout=2)).json() == {"ok": True}
    assert b"\r\nProxy-Authorization: Basic YWw6czNjcjp0\r\n" in proxy.heads[0]


async def test_a_407_to_connect_says_proxy_authentication_failed(
    trusted_tls: ssl.SSLContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with (
        raw_server(keep_alive(), tls=trusted_tls, host="localhost") as server,
        forward_proxy("al:right", userinfo="al:wrong@") as proxy,
    ):
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        async with HttpClient() as http:
            with pytest.raises(
                HttpTransportError, match=r"407 .*proxy authentication failed"
            ) as info:
                await http.request("GET", server.url + "/", timeout=2)
    assert "wrong" not in str(info.value)
    assert server.connections == 0


async def test_a_cancelled_connect_lets_go_of_the_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    async with forward_proxy(silent=True) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        async with HttpClient() as http:
            with pytest.raises(HttpTimeout):
                await http.request("GET", "https://localhost:9/", timeout=0.2)
            await asyncio.wait_for(proxy.closed.wait(), 10)  # before the client is closed


async def test_no_proxy_bypasses_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    async with raw_server(keep_alive()) as server, forward_proxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.com, 127.0.0.1")
        async with HttpClient() as http:
            assert (await http.request("GET", server.url + "/", timeout=2)).json() == {"ok": True}
    assert proxy.connections == 0
    assert server.requests[0].startswith(b"GET / HTTP/1.1\r\n")


def test_which_origins_go_through_which_proxy() -> None:
    proxies = Proxies(
        {
            "https": "http://secure:3128",
            "all": "us%40er:pw@proxy.corp",  # no scheme: http
            "no": "localhost, .internal.example,10.0.0.1:8080",
        }
    )

    def through(url: str) -> str | None:
        route = proxies.route(URL(url))
        return str(route.proxy) if route.proxy else None

    assert through("https://api.example/") == "http://secure:3128"
    assert through("http://api.example/") == "http://proxy.corp"
    credentials = "Basic " + base64.b64encode(b"us@er:pw").decode()
    assert proxies.route(URL("http://api.example/")).authorization == credentials
    assert through("https://localhost/") is None
    assert through("http://127.0.0.1/") == "http://proxy.corp"  # loopback only if NO_PROXY says
    assert through("https://a.b.internal.example/") is None  # suffixes
    assert through("https://internal.example/") is None
    assert through("https://notinternal.example/") == "http://secure:3128"
    assert through("http://10.0.0.1:8080/") is None
    assert through("http://10.0.0.1/") == "http://proxy.corp"
    # What the outbound policy trusts: the proxies routes may use, as they read them.
    assert proxies.endpoints() == {("secure", 3128), ("proxy.corp", 80)}
    refused = Proxies({"https": "https://tls.proxy:443", "http": "http://p:x", "all": "q:8"})
    assert refused.endpoints() == {("q", 8)}
    everywhere = Proxies({"no": "*", "all": "http://p:1"})
    assert everywhere.route(URL("https://anywhere/")).proxy is None
    assert not Proxies({})


async def test_only_http_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "https://user:pw@proxy.corp:3128")
    async with HttpClient() as http:
        for _ in range(2):  # refused every time, not remembered as "no proxy"
            with pytest.raises(HttpTransportError, match="only http://") as info:
                await http.request("GET", "https://localhost:9/", timeout=2)
            assert "pw" not in str(info.value)
