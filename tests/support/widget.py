"""A protocol-level widget client (no browser) for tests: docs/webchat-protocol.md."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from byoc.clock import Clock
from tests.support.emulator import Emulator
from tests.support.webchat import Webchat, running_webchat


class Widget:
    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def expect(self, frame_type: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame: dict[str, Any] = json.loads(await self.ws.recv())
                if frame["type"] != frame_type:
                    continue
                if all(_get(frame, k) == v for k, v in match.items()):
                    return frame

    async def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Every frame that arrives within `seconds`."""
        frames: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(seconds):
                while True:
                    frames.append(json.loads(await self.ws.recv()))
        except TimeoutError:
            pass
        return frames

    async def say(self, text: str, client_id: str | None = None) -> dict[str, Any]:
        client_id = client_id or "c-" + secrets.token_hex(4)
        await self.send({"type": "message", "clientId": client_id, "text": text})
        return await self.expect("ack", clientId=client_id)


def _get(frame: dict[str, Any], dotted: str) -> Any:
    value: Any = frame
    for part in dotted.split("__"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@asynccontextmanager
async def widget_at(
    base_url: str, channel_id: str, origin: str, **hello: Any
) -> AsyncIterator[Widget]:
    """A widget connection to the middleware at `base_url`, sending `hello` as given."""
    url = base_url.replace("http://", "ws://") + "/webchat/v1/ws"
    hello.setdefault("visitorId", secrets.token_hex(16))
    async with connect(url, origin=Origin(origin)) as ws:
        await ws.send(json.dumps({"type": "hello", "channel": channel_id, **hello}))
        welcome = json.loads(await ws.recv())
        yield Widget(ws, welcome)


@asynccontextmanager
async def widget(
    chat: Webchat, *, origin: str | None = None, **hello: Any
) -> AsyncIterator[Widget]:
    async with widget_at(
        chat.url, chat.channel_id, origin or chat.page_origin, **hello
    ) as connected:
        yield connected


@asynccontextmanager
async def custom_webchat(
    tmp_path: Path,
    emulator: Emulator,
    overrides: dict[str, Any] | None = None,
    clock: Clock | None = None,
    **settings: Any,
) -> AsyncIterator[Webchat]:
    """`running_webchat` from an async test: its set-up runs its own event loop, so off this one."""
    manager = running_webchat(tmp_path, emulator, overrides=overrides, clock=clock, **settings)
    chat = await asyncio.to_thread(manager.__enter__)
    try:
        yield chat
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)


def agent_reply(chat: Webchat, thread_id: str, text: str, **extra: Any) -> dict[str, Any]:
    contact = chat.contact_for_thread(thread_id)
    response = chat.emulator.admin.post(
        f"/emulator/contacts/{contact['id']}/reply", json={"text": text, **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
