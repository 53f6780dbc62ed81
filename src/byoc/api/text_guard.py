"""Text no store can hold is refused at the door: NUL characters and lone UTF-16 surrogates;
and so are the numbers no JSON reader takes back, `NaN` and `Infinity` (a literal too large for
a double is the box's to refuse: `byoc.box.schemas`).

PostgreSQL refuses NUL in `text` and `jsonb`; SQLite would store it; neither can encode a lone
surrogate as UTF-8. Left to the store, such a value is a 503 on one database and not on the
other, and a platform retries a 503 forever. Python's JSON parsers take the non-finite numbers,
and the middleware would hand them on as bare `NaN` to browsers and platforms, whose strict
parsers refuse the whole document: one such value in an agent's message would break every
widget frame that carries it. JSON can carry the text only as `\\u` escapes, a form only as
`%00`, and the path only once decoded; so the check is a byte scan, and a body with nothing
suspicious costs one regular-expression search and two substring searches. Such a request is a
422 invalid-input, the same on every route and database.
"""

from __future__ import annotations

import json
import math
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byoc.json_leaves import leaves

# Candidates only, cleared by parsing: an escaped backslash before "u0000", and the words NaN
# and Infinity anywhere (inside a string they make no refusal). A number too large for a double
# parses as infinity without either word: the box's bodies, the only ones that take numbers of
# any size, refuse it themselves (`byoc.box.schemas`).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _suspect(body: bytes) -> bool:
    return bool(_SUSPECT_ESCAPE.search(body)) or b"NaN" in body or b"Infinity" in body


_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_FORM_NUL = b"%00"


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return True  # FastAPI reads a body without a content type as JSON
    media = content_type.partition(b";")[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> float:
    raise _NotFinite(name)


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NotFinite(literal)
    return value


def _bad_json_text(body: bytes) -> bool:
    if not _suspect(body):
        return False
    try:
        document = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite)
    except _NotFinite:
        return True
    except (ValueError, RecursionError):
        return False  # not JSON: the route's own parser answers 400
    return any(isinstance(leaf, str) and _BAD_CHAR.search(leaf) for leaf in leaves(document))


def unstorable(text: str) -> bool:
    """Whether `text` holds what this guard refuses (another layer may read a path before it)."""
    return _BAD_CHAR.search(text) is not None


def refusal(where: str) -> Message:
    body = json.dumps(
        {
            "type": "urn:byoc:problem:invalid-input",
            "title": "Invalid input",
            "status": 422,
            "detail": f"the {where} holds a NUL character, a lone surrogate or a number that"
            " is not finite",
            "errors": [
                {
                    "field": "",
                    "message": "NUL characters, lone surrogates, NaN and Infinity are refused",
                }
            ],
        }
    ).encode()
    return {"type": "http.response.body", "body": body}


class TextGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", "") or _FORM_NUL in scope.get("query_string", b""):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self._refuse(send, "URL")
            return
        if scope["type"] == "websocket" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        content_type = None
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                content_type = value
                break
        is_json = _is_json(content_type)
        is_form = (
            content_type is not None
            and content_type.partition(b";")[0].strip().lower()
            == b"application/x-www-form-urlencoded"
        )
        if not (is_json or is_form):
            await self.app(scope, receive, send)
            return
        # The body is read here and handed on unchanged; its size is bounded by the body limit.
        messages: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if (is_json and _bad_json_text(body)) or (
            is_form and (_FORM_NUL in body or b"\x00" in body)
        ):
            await self._refuse(send, "body")
            return

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, where: str) -> None:
        body = refusal(where)
        await send(
            {
                "type": "http.response.start",
                "status": 422,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body["body"])).encode()),
                ],
            }
        )
        await send(body)
