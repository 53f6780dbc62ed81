"""`HttpClient`: `byoc.http`'s one surface over aiohttp (the package docstring says what it
does and does not do), and the one place where aiohttp's errors become `byoc.http`'s."""

from __future__ import annotations

import asyncio
import base64
import functools
import json as jsonlib
import os
import ssl
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urljoin, urlsplit
from urllib.request import getproxies_environment

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict, CIMultiDictProxy
from typing_extensions import Unpack
from yarl import URL

from byoc.http._exceptions import (
    HttpError,
    HttpRefusedAddress,
    HttpResponseTooLarge,
    HttpTimeout,
    HttpTransportError,
)
from byoc.http._models import HttpRequest, HttpResponse, RequestParts, Transport, phrase
from byoc.outbound import OutboundPolicy, RefusedAddress, redirect_location
from byoc.outbound_resolver import VettingResolver
from byoc.proxies import DIRECT, Proxies

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

USER_AGENT = "byoc"
_trust_store = functools.cache(lambda cert_file, cert_dir: ssl.create_default_context())


class HttpClient:
    """Keep-alive connections shared by every caller; close with `aclose()`.

    `resolver` answers the connector's address lookups (see the module docstring); `transport`
    replaces the network altogether (tests).
    """

    def __init__(
        self,
        *,
        max_connections: int = 200,
        transport: Transport | None = None,
        tracer: Tracer | None = None,
        resolver: AbstractResolver | None = None,
        guard: OutboundPolicy | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._transport = transport or self._send_aiohttp
        self._guard = guard
        self._vetting = resolver if isinstance(resolver, VettingResolver) else None
        if guard is not None and resolver is None:
            resolver = self._vetting = VettingResolver(guard)
        self._resolver = resolver
        self._session: aiohttp.ClientSession | None = None
        self._proxies = Proxies({})
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
        """One exchange (and a guarded client's redirects), bounded by `timeout` seconds."""
        if self._guard is not None and request.max_response_bytes is None:
            request = replace(request, max_response_bytes=self._guard.max_response_bytes)
        try:
            async with asyncio.timeout(timeout):
                answer = await self._send_once(request, timeout)
                for _ in range(request.max_redirects if request.method in ("GET", "HEAD") else 0):
                    location = redirect_location(answer.status_code, answer.headers)
                    if self._guard is None or location is None:
                        break
                    request = replace(request, url=urljoin(answer.request.url, location))
                    answer = await self._send_once(request, timeout)
        except TimeoutError as exc:
            where = f"{request.method} {request.url}"
            raise HttpTimeout(f"{where}: no answer within {timeout}s") from exc
        return answer

    async def _send_once(self, request: HttpRequest, timeout: float) -> HttpResponse:  # noqa: ASYNC109
        if self._guard is not None and (problem := self._guard.url_problem(request.url)):
            raise HttpRefusedAddress(f"{request.method} {request.url}: {problem}")
        if self._tracer is None:
            answer = await self._transport(request, timeout)
        else:
            answer = await self._traced(request, timeout, self._tracer)
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
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _open_session(self) -> aiohttp.ClientSession:
        # The wire, aiohttp: opened on first use, not in __init__ (a session belongs to the
        # running event loop).
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            resolver=self._resolver,
            ssl=_trust_store(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            # `send` bounds the whole exchange; aiohttp's own timers would only add a cost.
            timeout=aiohttp.ClientTimeout(),
            # Only what the request names: no Accept-Encoding, no aiohttp User-Agent.
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )
        self._proxies = Proxies(getproxies_environment())
        if self._vetting is not None:
            # The proxies `byoc.proxies` sends through, and no other (ftp_proxy, say).
            self._vetting.trust_proxies(self._proxies.endpoints())
        return self._session

    async def _send_aiohttp(self, request: HttpRequest, timeout: float) -> HttpResponse:  # noqa: ASYNC109
        session = self._session
        if session is None or session.closed:
            session = self._open_session()
        try:
            url = _wire_url(request.url)
            route = self._proxies.route(url) if self._proxies else DIRECT
            headers, proxy_headers = route.headers(url, request.headers)
            if route.proxy is not None and self._vetting is not None:
                await self._vetting.check_origin(url.host or "", url.port or 0)
            async with session.request(
                request.method,
                url,
                data=request.content or None,
                headers=headers,
                allow_redirects=False,
                proxy=route.proxy,
                proxy_headers=proxy_headers,
            ) as answer:
                content = await _read(answer, request.url, request.max_response_bytes)
                reason = answer.reason or phrase(answer.status)
                return HttpResponse(request, answer.status, content, answer.headers, reason)
        except RefusedAddress as exc:
            raise HttpRefusedAddress(f"{request.method} {request.url}: {exc}") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise _transport_error(request, exc) from exc

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


# Characters a request target may carry as they are; anything else (spaces, non-ASCII) is
# percent-encoded, and what is percent-encoded already stays as it is.
_TARGET_SAFE = "/%:@!$&'()*+,;=?~[]"


def _wire_url(url: str) -> URL:
    """`url` as it goes on the wire; `encoded=True` keeps yarl from re-quoting our callers'
    escapes (`a%2Fb` must stay one path segment)."""
    parts = urlsplit(url)
    parts.port  # noqa: B018  (a port that is not a number raises ValueError here, not later)
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return URL(f"{parts.scheme}://{parts.netloc}{target}", encoded=True)


async def _read(answer: aiohttp.ClientResponse, url: str, limit: int | None) -> bytes:
    if limit is None:
        return await answer.read()
    if answer.content_length is not None and answer.content_length > limit:
        raise HttpResponseTooLarge(f"{url}: {answer.content_length} bytes announced")
    data = bytearray()
    async for chunk in answer.content.iter_chunked(64 * 1024):
        data.extend(chunk)
        if len(data) > limit:
            raise HttpResponseTooLarge(f"{url}: more than {limit} bytes")
    return bytes(data)


def _transport_error(request: HttpRequest, exc: aiohttp.ClientError | ValueError) -> HttpError:
    """The one place where aiohttp's errors (and a URL or header that cannot be sent) become
    this module's."""
    where = f"{request.method} {request.url}"
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        failed = ": proxy authentication failed" if exc.status == 407 else ""
        return HttpTransportError(f"{where}: the proxy answered {exc.status} {exc.message}{failed}")
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return HttpTimeout(f"{where}: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, RefusedAddress):
        return HttpRefusedAddress(f"{where}: {exc.os_error}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return HttpTransportError(f"{where}: cannot connect: {exc}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return HttpTransportError(f"{where}: the connection closed before the answer")
    if isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return HttpTransportError(f"{where}: malformed answer: {exc}")
    if isinstance(exc, ValueError):  # aiohttp's InvalidURL is one too
        return HttpTransportError(f"{where}: cannot be sent: {exc}")
    return HttpTransportError(f"{where}: {type(exc).__name__}: {exc}")
