"""A small HTTP/1.1 client: keep-alive connections on asyncio, responses parsed by httptools.

`byoc.http.HttpClient` sends every exchange through `Pool.exchange`. It does what the
middleware's calls need and no more: one request at a time per connection, `Content-Length`
bodies, responses with a length, chunked or ending at close, TLS with the system's trust
store, no proxies, no redirects, no compression, no cookies. What it saves over a general
client is CPU per call: the delivery path makes one call per customer message, and a general
client's per-request bookkeeping was the largest item of its profile (bench/README.md).

Connections are kept per origin (scheme, host, port), at most `max_connections` open in all.
A kept connection that the server closed while idle is noticed (`connection_lost`) and
dropped; one that dies after the request was written and before any byte of the answer
came back is a request the server never answered, and it is sent once more on a new
connection. Every call the middleware makes is idempotent on its ids (DE messages on
`idOnExternalPlatform`, webhooks on their event id), which is what makes that safe.

A connection in the middle of an exchange that is cancelled (the caller's time limit) is
closed, never reused: what it would read next is unknown.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy


class ExchangeError(Exception):
    """No usable answer: connect failed, the connection broke, the answer was malformed."""


class AnswerTooLarge(ExchangeError):
    """The answer's body is longer than the caller allows."""


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def split_url(url: str) -> tuple[Origin, str]:
    """`(origin, request target)` of an absolute http(s) URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ExchangeError(f"not an absolute http(s) URL: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return Origin(scheme, parts.hostname, port), target


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Answer] | None = None
        self._limit: int | None = None
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._reason = ""
        self._body: list[bytes] = []
        self._size = 0
        self._headers_done = False
        self._until_close = False
        self._refusal: AnswerTooLarge | None = None
        self._keep_alive = False
        self.received_any = False

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports quack like asyncio.Transport without deriving from it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        if self._answer is None or self._answer.done():
            self._fail(ExchangeError("the server sent bytes nobody asked for"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            # An exception raised by a callback reaches us wrapped in the parser's own.
            self._fail(self._refusal or ExchangeError(f"malformed answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._answer is None or self._answer.done():
            return
        if self._until_close and self._headers_done:
            self._complete()  # an answer without a length ends with the connection
        else:
            reason = f": {exc}" if exc else ""
            self._answer.set_exception(
                ExchangeError(f"connection closed before the answer{reason}")
            )

    # --- httptools callbacks ------------------------------------------------------------

    def on_status(self, status: bytes) -> None:
        self._reason = status.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        length = self._headers.get("content-length")
        chunked = "chunked" in self._headers.get("transfer-encoding", "").lower()
        self._until_close = length is None and not chunked
        if length is not None and self._limit is not None and int(length) > self._limit:
            self._refusal = AnswerTooLarge(f"{length} bytes announced, {self._limit} allowed")
            raise self._refusal

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._limit is not None and self._size > self._limit:
            self._refusal = AnswerTooLarge(f"more than {self._limit} bytes")
            raise self._refusal
        self._body.append(body)

    def on_message_complete(self) -> None:
        # Asked here: once the callback has returned, the parser no longer says.
        self._keep_alive = self._parser.should_keep_alive()
        self._complete()

    # --- exchanges ----------------------------------------------------------------------

    def start(self, request: bytes, limit: int | None) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self._reset_exchange()
        self._limit = limit
        self._answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._answer

    @property
    def reusable(self) -> bool:
        return not self.closed and self._keep_alive and not self._until_close

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _complete(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(
                Answer(
                    self._parser.get_status_code(),
                    self._reason,
                    CIMultiDictProxy(self._headers),
                    b"".join(self._body),
                )
            )

    def _fail(self, exc: ExchangeError) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(exc)
        self.close()


class Pool:
    """Keep-alive connections per origin, at most `max_connections` open at once."""

    def __init__(self, max_connections: int = 100) -> None:
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl: ssl.SSLContext | None = None
        self._open: set[_Connection] = set()

    async def exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        max_body: int | None = None,
    ) -> Answer:
        origin, target = split_url(url)
        head = [f"{method} {target} HTTP/1.1", f"Host: {origin.host_header}"]
        head += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "host"]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        async with self._slots:
            connection, reused = self._take_idle(origin), True
            if connection is None:
                connection, reused = await self._connect(origin), False
            try:
                answer = await self._exchange_on(connection, request, max_body)
            except ExchangeError:
                if not (reused and connection.closed and not connection.received_any):
                    raise
                # A kept connection the server closed just before our request: never answered.
                connection = await self._connect(origin)
                answer = await self._exchange_on(connection, request, max_body)
            if connection.reusable:
                self._idle.setdefault(origin, deque()).append(connection)
            else:
                self._forget(connection)
            return answer

    async def close(self) -> None:
        for connection in list(self._open):
            self._forget(connection)
        self._idle.clear()

    async def _exchange_on(
        self, connection: _Connection, request: bytes, max_body: int | None
    ) -> Answer:
        try:
            return await connection.start(request, max_body)
        except BaseException:
            self._forget(connection)  # cancelled or broken mid-exchange: never reused
            raise

    def _take_idle(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            if not connection.closed:
                return connection
            self._forget(connection)
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        context = None
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            context = self._ssl
        try:
            _, connection = await loop.create_connection(
                _Connection,
                origin.host,
                origin.port,
                ssl=context,
                server_hostname=origin.host if context else None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ExchangeError(f"cannot connect to {origin.host_header}: {exc}") from exc
        self._open.add(connection)
        return connection

    def _forget(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)
