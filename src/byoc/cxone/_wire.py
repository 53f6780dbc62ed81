"""Sending one request to CXone and reading its answer.

This is the one place where lower-level failures become the `byoc.cxone.errors` hierarchy:
`byoc.http` errors (no answer, timeouts), error statuses, and bodies that do not match our models.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import pydantic

from byoc.cxone.errors import (
    CxoneAuthError,
    CxoneConflict,
    CxoneError,
    CxoneNotFound,
    CxoneRejected,
    CxoneUnavailable,
)
from byoc.http import HttpClient, HttpError, HttpRequest, HttpResponse, HttpTimeout

M = TypeVar("M", bound=pydantic.BaseModel)


async def send(
    http: HttpClient,
    request: HttpRequest,
    *,
    time_limit: float,
    auth_statuses: Collection[int] = (),
    pass_statuses: Collection[int] = (),
) -> HttpResponse:
    """Send `request` and return its answer if it succeeded, else raise the matching error.

    `time_limit` (seconds) bounds the whole exchange, not only each network phase, so a server that
    trickles bytes cannot hold a caller longer than asked. Statuses in `auth_statuses` mean
    our credentials were refused (`CxoneAuthError`); statuses in `pass_statuses` are returned
    for the caller to handle (the DE client's one token refresh on 401).
    """
    where = f"{request.method} {request.path}"
    started = time.monotonic()
    try:
        response = await http.send(request, timeout=time_limit)
    except HttpTimeout as exc:
        elapsed = time.monotonic() - started
        raise CxoneUnavailable(f"{where} timed out after {elapsed:.1f}s") from exc
    except HttpError as exc:
        raise CxoneUnavailable(f"{where} failed: {type(exc).__name__}: {exc}") from exc

    status = response.status_code
    if response.is_success or status in pass_statuses:
        return response

    errors, uid = _error_items(response)
    first = _describe(errors[0]) if errors else (response.reason_phrase or "no details")
    message = f"{where} answered {status}: {first}"
    cls: type[CxoneError]
    if status in auth_statuses:
        cls = CxoneAuthError
    elif status == 429 or status >= 500:
        raise CxoneUnavailable(
            message, status=status, errors=errors, uid=uid, retry_after=parse_retry_after(response)
        )
    elif status == 404:
        cls = CxoneNotFound
    elif status == 409:
        cls = CxoneConflict
    elif 400 <= status < 500:
        cls = CxoneRejected
    else:
        # 1xx/3xx: redirects are not followed and nothing in the DE API answers with one.
        cls = CxoneError
    raise cls(message, status=status, errors=errors, uid=uid)


def decode(response: HttpResponse, model: type[M]) -> M:
    """Read a success answer's JSON body as `model`."""
    try:
        return model.model_validate_json(response.content)
    except pydantic.ValidationError as exc:
        request = response.request
        raise CxoneError(
            f"{request.method} {request.path} answered {response.status_code} with a body "
            f"we cannot read: {exc.error_count()} problem(s), first: {_first_problem(exc)}",
            status=response.status_code,
        ) from exc


def decode_list(response: HttpResponse, item: type[M]) -> list[M]:
    """Read `{"data": [...]}` (DE's list envelope) or a bare JSON list of `item`."""
    request = response.request
    where = f"{request.method} {request.path} answered {response.status_code}"
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise CxoneError(f"{where} without JSON", status=response.status_code) from exc
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        body = body["data"]
    if not isinstance(body, list):
        raise CxoneError(f"{where} without a list", status=response.status_code)
    try:
        return [item.model_validate(entry) for entry in body]
    except pydantic.ValidationError as exc:
        raise CxoneError(
            f"{where} with a list item we cannot read: {_first_problem(exc)}",
            status=response.status_code,
        ) from exc


def parse_retry_after(response: HttpResponse) -> float | None:
    """Retry-After in seconds from now: either delay-seconds or an HTTP-date (RFC 9110)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_items(response: HttpResponse) -> tuple[list[dict[str, object]], str | None]:
    """CXone's `{"errors": [...], "uid"}`, or an OAuth `{"error", "error_description"}` body."""
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return [], None
    uid = body.get("uid")
    uid = uid if isinstance(uid, str) else None
    items = body.get("errors")
    if isinstance(items, list):
        return [item for item in items if isinstance(item, dict)], uid
    if isinstance(body.get("error"), str):
        description = body.get("error_description")
        text = description if isinstance(description, str) and description else body["error"]
        return [{"message": text, "errorCode": body["error"]}], uid
    if isinstance(body.get("message"), str):
        return [{"message": body["message"]}], uid
    return [], uid


def _describe(item: dict[str, object]) -> str:
    message = str(item.get("message", "")) or str(item.get("errorCode", "")) or "no message"
    field = item.get("field")
    if isinstance(field, str) and field and field not in message:
        return f"{field}: {message}"
    return message


def _first_problem(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{location}: {first['msg']}"
