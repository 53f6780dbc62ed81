"""Strict reading of JSON request bodies.

CXone refuses what it does not understand; so does the emulator. Each helper names the full
field path in its error (`thread.idOnExternalPlatform`), so a failing middleware test says what
was wrong rather than just "400".
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from starlette.requests import Request

from cxone_emulator.errors import CxoneError, invalid

JsonObject = dict[str, Any]

_MISSING = object()


async def read_json_object(request: Request, *, allow_empty: bool = False) -> JsonObject:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise CxoneError(400, "request body is required", "InvalidJson")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CxoneError(400, f"malformed JSON: {exc}", "InvalidJson") from exc
    if not isinstance(data, dict):
        raise CxoneError(400, "request body must be a JSON object", "InvalidJson")
    return data


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _lookup(body: JsonObject, path: str) -> object:
    """Follow a dotted path; a missing step or a non-object parent counts as missing."""
    current: object = body
    walked = ""
    for key in path.split("."):
        if current is None or current is _MISSING:
            return _MISSING
        if not isinstance(current, dict):
            raise invalid(walked, "must be an object", "InvalidType")
        current = current.get(key, _MISSING)
        walked = _join(walked, key)
    return current


def required(body: JsonObject, path: str) -> object:
    value = _lookup(body, path)
    if value is _MISSING or value is None:
        raise invalid(path, "is required", "MissingField")
    return value


def required_str(body: JsonObject, path: str, *, allow_empty: bool = False) -> str:
    value = required(body, path)
    if not isinstance(value, str):
        raise invalid(path, "must be a string", "InvalidType")
    if not allow_empty and not value.strip():
        raise invalid(path, "must not be empty", "InvalidValue")
    return value


def optional_str(body: JsonObject, path: str) -> str | None:
    value = _lookup(body, path)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, str):
        raise invalid(path, "must be a string", "InvalidType")
    return value


def required_bool(body: JsonObject, path: str) -> bool:
    value = required(body, path)
    if not isinstance(value, bool):
        raise invalid(path, "must be a boolean", "InvalidType")
    return value


def optional_bool(body: JsonObject, path: str) -> bool | None:
    value = _lookup(body, path)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(path, "must be a boolean", "InvalidType")
    return value


def optional_int(body: JsonObject, path: str) -> int | None:
    value = _lookup(body, path)
    if value is _MISSING or value is None:
        return None
    # bool is an int in Python, never in JSON schemas.
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(path, "must be an integer", "InvalidType")
    return value


def optional_number(body: JsonObject, path: str) -> float | None:
    value = _lookup(body, path)
    if value is _MISSING or value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(path, "must be a number", "InvalidType")
    return float(value)


def required_object(body: JsonObject, path: str) -> JsonObject:
    value = required(body, path)
    if not isinstance(value, dict):
        raise invalid(path, "must be an object", "InvalidType")
    return value


def optional_object(body: JsonObject, path: str) -> JsonObject | None:
    value = _lookup(body, path)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(path, "must be an object", "InvalidType")
    return value


def optional_list(body: JsonObject, path: str) -> list[Any] | None:
    value = _lookup(body, path)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, list):
        raise invalid(path, "must be an array", "InvalidType")
    return value


def required_list(body: JsonObject, path: str, *, allow_empty: bool = False) -> list[Any]:
    value = optional_list(body, path)
    if value is None:
        raise invalid(path, "is required", "MissingField")
    if not allow_empty and not value:
        raise invalid(path, "must not be empty", "InvalidValue")
    return value


def one_of(body: JsonObject, path: str, choices: Collection[str]) -> str:
    value = required_str(body, path)
    if value not in choices:
        raise invalid(path, f"must be one of {', '.join(sorted(choices))}", "InvalidValue")
    return value


def iso_datetime(body: JsonObject, path: str, *, required_field: bool = True) -> datetime | None:
    text = required_str(body, path) if required_field else optional_str(body, path)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise invalid(path, "must be an ISO-8601 date-time", "InvalidValue") from exc


def object_items(body: JsonObject, path: str, items: list[Any]) -> list[JsonObject]:
    """Check that every element of an array is an object, naming `path[i]` otherwise."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid(f"{path}[{index}]", "must be an object", "InvalidType")
    return items


def attachments(body: JsonObject, path: str = "attachments") -> list[JsonObject]:
    items = object_items(body, path, optional_list(body, path) or [])
    for index, item in enumerate(items):
        url = item.get("url")
        if url is None:
            raise invalid(f"{path}[{index}].url", "is required", "MissingField")
        if not isinstance(url, str):
            raise invalid(f"{path}[{index}].url", "must be a string", "InvalidType")
        name = item.get("friendlyName")
        if name is not None and not isinstance(name, str):
            raise invalid(f"{path}[{index}].friendlyName", "must be a string", "InvalidType")
    return items


MESSAGE_CONTENT_TYPES = frozenset(
    {"TEXT", "FILE", "PLUGIN", "QUICK_REPLIES", "LIST_PICKER", "RICH_LINK", "ADAPTIVE_CARD"}
)


def message_content(body: JsonObject, path: str = "messageContent") -> JsonObject:
    content = required_object(body, path)
    if one_of(body, f"{path}.type", MESSAGE_CONTENT_TYPES) == "TEXT":
        required_object(body, f"{path}.payload")
        required_str(body, f"{path}.payload.text", allow_empty=True)
    # A customer's choice of a button or list item carries the action's postback beside the
    # text (as NICE's chat SDKs send it); it is recorded with the message.
    optional_str(body, f"{path}.postback")
    return content
