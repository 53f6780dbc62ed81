"""What goes out and what comes back: `HttpRequest`, `HttpResponse`, and `response()`, an
answer built in code for test transports (the `transport` seam of `HttpClient`)."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypedDict
from urllib.parse import urlsplit

from multidict import CIMultiDict, CIMultiDictProxy

QueryParams = Iterable[tuple[str, str]] | Mapping[str, str]


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: Mapping[str, str]
    content: bytes = b""
    max_response_bytes: int | None = None  # None: no limit
    max_redirects: int = 0  # followed for GET and HEAD only

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
    return HttpResponse(request, status_code, content, CIMultiDictProxy(head), phrase(status_code))


def phrase(status_code: int) -> str:
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
