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


def install(app: FastAPI) -> None:
    async def on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.ByocError)
        status = status_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return problem(status, exc.slug, _title(exc.slug), exc.detail, headers=headers)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
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

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = _HTTP_SLUGS.get(exc.status_code, "error")
        return problem(exc.status_code, slug, _title(slug), str(exc.detail), headers=exc.headers)

    async def on_store_error(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("store unavailable", exc_info=exc)
        return problem(
            503,
            "store-unavailable",
            "Store unavailable",
            "try again shortly",
            headers={"Retry-After": "1"},
        )

    async def on_cxone_error(_request: Request, exc: Exception) -> JSONResponse:
        log.warning("CXone call failed: %s", exc)
        return problem(502, "cxone-unavailable", "CXone call failed", str(exc))

    app.add_exception_handler(errors.ByocError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(StoreError, on_store_error)
    app.add_exception_handler(CxoneError, on_cxone_error)
