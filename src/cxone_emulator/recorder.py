"""Request and callback logs, so tests can assert on the exact traffic in both directions.

`RequestRecorder` is a pure ASGI middleware (not Starlette's BaseHTTPMiddleware) so it sees the
raw body on the way in and the final status and body on the way out, including responses made
by the fault injector that sits inside it.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cxone_emulator.clock import now_iso

JsonObject = dict[str, Any]

REDACTED = "<redacted>"
_SECRET_HEADERS = frozenset({"authorization", "cookie"})


def decode_body(raw: bytes) -> object:
    """Parsed JSON when the body is JSON, else text, else None for an empty body."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


class EventLog:
    """A bounded, numbered log; the newest `limit` entries survive."""

    def __init__(self, limit: int) -> None:
        self._entries: deque[JsonObject] = deque(maxlen=limit)
        self._seq = 0

    def append(self, entry: JsonObject) -> JsonObject:
        self._seq += 1
        stamped = {"seq": self._seq, "at": now_iso(), **entry}
        self._entries.append(stamped)
        return stamped

    def entries(self) -> list[JsonObject]:
        return list(self._entries)

    def clear(self) -> None:
        # Sequence numbers keep growing so entries from before and after a clear never collide.
        self._entries.clear()


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name = name_bytes.decode("latin-1").lower()
        headers[name] = REDACTED if name in _SECRET_HEADERS else value_bytes.decode("latin-1")
    return headers


class RequestRecorder:
    def __init__(self, app: ASGIApp, log: EventLog, is_recorded: Callable[[str], bool]) -> None:
        self.app = app
        self.log = log
        self.is_recorded = is_recorded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.is_recorded(scope["path"]):
            await self.app(scope, receive, send)
            return

        # Read the whole body first: a faulted request is answered without anyone reading it,
        # and the log must still show what was sent.
        request_chunks: list[bytes] = []
        response_chunks: list[bytes] = []
        status = 500
        while True:
            incoming = await receive()
            if incoming["type"] != "http.request":
                break
            request_chunks.append(incoming.get("body", b""))
            if not incoming.get("more_body", False):
                break
        request_body = b"".join(request_chunks)
        replayed = False

        async def replaying_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": request_body, "more_body": False}
            return await receive()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                response_chunks.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replaying_receive, recording_send)
        finally:
            # Recorded even when the app raised, so a crash shows up in the log as a 500.
            self.log.append(
                {
                    "method": scope["method"],
                    "path": scope["path"],
                    "query": scope.get("query_string", b"").decode("latin-1"),
                    "status": status,
                    "requestBody": decode_body(request_body),
                    "responseBody": decode_body(b"".join(response_chunks)),
                    "headers": _headers(scope.get("headers", [])),
                }
            )


def filter_requests(
    entries: list[JsonObject], path_contains: str | None, method: str | None
) -> list[JsonObject]:
    return [
        entry
        for entry in entries
        if (not path_contains or path_contains in entry["path"])
        and (not method or entry["method"].upper() == method.upper())
    ]
