"""RFC 9457 problem details: the one place where errors become HTTP responses.

Every 4xx and 5xx this service produces (outside the OAuth token endpoint, which speaks
RFC 6749) is `application/problem+json` with a stable `type` URI, `urn:byoc:problem:<slug>`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from byoc import errors
from byoc.cxone.errors import CxoneError
from byoc.store import StoreError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_STATUS: list[tuple[type[errors.ByocError], int]] = [
    (errors.RecipientRejected, 400),
    (errors.TooLarge, 413),
    (errors.UnsupportedType, 415),
    (errors.InvalidInput, 422),
    (errors.NotFound, 404),
    (errors.ConversationEnded, 409),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.RateLimited, 429),
]

_HTTP_SLUGS = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    429: "too-many-requests",
    503: "unavailable",
}


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": f"urn:byoc:problem:{slug}", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def status_for(exc: errors.ByocError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def _title(slug: str) -> str:
    return slug.replace("-", " ").capitalize()


def _domain_error(exc: errors.ByocError) -> JSONResponse:
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(exc.retry_after)}
    return problem(status, exc.slug, _title(exc.slug), exc.detail, headers=headers)


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    invalid = [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
            "message": err.get("msg", ""),
        }
        for err in exc.errors()
    ]
    malformed = any(err.get("type") == "json_invalid" for err in exc.errors())
    if malformed:
        return problem(400, "malformed-json", "Malformed JSON", "the body is not valid JSON")
    return problem(
        422,
        "invalid-input",
        "Invalid input",
        "the request body failed validation",
        errors=invalid,
    )


def _http_error(exc: StarletteHTTPException) -> JSONResponse:
    slug = _HTTP_SLUGS.get(exc.status_code, "error")
    return problem(exc.status_code, slug, _title(slug), str(exc.detail), headers=exc.headers)


def _store_error(exc: StoreError) -> JSONResponse:
    log.exception("store unavailable", exc_info=exc)
    return problem(
        503,
        "store-unavailable",
        "Store unavailable",
        "try again shortly",
        headers={"Retry-After": "1"},
    )


def _cxone_error(exc: CxoneError) -> JSONResponse:
    log.warning("CXone call failed: %s", exc)
    return problem(502, "cxone-unavailable", "CXone call failed", str(exc))


def response_for(exc: Exception) -> JSONResponse | None:
    """The problem response for an exception a route raised; None for an unexpected one (a bug:
    the server's 500)."""
    if isinstance(exc, errors.ByocError):
        return _domain_error(exc)
    if isinstance(exc, RequestValidationError):
        return _validation_error(exc)
    if isinstance(exc, StarletteHTTPException):
        return _http_error(exc)
    if isinstance(exc, StoreError):
        return _store_error(exc)
    if isinstance(exc, CxoneError):
        return _cxone_error(exc)
    return None


def install(app: FastAPI) -> None:
    async def on_error(_request: Request, exc: Exception) -> JSONResponse:
        response = response_for(exc)
        if response is None:  # registered below for these classes only
            raise exc
        return response

    for cls in (
        errors.ByocError,
        RequestValidationError,
        StarletteHTTPException,
        StoreError,
        CxoneError,
    ):
        app.add_exception_handler(cls, on_error)
