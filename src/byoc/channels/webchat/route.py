"""The widget's WebSocket route (docs/webchat-protocol.md): accept, authenticate, run, close."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from byoc.api.deps import (
    BusDep,
    ClockDep,
    ConversationsDep,
    DatabaseDep,
    MetricsDep,
    SettingsDep,
    WidgetLimitsDep,
)
from byoc.channels import WEBCHAT
from byoc.channels.webchat.config import parse_settings
from byoc.channels.webchat.identity import resolve_identity
from byoc.channels.webchat.protocol import (
    CLOSE_CODES,
    FrameError,
    Hello,
    encode,
    parse_widget_frame,
    receive_frame,
)
from byoc.channels.webchat.session import WidgetSession
from byoc.conversations.models import CustomerProfile
from byoc.errors import ChannelNotFound, Forbidden, Unauthenticated
from byoc.store.records import Channel

router = APIRouter()

HELLO_TIMEOUT_SECONDS = 10.0


async def _refuse(ws: WebSocket, code: str, detail: str) -> None:
    with contextlib.suppress(Exception):
        await ws.send_text(encode({"type": "error", "code": code, "detail": detail}))
        await ws.close(code=CLOSE_CODES.get(code, 4404 if code.endswith("not-found") else 4400))


@router.websocket("/webchat/v1/ws")
async def widget_socket(
    ws: WebSocket,
    conversations: ConversationsDep,
    db: DatabaseDep,
    bus: BusDep,
    app_settings: SettingsDep,
    metrics: MetricsDep,
    limits: WidgetLimitsDep,
    clock: ClockDep,
) -> None:
    await ws.accept()
    try:
        raw = await asyncio.wait_for(receive_frame(ws), timeout=HELLO_TIMEOUT_SECONDS)
        hello = parse_widget_frame(raw)
    except TimeoutError:
        await _refuse(ws, "bad-hello", "expected a hello frame: none came in time")
        return
    except FrameError as exc:
        await _refuse(ws, "bad-hello", f"expected a hello frame: {exc.detail}")
        return
    except WebSocketDisconnect:
        return
    if not isinstance(hello, Hello):
        await _refuse(ws, "bad-hello", "expected a hello frame: the first frame must be hello")
        return
    try:
        channel: Channel | None = await conversations.channel(hello.channel)
    except ChannelNotFound:
        channel = None
    if channel is None or channel.adapter != WEBCHAT:
        await _refuse(ws, "channel-not-found", f"no web chat channel {hello.channel!r}")
        return
    settings = parse_settings(channel.settings)
    if not settings.origin_allowed(ws.headers.get("origin")):
        await _refuse(ws, "forbidden-origin", "this page may not open this channel's chat")
        return
    try:
        identity = resolve_identity(
            channel,
            visitor_id=hello.visitor_id,
            user_id=hello.user_id,
            signature=hello.signature,
            expires=hello.user_expires,
            allow_anonymous=settings.allow_anonymous,
        )
    except (Unauthenticated, Forbidden) as exc:
        await _refuse(ws, "unauthenticated", exc.detail)
        return
    address = ws.client.host if ws.client else ""
    if (wait := await limits.take_hello(address)) is not None:
        await _refuse(ws, "rate-limited", f"too many new chats from here; try again in {wait} s")
        return
    first, _, last = (hello.name or "").strip().partition(" ")
    customer = await conversations.ensure_customer(
        channel.id,
        CustomerProfile(
            external_id=identity.external_id, first_name=first or None, last_name=last or None
        ),
    )
    session = WidgetSession(
        ws,
        channel,
        settings,
        identity,
        customer,
        service=conversations,
        db=db,
        bus=bus,
        public_url=app_settings.public_url,
        limits=limits,
        clock=clock,
    )
    metrics.open_sockets.inc()
    try:
        async with bus.subscribe(customer.id) as subscription:
            await session.welcome(hello)
            await session.run(subscription)
    except WebSocketDisconnect:
        pass
    finally:
        metrics.open_sockets.dec()
