"""TokenManager against a test transport (the seam of `byoc.http`): caching, single flight,
invalidation, errors."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qs

import pytest

from byoc.cxone import CxoneAuthError, CxoneError, CxoneUnavailable, TokenManager
from byoc.http import HttpClient, HttpRequest, HttpResponse, HttpTransportError
from byoc.http import response as answer

TOKEN_URL = "https://auth.example.test/auth/token"
Answer = Callable[[HttpRequest], HttpResponse]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenServer:
    """Issues token-1, token-2, ... and records every request."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self.expires_in = 3600
        self.delay = 0.0
        self.answer: Answer | None = None
        self.error: Exception | None = None

    async def __call__(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        if self.answer is not None:
            return self.answer(request)
        return answer(
            request,
            200,
            json={
                "access_token": f"token-{len(self.requests)}",
                "token_type": "Bearer",
                "expires_in": self.expires_in,
                "id_token": "x.y.z",
            },
        )


@pytest.fixture
def server() -> TokenServer:
    return TokenServer()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def http(server: TokenServer) -> AsyncIterator[HttpClient]:
    async with HttpClient(transport=server) as client:
        yield client


@pytest.fixture
def tokens(http: HttpClient, clock: FakeClock) -> TokenManager:
    return TokenManager(
        http,
        TOKEN_URL,
        "key-id",
        "key-secret",
        "app-id",
        "app-secret",
        refresh_margin_seconds=60,
        clock=clock,
    )


async def test_password_grant_with_basic_client_auth(
    tokens: TokenManager, server: TokenServer
) -> None:
    assert await tokens.get() == "token-1"

    (request,) = server.requests
    assert request.method == "POST"
    assert str(request.url) == TOKEN_URL
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["password"],
        "username": ["key-id"],
        "password": ["key-secret"],
    }
    expected = base64.b64encode(b"app-id:app-secret").decode()
    assert request.headers["authorization"] == f"Basic {expected}"
    assert tokens.refreshes == 1


async def test_cached_until_refresh_margin(
    tokens: TokenManager, server: TokenServer, clock: FakeClock
) -> None:
    assert await tokens.get() == "token-1"
    clock.now += 3600 - 60 - 1
    assert await tokens.get() == "token-1"
    clock.now += 1
    assert await tokens.get() == "token-2"
    assert len(server.requests) == 2
    assert tokens.refreshes == 2


async def test_short_lived_token_is_still_reused(
    tokens: TokenManager, server: TokenServer, clock: FakeClock
) -> None:
    # A TTL below the margin would otherwise mean one token request per call.
    server.expires_in = 30
    assert await tokens.get() == "token-1"
    clock.now += 14
    assert await tokens.get() == "token-1"
    clock.now += 1
    assert await tokens.get() == "token-2"


async def test_concurrent_callers_share_one_refresh(
    tokens: TokenManager, server: TokenServer
) -> None:
    server.delay = 0.05
    results = await asyncio.gather(*(tokens.get() for _ in range(20)))
    assert set(results) == {"token-1"}
    assert len(server.requests) == 1
    assert tokens.refreshes == 1


async def test_invalidate_drops_only_the_named_token(
    tokens: TokenManager, server: TokenServer
) -> None:
    first = await tokens.get()
    tokens.invalidate(first)
    second = await tokens.get()
    assert second == "token-2"
    # A late 401 for the old token must not throw away the fresh one.
    tokens.invalidate(first)
    assert await tokens.get() == second
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("status", "body", "text"),
    [
        (400, {"error": "invalid_grant", "error_description": "bad access key"}, "bad access key"),
        (401, {"error": "invalid_client"}, "invalid_client"),
    ],
)
async def test_refused_credentials_raise_auth_error(
    tokens: TokenManager, server: TokenServer, status: int, body: dict[str, str], text: str
) -> None:
    server.answer = lambda request: answer(request, status, json=body)
    with pytest.raises(CxoneAuthError) as caught:
        await tokens.get()
    assert caught.value.status == status
    assert f"POST /auth/token answered {status}: {text}" in str(caught.value)


async def test_server_error_is_unavailable(tokens: TokenManager, server: TokenServer) -> None:
    server.answer = lambda request: answer(request, 503, headers={"Retry-After": "7"})
    with pytest.raises(CxoneUnavailable) as caught:
        await tokens.get()
    assert caught.value.retry_after == 7


async def test_transport_error_is_unavailable_and_the_next_call_retries(
    tokens: TokenManager, server: TokenServer
) -> None:
    server.error = HttpTransportError("ClientConnectorError: connection refused")
    with pytest.raises(CxoneUnavailable, match="ClientConnectorError") as caught:
        await tokens.get()
    assert isinstance(caught.value.__cause__, HttpTransportError)
    server.error = None
    assert await tokens.get() == "token-2"
    assert tokens.refreshes == 1


async def test_unreadable_token_body_is_a_plain_cxone_error(
    tokens: TokenManager, server: TokenServer
) -> None:
    server.answer = lambda request: answer(request, 200, json={"token": "no access_token key"})
    with pytest.raises(CxoneError, match="access_token") as caught:
        await tokens.get()
    assert type(caught.value) is CxoneError
