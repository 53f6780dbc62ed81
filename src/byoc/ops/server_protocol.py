"""The HTTP/1.1 protocol `byoc serve` runs: uvicorn's httptools protocol, two guards, and
responses that leave in one send.

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

It also sends each response's head and the first part of its body together (`HeadWithBody`):
uvicorn writes them one after the other, each write its own send() and its own segment on the
wire.

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


class HeadWithBody(asyncio.Transport):
    """What one request's response writes to: its head waits for its body.

    The response's head (its status line and headers: the first write that is not an interim
    `1xx` such as `100 Continue`) is held until the next write (the body, or its first chunk),
    and both go out in one `writelines`, one send. A head whose body does not follow within
    the same turn of the event loop (a stream whose first chunk comes later) is sent by itself
    at the end of that turn. The response's completion (`send_held`, which the protocol runs
    before uvicorn's own completion: a HEAD response has no body to carry its head) and a
    close through this object send what is held first, so nothing is held once the server may
    close the connection to make room or to shut down.

    uvicorn's cycle calls `write`, `close` and `is_closing`; flow control keeps the
    connection's own transport. Those three and `get_extra_info` are all this class answers.
    """

    __slots__ = ("_head_seen", "_held", "_loop", "_send_held_soon", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._send_held_soon: asyncio.Handle | None = None
        self._head_seen = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._cancel_send_held_soon()
            self._transport.writelines((held, data))
        elif self._head_seen or data[:10] == b"HTTP/1.1 1":
            self._transport.write(data)
        else:
            self._head_seen = True
            self._held = bytes(data)
            self._send_held_soon = self._loop.call_soon(self.send_held)

    def send_held(self) -> None:
        self._cancel_send_held_soon()
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def _cancel_send_held_soon(self) -> None:
        if self._send_held_soon is not None:
            self._send_held_soon.cancel()
            self._send_held_soon = None

    def close(self) -> None:
        self.send_held()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


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
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not previous:  # not an upgrade
            transport = HeadWithBody(self.transport, self.loop)
            cycle.transport = transport
            completed = cycle.on_response

            def on_response() -> None:
                transport.send_held()
                completed()

            cycle.on_response = on_response

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
