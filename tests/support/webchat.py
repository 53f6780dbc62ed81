"""The middleware with a web chat channel, a host page on another origin, and the emulator."""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from byoc.channels.webchat.identity import user_signature
from byoc.clock import Clock
from tests.support.emulator import Emulator
from tests.support.servers import ThreadedServer, free_port
from tests.support.stack import Stack, running_stack


def host_page(middleware_url: str, channel_id: str) -> FastAPI:
    """A page of the platform that embeds the widget, as a customer's browser loads it."""
    app = FastAPI()

    @app.get("/", response_class=HTMLResponse)
    async def page(
        userId: str | None = None,
        signature: str | None = None,
        name: str | None = None,
        expires: str | None = None,
    ) -> str:
        attributes = {
            "src": f"{middleware_url}/widget/v1/widget.js",
            "data-channel": channel_id,
            "data-title": "The Watering Hole",
            "data-greeting": "Hi! How can we help?",
        }
        if userId:
            attributes["data-user-id"] = userId
            attributes["data-user-signature"] = signature or ""
            if expires:
                attributes["data-user-expires"] = expires
        if name:
            attributes["data-user-name"] = name
        rendered = " ".join(f'{k}="{html.escape(v)}"' for k, v in attributes.items())
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<title>The Watering Hole</title></head>"
            "<body><main><h1>The Watering Hole</h1><p>Where everyone meets.</p></main>"
            f"<script {rendered} async></script></body></html>"
        )

    return app


@dataclass
class Webchat:
    stack: Stack
    page_server: ThreadedServer

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def page_url(self) -> str:
        return self.page_server.url + "/"

    @property
    def page_origin(self) -> str:
        return self.page_server.url

    @property
    def channel_id(self) -> str:
        return self.stack.channel_id

    @property
    def channel_secret(self) -> str:
        return self.stack.channel_secret

    @property
    def emulator(self) -> Emulator:
        return self.stack.emulator

    def signature_for(self, user_id: str, expires: int | None = None) -> str:
        return user_signature(self.channel_secret, user_id, expires)

    def contacts(self) -> list[dict[str, Any]]:
        response = self.emulator.admin.get(
            "/emulator/contacts", params={"channelId": self.channel_id}
        )
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def contact_for_thread(self, thread_id: str) -> dict[str, Any]:
        return self.stack.contact_for_thread(thread_id)

    def restart(self) -> None:
        self.stack.restart()


@contextmanager
def running_webchat(
    tmp_path: Path,
    emulator: Emulator,
    *,
    overrides: dict[str, Any] | None = None,
    clock: Clock | None = None,
    **channel_settings: Any,
) -> Iterator[Webchat]:
    """`overrides` are middleware settings; keyword arguments are the channel's widget settings."""
    page_port = free_port()
    page_origin = f"http://127.0.0.1:{page_port}"
    settings: dict[str, Any] = {"allowed_origins": [page_origin], **channel_settings}
    with running_stack(
        tmp_path,
        emulator,
        adapter="webchat",
        channel_settings=settings,
        clock=clock,
        **(overrides or {}),
    ) as stack:
        page = ThreadedServer(host_page(stack.url, stack.channel_id), port=page_port).start()
        try:
            yield Webchat(stack=stack, page_server=page)
        finally:
            page.stop()
