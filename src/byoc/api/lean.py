"""Hot routes without FastAPI's per-request machinery, with the same contract.

FastAPI's dependency solving, body validation and response-model serialization cost a hot
route more than its own work does (profile in bench/README.md). A lean route takes the
`Request`, validates the body with pydantic's JSON parser directly (`parse_body`), and answers
with bytes it serialized itself (`json_response`). Errors stay the same: a body that fails
validation raises FastAPI's `RequestValidationError` with the locations FastAPI would give
(`body.<field>`), so `byoc.api.problems` answers 400 malformed-json / 422 invalid-input as for
every other route. `documented_body` keeps the request body in the OpenAPI description.
"""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic
from fastapi import Response
from fastapi.exceptions import RequestValidationError

M = TypeVar("M", bound=pydantic.BaseModel)


def parse_body(model: type[M], body: bytes, content_type: str | None = None) -> M:
    """The body as `model`, or the `RequestValidationError` FastAPI would raise: a missing
    body or one that is not declared JSON is "Field required" at `body`, as FastAPI has it."""
    media = (content_type or "application/json").partition(";")[0].strip().lower()
    is_json = media == "application/json" or media.endswith("+json")
    if not body or not is_json:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        return model.model_validate_json(body)
    except pydantic.ValidationError as exc:
        problems = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(problems) from exc


def json_response(model: pydantic.BaseModel, status_code: int = 200) -> Response:
    return Response(
        model.model_dump_json(by_alias=True),
        status_code=status_code,
        media_type="application/json",
    )


def documented_body(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a lean route: its JSON request body, described by `model` (nested
    models written out in place: a `$ref` here would point into the OpenAPI document's root)."""
    schema = _inline(model.model_json_schema(by_alias=True))
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
