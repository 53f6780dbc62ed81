"""CORS for the widget's upload route: the widget runs on the platform's pages, so its uploads
are cross-origin. Only the channel's allowed origins may upload, and every answer (a 413 from
the body limit included) carries the headers the browser needs to read it."""

from __future__ import annotations

import json
import re

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byoc.api import problems
from byoc.api.deps import database_of
from byoc.api.text_guard import unstorable
from byoc.channels import WEBCHAT
from byoc.channels.webchat.config import parse_settings
from byoc.errors import InvalidInput
from byoc.store import StoreError, channels

UPLOAD_PATH = re.compile(r"^/webchat/v1/channels/(?P<channel>[^/]+)/attachments$")
ALLOWED_HEADERS = (
    "content-type, x-byoc-visitor, x-byoc-user, x-byoc-user-signature, x-byoc-user-expires"
)


class WidgetCorsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = UPLOAD_PATH.match(scope.get("path", "")) if scope["type"] == "http" else None
        origin = Headers(scope=scope).get("origin") if match else None
        if match is None or origin is None:
            await self.app(scope, receive, send)  # same-origin or not the upload route
            return
        try:
            allowed = await self._allowed(scope, match.group("channel"), origin)
        except StoreError as exc:
            answer = problems.response_for(exc)  # 503 with Retry-After
            assert answer is not None
            await answer(scope, receive, send)
            return
        if not allowed:
            await _answer(
                send,
                403,
                {
                    "type": "urn:byoc:problem:forbidden-origin",
                    "title": "Forbidden origin",
                    "status": 403,
                    "detail": "this page may not upload to this channel",
                },
            )
            return
        cors = [
            (b"access-control-allow-origin", origin.encode()),
            (b"vary", b"Origin"),
        ]
        if scope["method"] == "OPTIONS":
            await _answer(
                send,
                204,
                None,
                [
                    *cors,
                    (b"access-control-allow-methods", b"POST"),
                    (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                    (b"access-control-max-age", b"600"),
                ],
            )
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _allowed(self, scope: Scope, channel_id: str, origin: str) -> bool:
        if unstorable(channel_id):
            return True  # no such channel: the text guard inside answers 422
        db = database_of(HTTPConnection(scope))
        channel = await db.run_read(channels.get_channel, channel_id)
        if channel is None or channel.adapter != WEBCHAT:
            return True  # let the route answer 404 as usual
        try:
            return parse_settings(channel.settings).origin_allowed(origin)
        except InvalidInput:
            return False


async def _answer(
    send: Send,
    status: int,
    body: dict[str, object] | None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    payload = b"" if body is None else json.dumps(body).encode()
    response_headers = list(headers or [])
    if body is not None:
        response_headers.append((b"content-type", b"application/problem+json"))
    response_headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    await send({"type": "http.response.body", "body": payload})
