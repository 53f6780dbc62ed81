"""The busiest routes answered by `byoc.api.hot`: same contract as through the router."""

from __future__ import annotations

import json

import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute

from byoc.api.hot import HotRoutes
from tests.support import loopback
from tests.support.problems import assert_problem
from tests.support.stack import Stack, box_token


def hot_routes(app: object) -> HotRoutes:
    """The HotRoutes layer in a built middleware stack."""
    layer = app
    while not isinstance(layer, HotRoutes):
        layer = layer.app  # type: ignore[attr-defined]
    return layer


def test_the_three_busiest_routes_and_the_token_endpoint_are_hot(stack: Stack) -> None:
    stack.customer_says("warm up")  # the middleware stack is built on the first request
    assert stack.server is not None
    routes = {route.path for route, *_ in hot_routes(stack.server.app.middleware_stack)._routes}
    assert routes == {
        "/api/v1/channels/{channel_id}/messages",
        "/integration/box/1.0/posts/{post_id}/messages",
        "/integration/box/2.0/channel/{channel_id}/outbound",
        "/integration/box/1.0/token",
    }


def test_hot_routes_keep_request_ids_and_route_labels(stack: Stack) -> None:
    accepted = stack.signed(
        "POST",
        f"/api/v1/channels/{stack.channel_id}/messages",
        {"customer": {"id": "hot-1"}, "text": "hello"},
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["content-type"] == "application/json"
    assert accepted.headers["x-request-id"]
    assert accepted.json()["threadId"].startswith("thr_")
    token = box_token(stack)
    reply = loopback.post(
        f"{stack.url}/integration/box/2.0/channel/{stack.channel_id}/outbound",
        json={
            "thread": {"idOnExternalPlatform": accepted.json()["threadId"]},
            "messageContent": {"type": "TEXT", "payload": {"text": "hi"}},
            "id": "de-hot-1",
        },
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": "req-hot-1"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-request-id"] == "req-hot-1"
    metrics = loopback.get(stack.url + "/metrics").text
    for template in (
        "/api/v1/channels/{channel_id}/messages",
        "/integration/box/2.0/channel/{channel_id}/outbound",
    ):
        assert f'route="{template}",status_class="2xx"' in metrics, template


@pytest.mark.parametrize(
    "path",
    ["/integration/box/2.0/channel/{channel}/outbound", "/integration/box/1.0/posts/p1/messages"],
)
def test_hot_box_routes_refuse_bad_bodies(stack: Stack, path: str) -> None:
    url = stack.url + path.format(channel=stack.channel_id)
    headers = {"Authorization": f"Bearer {box_token(stack)}", "Content-Type": "application/json"}
    assert_problem(
        loopback.post(url, content=b'{"thread": ', headers=headers), 400, "malformed-json"
    )
    invalid = assert_problem(
        loopback.post(url, json={"messageContent": "not an object"}, headers=headers),
        422,
        "invalid-input",
    )
    assert any(e["field"].startswith("messageContent") for e in invalid["errors"])
    assert_problem(
        loopback.post(
            url,
            json={
                "thread": {"idOnExternalPlatform": "thr_nope"},
                "messageContent": {"type": "TEXT", "payload": {"text": "x"}},
            },
            headers=headers,
        ),
        404,
        "conversation-not-found",
    )


def test_an_endpoint_with_fastapi_parameters_cannot_be_hot() -> None:
    router = APIRouter()

    @router.post("/things/{thing_id}")
    async def with_body(thing_id: str, body: dict[str, str]) -> dict[str, str]:
        return body

    @router.post("/lean/{thing_id}")
    async def lean(thing_id: str, request: Request) -> Response:
        return Response(thing_id)

    app = FastAPI()
    by_path = {r.path: r for r in router.routes if isinstance(r, APIRoute)}
    with pytest.raises(TypeError, match="path parameters and `request`"):
        HotRoutes(app, [by_path["/things/{thing_id}"]])
    HotRoutes(app, [by_path["/lean/{thing_id}"]])


def test_hot_routes_refuse_a_missing_or_non_json_body_as_the_router_did(stack: Stack) -> None:
    url = f"{stack.url}/integration/box/2.0/channel/{stack.channel_id}/outbound"
    auth = {"Authorization": f"Bearer {box_token(stack)}"}
    for content, content_type in ((b"", "application/json"), (b"{}", "text/plain")):
        headers = {**auth, "Content-Type": content_type}
        body = assert_problem(
            loopback.post(url, content=content, headers=headers), 422, "invalid-input"
        )
        assert body["errors"] == [{"field": "", "message": "Field required"}]


def test_openapi_describes_the_hot_bodies_without_dangling_references(stack: Stack) -> None:
    spec = loopback.get(stack.url + "/openapi.json").json()
    text = json.dumps(spec)
    assert '"#/$defs/' not in text
    operation = spec["paths"]["/api/v1/channels/{channel_id}/messages"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["properties"]["customer"]["properties"]["id"]["type"] == "string"
