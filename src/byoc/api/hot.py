"""The busiest routes, answered before Starlette's routing and FastAPI's request handling.

`HotRoutes` is the innermost of our ASGI layers: for a request that matches one of its routes
it calls that route's own endpoint function at once; everything else goes on to the router.
Request ids, the latency histogram (labelled by the same route template: `scope["route"]` is
set), body limits and CORS are the outer layers and apply as before; errors become the same
problem responses (`byoc.api.problems.response_for`). The routes stay declared on their
routers, so OpenAPI documents them and the router answers them if this layer is not installed.

Only lean endpoints qualify (`byoc.api.lean`): parameters are the path parameters plus
`request: Request`, and the result is a `Response`. That is checked when the layer is built,
so an endpoint that grows a FastAPI dependency cannot silently lose it here.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.convertors import StringConvertor
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from byoc.api import problems

Endpoint = Callable[..., Awaitable[Response]]


class HotRoutes:
    def __init__(self, app: ASGIApp, routes: Sequence[APIRoute]) -> None:
        self.app = app
        self._routes: list[tuple[APIRoute, frozenset[str], re.Pattern[str], Endpoint]] = []
        for route in routes:
            _check_lean(route)
            self._routes.append(
                (route, frozenset(route.methods or ()), route.path_regex, route.endpoint)
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            for route, methods, regex, endpoint in self._routes:
                if method not in methods:
                    continue
                matched = regex.match(scope["path"])
                if matched is None:
                    continue
                params = matched.groupdict()
                scope["route"] = route
                scope["path_params"] = params
                response = await _answer(endpoint, Request(scope, receive), params)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _answer(endpoint: Endpoint, request: Request, params: dict[str, Any]) -> Response:
    try:
        return await endpoint(request=request, **params)
    except ClientDisconnect:
        # The client left while sending its body; nobody reads this answer. FastAPI says 400.
        return Response(status_code=400)
    except Exception as exc:
        response = problems.response_for(exc)
        if response is None:
            raise
        return response


def _check_lean(route: APIRoute) -> None:
    signature = inspect.signature(route.endpoint)
    expected = {*route.param_convertors, "request"}
    if set(signature.parameters) != expected:
        raise TypeError(
            f"{route.path}: a hot route's endpoint takes its path parameters and `request` "
            f"only, not {sorted(signature.parameters)}"
        )
    for name, convertor in route.param_convertors.items():
        # The regex's groups are handed over as they are: right for plain strings only.
        if not isinstance(convertor, StringConvertor):
            raise TypeError(f"{route.path}: path parameter {name!r} is not a plain string")
