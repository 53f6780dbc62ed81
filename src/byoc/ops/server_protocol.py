"""The HTTP/1.1 protocol `byoc serve` runs: uvicorn's httptools protocol plus two guards.

uvicorn bounds the time between requests (`timeout_keep_alive`) but not the time a request's
head takes to arrive, and it has no connection cap that spares new arrivals (its
`limit_concurrency` answers every newcomer 503 once the limit is reached, so a crowd of slow
clients would lock out `/healthz` and every real customer). This subclass adds:

- a header deadline: the request line and headers must arrive within `header_timeout` seconds
  of the request's first byte (of the connection, for the first request). A client that
  dribbles one header line every few seconds, or connects and sends nothing, is answered 408
  and closed.
- a connection bound: past `max_connections` open connections (WebSockets included), the
  connection that has waited longest without a request in progress (still sending its head,
  or idle between requests) is closed to make room. Only when every connection is busy is the
  newcomer refused (503).

The guards are bound into a class by `guarded_protocol(limits)`, one class per server, handed
to uvicorn as its `http` protocol.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 30\r\nconnection: close\r\n\r\nthe request head came too slow"
)
_FULL_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 29\r\nretry-after: 1\r\nconnection: close\r\n\r\ntoo many connections; retry"
)


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    max_connections: int


class GuardedHttpProtocol(HttpToolsProtocol):
    limits: ConnectionLimits
    # Connections without a request in progress, oldest first (a dict keeps insertion order
    # and removes in O(1)); shared by every connection of one server.
    waiting: dict[GuardedHttpProtocol, None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            self.transport.write(_FULL_RESPONSE)
            self.transport.close()

    def _make_room(self) -> bool:
        for oldest in self.waiting:
            if oldest is not self:
                oldest._stop_waiting()
                oldest.transport.close()
                return True
        return False

    def _await_head(self) -> None:
        self.waiting[self] = None
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(
                self.limits.header_timeout, self._head_timed_out
            )

    def _stop_waiting(self) -> None:
        self.waiting.pop(self, None)
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        self.waiting.pop(self, None)
        if not self.transport.is_closing():
            self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_deadline is None:  # a later request on a kept-alive connection
            self._head_deadline = self.loop.call_later(
                self.limits.header_timeout, self._head_timed_out
            )

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            # Idle between requests: uvicorn's keep-alive timer runs; under pressure this
            # connection may be closed to make room.
            self.waiting[self] = None


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpProtocol]:
    """A protocol class with `limits` and its own registry, for one server."""
    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {"limits": limits, "waiting": {}},
    )
