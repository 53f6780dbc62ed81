"""The CXone error body and the one exception that produces it.

Every handler raises `CxoneError`; one exception handler (registered in `app.py`) turns it,
Starlette's own HTTP errors and unexpected JSON problems into
`{"errors": [{"field"?, "message", "errorCode"}], "uid"}`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class CxoneError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        error_code: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_code = error_code
        self.field = field
        self.headers = dict(headers or {})


def invalid(field: str, message: str, error_code: str = "InvalidRequest") -> CxoneError:
    """A 400 naming the offending field path, e.g. `thread.idOnExternalPlatform`."""
    return CxoneError(400, f"{field}: {message}", error_code, field)


def not_found(what: str, error_code: str, field: str | None = None) -> CxoneError:
    return CxoneError(404, f"{what} not found", error_code, field)


def error_body(message: str, error_code: str, field: str | None = None) -> dict[str, object]:
    item: dict[str, object] = {"message": message, "errorCode": error_code}
    if field is not None:
        item = {"field": field, **item}
    return {"errors": [item], "uid": str(uuid.uuid4())}


def error_response(exc: CxoneError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.message, exc.error_code, exc.field),
        status_code=exc.status,
        headers=exc.headers,
    )


async def handle_cxone_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CxoneError)
    return error_response(exc)


async def handle_http_error(request: Request, exc: Exception) -> Response:
    # Unknown routes and wrong methods should look like CXone errors too, not FastAPI's.
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HttpError")
    return JSONResponse(
        error_body(str(exc.detail), code),
        status_code=exc.status_code,
        headers=dict(exc.headers or {}),
    )
