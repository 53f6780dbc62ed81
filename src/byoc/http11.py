"""A small HTTP/1.1 client: keep-alive connections on asyncio, responses parsed by httptools.

`byoc.http.HttpClient` sends every exchange through `Pool.exchange`. It does what the
middleware's calls need and no more: one request at a time per connection, `Content-Length`
bodies, responses with a length, chunked or ending at close, TLS with the system's trust
store, HTTP proxies, no redirects, no compression, no cookies. What it saves over a general
client is CPU per call: the delivery path makes one call per customer message, and a general
client's per-request bookkeeping was the largest item of its profile (bench/README.md).

Proxies come from the environment, read when a `Pool` is created: `HTTPS_PROXY` for https
origins, `HTTP_PROXY` for http origins, `ALL_PROXY` for either when its own is not set (the
lowercase names win over the uppercase ones), and `NO_PROXY`, a comma-separated list of host
names or addresses (`host` or `host:port`) bypassed along with their subdomains, or `*` for
all (`urllib.request.proxy_bypass_environment`: no CIDR ranges, and loopback is proxied
unless listed). The proxy's URL must be `http://` (or have no scheme, which means the same);
any other (`https://`, `socks5://`) fails every exchange it would carry with an
`ExchangeError` saying so, rather than being quietly spoken to as plain http. Userinfo in it
is sent, percent-decoded, as `Proxy-Authorization: Basic`. An https origin is reached through a
`CONNECT host:port` tunnel, then TLS to the origin on the same connection, kept like any
other; an http origin gets its requests in absolute form (`GET http://host/path`), on
connections to the proxy kept per origin.

Connections are kept per origin (scheme, host, port): at most `max_connections` exchanges at
once, at most `IDLE_PER_ORIGIN` connections idle per origin, none reused after idling
`IDLE_SECONDS`. A kept connection that the server closed while idle is noticed
(`connection_lost`) and dropped. When a kept connection dies after the request was written
and before any byte of the answer came back, the server may or may not have acted on it: a
request with an idempotent method (GET, HEAD, PUT, DELETE, OPTIONS) is sent once more on a new
connection; a POST fails and is left to its caller (the outbox retries deliveries, which are
idempotent on their ids). Informational answers (1xx) are skipped; 204 and 304 answers have
no body and keep their connection. Request targets are percent-encoded where a request line
needs it; a header holding a line break is refused.

A connection in the middle of an exchange that is cancelled (the caller's time limit) is
closed, never reused: what it would read next is unknown.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, unquote, urlsplit
from urllib.request import getproxies_environment
from urllib.request import proxy_bypass_environment as _bypass  # type: ignore[attr-defined]

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

# Not in typeshed's urllib.request: `(host[:port], proxies) -> whether NO_PROXY lists it`.
proxy_bypass_environment = cast(Callable[[str, Mapping[str, str]], bool], _bypass)


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
        host = _bracketed(self.host)
        return host if self.port == default else f"{host}:{self.port}"


def split_url(url: str) -> tuple[Origin, str]:
    """`(origin, request target)` of an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port
    except ValueError as exc:  # e.g. a port that is not a number
        raise ExchangeError(f"not a usable URL: {url!r}: {exc}") from exc
    if scheme not in ("http", "https") or not parts.hostname:
        raise ExchangeError(f"not an absolute http(s) URL: {url!r}")
    port = port or (443 if scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    # Characters a request line cannot carry (spaces, non-ASCII) are percent-encoded; what is
    # encoded already stays as it is.
    return Origin(scheme, parts.hostname, port), quote(target, safe=_TARGET_SAFE)


_TARGET_SAFE = "/%:@!$&'()*+,;=?~[]"
# Requests sent once more when a kept connection turns out to be dead before any answer: those
# whose methods are idempotent (RFC 9110 9.2.2). A POST is left to its caller (the outbox
# retries its deliveries; every one of them is idempotent on its own ids).
_RESENDABLE = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# How long a kept connection may idle before it is closed rather than reused, and how many
# may idle per origin.
IDLE_SECONDS = 30.0
IDLE_PER_ORIGIN = 32


def _header_line(name: str, value: str) -> str:
    if any(c in name or c in value for c in "\r\n\0"):
        raise ExchangeError(f"header {name!r} holds a line break or NUL")
    return f"{name}: {value}"


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy, and the `Proxy-Authorization` value its URL's userinfo gives."""

    host: str
    port: int
    authorization: str | None = None

    @property
    def address(self) -> str:
        return f"{_bracketed(self.host)}:{self.port}"


def parse_proxy(url: str) -> Proxy:
    """The proxy an `http://user:password@host:port` URL names (no scheme: http)."""
    parts = urlsplit(url if "://" in url else "http://" + url)
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # no password
    if parts.scheme.lower() != "http":
        raise ExchangeError(f"proxy {shown}: only http:// proxies are supported")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ExchangeError(f"proxy {shown}: {exc}") from exc
    if not parts.hostname:
        raise ExchangeError(f"proxy {shown}: no host")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(parts.hostname, port, authorization)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
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
        if self._until_close and self._headers_done and exc is None:
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
        status = self._parser.get_status_code()
        bodiless = status in (204, 304) or 100 <= status < 200
        self._until_close = length is None and not chunked and not bodiless
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
        if 100 <= self._parser.get_status_code() < 200:
            self._reset_exchange()  # informational (100 Continue, 103): the answer follows
            return
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


class _Tunnel(asyncio.Protocol):
    """A proxy's answer to CONNECT, up to the blank line: `reply` is its status and reason."""

    def __init__(self) -> None:
        self.reply: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self._head = bytearray()

    def data_received(self, data: bytes) -> None:
        if self.reply.done():
            return  # a refusal's body, read by nobody: the connection is closed
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > 65536:
                self.reply.set_exception(ExchangeError("the proxy's answer to CONNECT is too long"))
            return
        line = bytes(self._head[: self._head.find(b"\r\n")]).decode("latin-1")
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if not (version.startswith("HTTP/1.") and len(code) == 3 and code.isdigit()):
            self.reply.set_exception(ExchangeError(f"malformed answer to CONNECT: {line!r:.100}"))
        elif code.startswith("2") and len(self._head) > end + 4:
            self.reply.set_exception(ExchangeError("the proxy sent bytes before the TLS handshake"))
        else:
            self.reply.set_result((int(code), reason.strip()))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.reply.done():
            reason = f": {exc}" if exc else ""
            self.reply.set_exception(ExchangeError(f"the proxy closed before answering{reason}"))


class Pool:
    """Keep-alive connections per origin, at most `max_connections` open at once.

    `proxies` maps `http`, `https`, `all` to proxy URLs and `no` to the `NO_PROXY` list, as
    `urllib.request.getproxies_environment()` does; it is what that reads by default.
    """

    def __init__(
        self, max_connections: int = 100, proxies: Mapping[str, str] | None = None
    ) -> None:
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._slots = asyncio.Semaphore(max_connections)
        self._ssl: ssl.SSLContext | None = None
        self._open: set[_Connection] = set()
        self._proxies = dict(getproxies_environment() if proxies is None else proxies)
        self._proxied = any(self._proxies.get(key) for key in ("http", "https", "all"))
        self._routes: dict[Origin, Proxy | None] = {}

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
        proxy = self._proxy_for(origin) if self._proxied else None
        if proxy is not None and origin.scheme == "http":
            target = f"http://{origin.host_header}{target}"  # absolute form, for the proxy
        head = [f"{method} {target} HTTP/1.1", f"Host: {origin.host_header}"]
        if proxy is not None and origin.scheme == "http" and proxy.authorization:
            head.append(f"Proxy-Authorization: {proxy.authorization}")
        head += [
            _header_line(name, value) for name, value in headers.items() if name.lower() != "host"
        ]
        if body or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body)}")
        try:
            request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        except UnicodeEncodeError as exc:
            raise ExchangeError(f"a header cannot be sent as ISO-8859-1: {exc}") from exc
        async with self._slots:
            connection, reused = self._take_idle(origin), True
            if connection is None:
                connection, reused = await self._connect(origin), False
            try:
                answer = await self._exchange_on(connection, request, max_body)
            except ExchangeError:
                never_answered = reused and connection.closed and not connection.received_any
                if not (never_answered and method in _RESENDABLE):
                    raise
                # A kept connection the server closed just before our request: never answered.
                connection = await self._connect(origin)
                answer = await self._exchange_on(connection, request, max_body)
            idle = self._idle.setdefault(origin, deque())
            if connection.reusable and len(idle) < IDLE_PER_ORIGIN:
                connection.idle_since = time.monotonic()
                idle.append(connection)
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
        stale_before = time.monotonic() - IDLE_SECONDS
        while idle and idle[0].idle_since < stale_before:
            self._forget(idle.popleft())  # idle too long: a middlebox may have dropped it
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be stale
            if not connection.closed:
                return connection
            self._forget(connection)
        return None

    def _proxy_for(self, origin: Origin) -> Proxy | None:
        """The proxy for `origin`'s connections, if any (decided once per origin)."""
        if origin in self._routes:
            return self._routes[origin]
        url = self._proxies.get(origin.scheme) or self._proxies.get("all")
        bypass = proxy_bypass_environment(f"{origin.host}:{origin.port}", self._proxies)
        proxy = parse_proxy(url) if url and not bypass else None  # a bad URL: not remembered
        self._routes[origin] = proxy
        return proxy

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _connect(self, origin: Origin) -> _Connection:
        proxy = self._proxy_for(origin) if self._proxied else None
        if proxy is not None and origin.scheme == "https":
            connection = await self._tunnel(origin, proxy)
        else:
            loop = asyncio.get_running_loop()
            host, port = (origin.host, origin.port) if proxy is None else (proxy.host, proxy.port)
            context = self._context() if origin.scheme == "https" else None
            try:
                _, connection = await loop.create_connection(
                    _Connection,
                    host,
                    port,
                    ssl=context,
                    server_hostname=origin.host if context else None,
                )
            except (OSError, ssl.SSLError) as exc:
                where = origin.host_header if proxy is None else f"proxy {proxy.address}"
                raise ExchangeError(f"cannot connect to {where}: {exc}") from exc
        self._open.add(connection)
        return connection

    async def _tunnel(self, origin: Origin, proxy: Proxy) -> _Connection:
        """A TLS connection to `origin` through `proxy`'s CONNECT tunnel."""
        loop = asyncio.get_running_loop()
        try:
            transport, tunnel = await loop.create_connection(_Tunnel, proxy.host, proxy.port)
        except OSError as exc:
            raise ExchangeError(f"cannot connect to proxy {proxy.address}: {exc}") from exc
        authority = f"{_bracketed(origin.host)}:{origin.port}"
        try:
            head = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
            if proxy.authorization:
                head.append(f"Proxy-Authorization: {proxy.authorization}")
            transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            status, reason = await tunnel.reply
            if not 200 <= status < 300:
                failed = ": proxy authentication failed" if status == 407 else ""
                raise ExchangeError(
                    f"proxy {proxy.address} answered CONNECT {authority} "
                    f"with {status} {reason}{failed}"
                )
            connection = _Connection()
            try:
                tls = await loop.start_tls(
                    transport, connection, self._context(), server_hostname=origin.host
                )
            except (OSError, ssl.SSLError) as exc:
                raise ExchangeError(
                    f"cannot connect to {origin.host_header} through proxy {proxy.address}: {exc}"
                ) from exc
            if tls is None:  # only for a transport closed in the meantime
                raise ExchangeError(f"proxy {proxy.address} closed the tunnel to {authority}")
        except BaseException:
            transport.abort()  # refused, broken or cancelled: the socket goes now
            raise
        connection.connection_made(tls)
        return connection

    def _forget(self, connection: _Connection) -> None:
        connection.close()
        self._open.discard(connection)
