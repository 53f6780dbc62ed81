"""Calls from "CXone" to the middleware's Integration Box (contract §2), with the token dance.

CXone sends the token it holds for the integration (or none), and on a 401 fetches a new one
from the Authorization URL and retries once (§2.1). 5xx answers, timeouts and connection errors
are retried `callback_retries` times with the same body, so the DE message id repeats and the
middleware can deduplicate. Every HTTP attempt, token calls included, lands in the callback log.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from cxone_emulator.config import IntegrationConfig
from cxone_emulator.recorder import REDACTED, EventLog, decode_body
from cxone_emulator.state import EmulatorState, IntegrationToken
from cxone_emulator.validation import JsonObject


@dataclass
class CallbackResult:
    status: int | None
    body: object
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return self.status is None or self.status >= 500

    def to_json(self) -> JsonObject:
        return {"status": self.status, "body": self.body, "error": self.error}


class CallbackClient:
    def __init__(self, state: EmulatorState, log: EventLog) -> None:
        self.state = state
        self.log = log
        # Set by the app's lifespan: one pooled client for all callbacks while the app runs.
        self.http_client: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        if self.http_client is None:
            raise RuntimeError("callbacks need the app's lifespan to have started")
        return self.http_client

    async def call(
        self,
        integration: IntegrationConfig,
        path: str,
        body: JsonObject,
        headers: Mapping[str, str] | None = None,
    ) -> CallbackResult:
        """POST `body` (and `headers`: the same on every retry) to the integration's box."""
        url = integration.box_url.rstrip("/") + path
        refreshed = False
        retries = 0
        while True:
            cached = self.state.integration_tokens.get(integration.id)
            result = await self._post(url, body, cached.access_token if cached else None, headers)
            if result.status == 401 and not refreshed:
                refreshed = True
                token_error = await self._refresh_token(integration)
                if token_error is not None:
                    return CallbackResult(result.status, result.body, token_error)
                continue
            if result.retryable and retries < self.state.config.callback_retries:
                retries += 1
                # A short pause, growing per attempt, so a briefly restarting middleware recovers.
                await asyncio.sleep(0.05 * retries)
                continue
            return result

    async def _post(
        self,
        url: str,
        body: JsonObject,
        token: str | None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> CallbackResult:
        headers = {**(extra_headers or {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            status, content = await self._send(url, body, headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            result = CallbackResult(None, None, _describe(exc))
        else:
            result = CallbackResult(status, decode_body(content))
        self._record(url, body, result, had_token=token is not None)
        return result

    async def _send(self, url: str, body: JsonObject, headers: dict[str, str]) -> tuple[int, bytes]:
        async with self.http.post(url, json=body, headers=headers, allow_redirects=False) as answer:
            return answer.status, await answer.read()

    async def _refresh_token(self, integration: IntegrationConfig) -> str | None:
        """Fetch and cache a new token; return an error description when that fails."""
        request = {
            "client_id": integration.client_id,
            "client_secret": integration.client_secret,
            "grant_type": "client_credentials",
        }
        logged = {**request, "client_secret": REDACTED}
        try:
            status, content = await self._send(integration.authorization_url, request, {})
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = _describe(exc)
            self._record(integration.authorization_url, logged, CallbackResult(None, None, error))
            return f"token request failed: {error}"
        body = decode_body(content)
        result = CallbackResult(status, body)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not result.ok or not isinstance(token, str):
            result.error = "token endpoint did not return an access_token"
            self._record(integration.authorization_url, logged, result)
            return f"token request failed with status {status}"
        self._record(integration.authorization_url, logged, result)
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        ttl = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        self.state.integration_tokens[integration.id] = IntegrationToken(token, time.time() + ttl)
        return None

    def _record(
        self, url: str, body: JsonObject, result: CallbackResult, *, had_token: bool = False
    ) -> None:
        self.log.append(
            {
                "method": "POST",
                "url": url,
                "status": result.status,
                "requestBody": body,
                "responseBody": result.body,
                "error": result.error,
                "hadToken": had_token,
            }
        )


def _describe(exc: BaseException) -> str:
    """`ConnectError: …` / `Timeout: …`: what failed, in the words the callback log uses."""
    if isinstance(exc, TimeoutError):
        kind = "Timeout"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        kind = "ConnectError"
    else:
        kind = type(exc).__name__
    return f"{kind}: {exc}".rstrip(": ")
