"""The HTTP client for every call the middleware makes: CXone's DE API, platform webhooks,
agent attachments, the CLI's provisioning calls.

One small surface (`HttpClient.build_request` / `send` / `request`) over `byoc.http11`, a
keep-alive HTTP/1.1 client of our own, chosen for its cost: the delivery path makes one call
per customer message, and with a few hundred calls in flight httpx spent one to three
milliseconds of CPU per call and aiohttp a quarter of the whole delivery profile
(bench/README.md).

Errors (the one hierarchy of this boundary; callers map it to theirs):

    HttpError
    ├── HttpTimeout         the whole exchange took longer than its time limit
    └── HttpTransportError  connect refused, reset, bad status line, TLS failure, …

Every exchange has a time limit for the whole of it. Redirects are not followed and no
cookies are kept: none of the services we call needs either.

The seam for tests is the `transport` argument: a coroutine function that answers an
`HttpRequest` with an `HttpResponse`, in place of the network.
"""

from __future__ import annotations

import asyncio
import base64
import json as jsonlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypedDict
from urllib.parse import urlencode, urlsplit

from multidict import CIMultiDict, CIMultiDictProxy
from typing_extensions import Unpack

from byoc.http11 import AnswerTooLarge, ExchangeError, Pool

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

USER_AGENT = "byoc"

QueryParams = Iterable[tuple[str, str]] | Mapping[str, str]


class HttpError(Exception):
    """An exchange that produced no HTTP answer."""


class HttpTimeout(HttpError):
    pass


class HttpTransportError(HttpError):
    pass


class HttpResponseTooLarge(HttpError):
    """The answer's body is longer than the request's `max_response_bytes`."""


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    content: bytes = b""
    max_response_bytes: int | None = None  # None: no limit

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


@dataclass(frozen=True)
class HttpResponse:
    request: HttpRequest
    status_code: int
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: CIMultiDictProxy(CIMultiDict()))
    reason_phrase: str = ""

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


def response(
    request: HttpRequest,
    status_code: int,
    *,
    json: Any = None,
    content: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> HttpResponse:
    """An answer built in code (test transports): `json` is encoded, headers case-insensitive."""
    head: CIMultiDict[str] = CIMultiDict(headers or {})
    if json is not None:
        content = jsonlib.dumps(json).encode()
        head.setdefault("Content-Type", "application/json")
    return HttpResponse(request, status_code, content, CIMultiDictProxy(head), _phrase(status_code))


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""


Transport = Callable[[HttpRequest, float], Awaitable[HttpResponse]]


class RequestParts(TypedDict, total=False):
    """What `HttpClient.build_request` puts into a request besides its method and URL."""

    json: Any  # encoded compactly, Content-Type application/json
    form: Mapping[str, str]  # application/x-www-form-urlencoded
    content: bytes  # as it is
    params: QueryParams  # appended to the URL's query
    headers: Mapping[str, str]  # last: they win over the ones set above
    basic_auth: tuple[str, str]  # HTTP Basic credentials


class HttpClient:
    """Keep-alive connections shared by every caller; close with `aclose()`."""

    def __init__(
        self,
        *,
        max_connections: int = 200,
        transport: Transport | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._transport = transport or self._send_http11
        self._pool: Pool | None = None
        self._tracer = tracer

    def trace_with(self, tracer: Tracer | None) -> None:
        """Open a CLIENT span for every exchange from now on (see `byoc.ops.tracing`)."""
        self._tracer = tracer

    def build_request(self, method: str, url: str, **parts: Unpack[RequestParts]) -> HttpRequest:
        json = parts.get("json")
        form = parts.get("form")
        content = parts.get("content")
        params = parts.get("params")
        headers = parts.get("headers")
        basic_auth = parts.get("basic_auth")
        head: CIMultiDict[str] = CIMultiDict({"User-Agent": USER_AGENT})
        body = b""
        if json is not None:
            body = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
            head["Content-Type"] = "application/json"
        elif form is not None:
            body = urlencode(form).encode()
            head["Content-Type"] = "application/x-www-form-urlencoded"
        elif content is not None:
            body = content
        if basic_auth is not None:
            pair = f"{basic_auth[0]}:{basic_auth[1]}".encode()
            head["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        if headers:
            head.update(headers)
        if params:
            query = urlencode(list(params.items()) if isinstance(params, Mapping) else list(params))
            if query:
                url = f"{url}{'&' if '?' in url else '?'}{query}"
        return HttpRequest(method.upper(), url, CIMultiDictProxy(head), body)

    async def send(self, request: HttpRequest, *, timeout: float) -> HttpResponse:  # noqa: ASYNC109
        """One exchange, bounded by `timeout` seconds in all."""
        try:
            async with asyncio.timeout(timeout):
                if self._tracer is None:
                    answer = await self._transport(request, timeout)
                else:
                    answer = await self._traced(request, timeout, self._tracer)
        except TimeoutError as exc:
            where = f"{request.method} {request.url}"
            raise HttpTimeout(f"{where}: no answer within {timeout}s") from exc
        limit = request.max_response_bytes
        if limit is not None and len(answer.content) > limit:
            raise HttpResponseTooLarge(f"{request.url}: more than {limit} bytes")
        return answer

    async def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,  # noqa: ASYNC109
        **parts: Unpack[RequestParts],
    ) -> HttpResponse:
        return await self.send(self.build_request(method, url, **parts), timeout=timeout)

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # --- the wire ------------------------------------------------------------------------

    async def _send_http11(self, request: HttpRequest, timeout: float) -> HttpResponse:  # noqa: ASYNC109
        if self._pool is None:
            self._pool = Pool(self._max_connections)
        try:
            answer = await self._pool.exchange(
                request.method,
                request.url,
                request.headers,
                request.content,
                max_body=request.max_response_bytes,
            )
        except AnswerTooLarge as exc:
            raise HttpResponseTooLarge(f"{request.url}: {exc}") from exc
        except ExchangeError as exc:
            raise HttpTransportError(f"{request.method} {request.url}: {exc}") from exc
        reason = answer.reason or _phrase(answer.status)
        return HttpResponse(request, answer.status, answer.body, answer.headers, reason)

    async def _traced(self, request: HttpRequest, timeout: float, tracer: Tracer) -> HttpResponse:  # noqa: ASYNC109
        from opentelemetry import propagate, trace

        name = f"{request.method} {urlsplit(request.url).netloc}{request.path}"
        attributes = {"http.request.method": request.method, "url.full": request.url}
        with tracer.start_as_current_span(
            name, kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            headers: dict[str, str] = dict(request.headers)
            propagate.inject(headers)
            answer = await self._transport(
                HttpRequest(
                    request.method,
                    request.url,
                    headers,
                    request.content,
                    request.max_response_bytes,
                ),
                timeout,
            )
            span.set_attribute("http.response.status_code", answer.status_code)
            if answer.status_code >= 500:
                span.set_status(trace.StatusCode.ERROR)
            return answer
