"""CXone access tokens: fetched with the password grant, cached, refreshed before expiry.

Contract §3.1: `POST {token_url}` with form `grant_type=password&username=<access key id>&
password=<access key secret>` and HTTP Basic `client_id:client_secret`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from byoc.cxone import _wire
from byoc.http import HttpClient


class TokenResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    access_token: str
    token_type: str = "Bearer"
    expires_in: float = 3600.0


class TokenManager:
    """Hands out a valid bearer token; concurrent callers share one refresh."""

    def __init__(
        self,
        http: HttpClient,
        token_url: str,
        access_key_id: str,
        access_key_secret: str,
        client_id: str,
        client_secret: str,
        *,
        refresh_margin_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 5.0,
        on_refresh: Callable[[], None] | None = None,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._access_key_id = access_key_id
        self._access_key_secret = access_key_secret
        self._basic_auth = (client_id, client_secret)
        self._refresh_margin = refresh_margin_seconds
        self._clock = clock
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        self.refreshes = 0
        self._on_refresh = on_refresh

    async def get(self) -> str:
        """A token that is not within the refresh margin of its expiry."""
        token = self._cached()
        if token is not None:
            return token
        async with self._lock:
            # Whoever held the lock before us may have refreshed already.
            token = self._cached()
            if token is not None:
                return token
            return await self._refresh()

    def invalidate(self, token: str) -> None:
        """Forget `token` after DE refused it, unless a newer token has replaced it already."""
        if self._token == token:
            self._token = None

    def _cached(self) -> str | None:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        return None

    async def _refresh(self) -> str:
        requested_at = self._clock()
        request = self._http.build_request(
            "POST",
            self._token_url,
            form={
                "grant_type": "password",
                "username": self._access_key_id,
                "password": self._access_key_secret,
            },
            headers={"Accept": "application/json"},
            basic_auth=self._basic_auth,
        )
        response = await _wire.send(
            self._http,
            request,
            time_limit=self._timeout,
            auth_statuses={400, 401, 403},
        )
        body = _wire.decode(response, TokenResponse)
        # Never refresh more than halfway into a token's life, so a short-lived token (below
        # the margin) is still used for a while instead of being refetched on every call.
        margin = min(self._refresh_margin, body.expires_in / 2)
        self._token = body.access_token
        self._refresh_at = requested_at + body.expires_in - margin
        self.refreshes += 1
        if self._on_refresh is not None:
            self._on_refresh()
        return body.access_token
