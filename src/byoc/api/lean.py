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
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError

from byoc.runtime import Runtime

M = TypeVar("M", bound=pydantic.BaseModel)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def parse_body(model: type[M], body: bytes) -> M:
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
    """`openapi_extra` for a lean route: its JSON request body, described by `model`."""
    schema = model.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    }
