"""A tiny stand-in for the middleware's Integration Box, to watch the emulator's callbacks.

It implements the token endpoint and the box endpoints of contract §2 and answers 401 without
a valid bearer token, exactly as the real middleware must.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from cxone_emulator.config import ChannelConfig, EmulatorConfig, IntegrationConfig, ReplyStyle
from tests.support.emulator import Emulator, running_emulator
from tests.support.servers import serve

CLIENT_ID = "box-client"
CLIENT_SECRET = "box-secret"
CHANNEL_ID = "chat_test"
INTEGRATION_ID = "integration-1"


@dataclass
class BoxReceiver:
    calls: list[dict[str, Any]] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    # Answer 500 to this many box calls (not token calls) before succeeding.
    failures_to_inject: int = 0
    refused_recipients: set[str] = field(default_factory=set)
    # Sleep this long on this many authorised box calls, to trip the emulator's timeout.
    slow_calls_to_inject: int = 0
    slow_seconds: float = 1.0
    outbound_thread_id: str | None = "platform-thread-1"
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()
            self.valid_tokens.clear()
            self.failures_to_inject = 0
            self.slow_calls_to_inject = 0
            self.refused_recipients.clear()
            self.outbound_thread_id = "platform-thread-1"

    def expire_tokens(self) -> None:
        with self.lock:
            self.valid_tokens.clear()

    def box_calls(self) -> list[dict[str, Any]]:
        return [call for call in self.calls if call["path"] != "/token"]

    def build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/token")
        async def token(request: Request) -> JSONResponse:
            body = await request.json()
            self.calls.append({"path": "/token", "body": body, "authorization": None})
            if (body.get("client_id"), body.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            issued = secrets.token_hex(8)
            with self.lock:
                self.valid_tokens.add(issued)
            return JSONResponse(
                {"access_token": issued, "token_type": "Bearer", "expires_in": 3600}
            )

        async def guarded(request: Request) -> tuple[Any, Response | None]:
            header = request.headers.get("authorization")
            body = await request.json()
            self.calls.append(
                {
                    "path": request.url.path,
                    "body": body,
                    "authorization": header,
                    "idempotencyKey": request.headers.get("idempotency-key"),
                }
            )
            token = (header or "").removeprefix("Bearer ")
            if not header or token not in self.valid_tokens:
                return body, JSONResponse({"error": "invalid_token"}, status_code=401)
            if self.slow_calls_to_inject > 0:
                self.slow_calls_to_inject -= 1
                await asyncio.sleep(self.slow_seconds)
            if self.failures_to_inject > 0:
                self.failures_to_inject -= 1
                return body, JSONResponse({"error": "boom"}, status_code=500)
            return body, None

        @app.post("/box/1.0/posts/{post_id}/messages")
        async def legacy_reply(post_id: str, request: Request) -> Response:
            _, refusal = await guarded(request)
            return refusal or JSONResponse({"idOnExternalPlatform": f"legacy-{post_id[:8]}"})

        @app.post("/box/2.0/channel/{channel_id}/outbound")
        async def outbound(channel_id: str, request: Request) -> Response:
            body, refusal = await guarded(request)
            if refusal:
                return refusal
            thread = body["thread"]["idOnExternalPlatform"]
            if thread.startswith("de-") and self.outbound_thread_id:
                thread = self.outbound_thread_id
            named = (body.get("message") or {}).get("id") or request.headers.get("idempotency-key")
            return JSONResponse(
                {
                    "message": {"idOnExternalPlatform": f"platform-{(named or 'unnamed')[:8]}"},
                    "thread": {"idOnExternalPlatform": thread},
                }
            )

        @app.post("/box/1.0/channel/{channel_id}/thread/{thread_id}/sender-action")
        async def sender_action(channel_id: str, thread_id: str, request: Request) -> Response:
            _, refusal = await guarded(request)
            return refusal or Response(status_code=204)

        @app.post("/box/1.0/channel/{channel_id}/recipients/validation")
        async def validation(channel_id: str, request: Request) -> Response:
            body, refusal = await guarded(request)
            if refusal:
                return refusal
            recipient = body["endUserRecipients"][0]["idOnExternalPlatform"]
            if recipient in self.refused_recipients:
                return JSONResponse(
                    {
                        "displayErrorMessage": "unknown customer",
                        "errorCode": "outboundValidationFailed",
                        "errors": [{"path": ["idOnExternalPlatform"], "message": "unknown"}],
                    },
                    status_code=400,
                )
            return JSONResponse({})

        return app


@contextmanager
def wired(
    reply_style: ReplyStyle = "dfo3", **config: Any
) -> Iterator[tuple[Emulator, BoxReceiver]]:
    """An emulator whose one channel belongs to an integration served by a `BoxReceiver`."""
    receiver = BoxReceiver()
    with serve(receiver.build_app()) as box_server:
        receiver.url = box_server.url
        integration = IntegrationConfig(
            id=INTEGRATION_ID,
            box_url=f"{box_server.url}/box",
            authorization_url=f"{box_server.url}/token",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            reply_style=reply_style,
            action_url=f"{box_server.url}/action",
        )
        emulator_config = EmulatorConfig(
            integrations=[integration],
            channels=[ChannelConfig(CHANNEL_ID, INTEGRATION_ID)],
            **config,
        )
        with running_emulator(emulator_config) as emulator:
            yield emulator, receiver


def inbound_message(
    message_id: str = "msg-1",
    thread_id: str = "thread-1",
    customer_id: str = "customer-1",
    text: str = "Hello",
    **extra: Any,
) -> dict[str, Any]:
    """A valid §3.2 create-message body."""
    return {
        "idOnExternalPlatform": message_id,
        "direction": "inbound",
        "createdAtWithMilliseconds": "2026-01-02T03:04:05.678Z",
        "thread": {"idOnExternalPlatform": thread_id},
        "messageContent": {"type": "TEXT", "payload": {"text": text}},
        "authorEndUserIdentity": {"idOnExternalPlatform": customer_id, "firstName": "Ann"},
        **extra,
    }
