"""Request telemetry as pure ASGI middleware: request ids and the request latency histogram.

One layer does both jobs so that every request pays for one extra frame, not two. The
request id is taken from an incoming `X-Request-Id` when it is sane (a load balancer's or the
platform's), made up otherwise, bound to the logging context and echoed on the response.
Latency is labelled by route template (`/integration/box/2.0/channel/{channel_id}/outbound`),
never the raw path, so the label set stays small.
"""

from __future__ import annotations

import re
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byoc.ops import logging as ops_logging
from byoc.ops.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
UNMATCHED_ROUTE = "unmatched"


def new_request_id() -> str:
    return secrets.token_hex(12)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            return value.decode("ascii") if _SANE_REQUEST_ID.fullmatch(value) else None
    return None


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) else UNMATCHED_ROUTE


class RequestTelemetryMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or new_request_id()
        echoed = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status = 500  # what the client sees when the app raises before answering

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        tokens = ops_logging.enter_request(request_id, scope)
        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            self.metrics.http_request_duration.labels(
                scope["method"], route_template(scope), f"{status // 100}xx"
            ).observe(time.perf_counter() - started)
            ops_logging.exit_request(tokens)
