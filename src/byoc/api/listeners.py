"""What each listener serves when `BYOC_OPS_PORT` is set.

`byoc serve` then runs one app on two sockets: the main listener (the public one) and the
operations listener. A connection's `scope["server"]` is the address of the socket it came in
on, so the port tells the two apart, and both share the app's state (one `Metrics`, one store).
The operations listener serves `/metrics`, `/healthz` and `/readyz` only; the main listener
serves everything but `/metrics`. A refused path gets the same 404 as a route that does not
exist, so the main listener does not tell whether an operations port is in use.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from byoc.api.problems import problem

OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
ONLY_ON_OPS_LISTENER = frozenset({"/metrics"})


def on_ops_listener(scope: Scope, ops_port: int) -> bool:
    server = scope.get("server")
    return server is not None and server[1] == ops_port


class ListenerSplit:
    """Refuses, per listener, the paths that belong to the other one (404 problem+json)."""

    def __init__(self, app: ASGIApp, *, ops_port: int) -> None:
        self.app = app
        self.ops_port = ops_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if on_ops_listener(scope, self.ops_port):
            allowed = kind == "http" and path in OPS_PATHS
        else:
            allowed = path not in ONLY_ON_OPS_LISTENER
        if allowed:
            await self.app(scope, receive, send)
        elif kind == "http":
            await problem(404, "not-found", "Not found", "Not Found")(scope, receive, send)
        else:  # a WebSocket handshake, closed as the router closes one it has no route for
            await send({"type": "websocket.close", "code": 1000})
