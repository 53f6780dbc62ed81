"""The middleware's Action, Remove and Reconnect URL pages on loopback: `start_pages`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from byoc.app import create_app
from byoc.settings import Settings
from byoc.store import Database, channels
from byoc.store.records import Channel
from tests.support import loopback
from tests.support.cli import register_integration
from tests.support.emulator import Emulator
from tests.support.servers import serve
from tests.support.stack import middleware_settings
from tests.support.waiting import run_async

BACK_URL = "https://cxone.example.invalid/admin/byoc?tab=channels"


def form_token(page: httpx.Response) -> str:
    match = re.search(r'name=form_token value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def channel_id_of(page: httpx.Response) -> str:
    match = re.search(r"Channel id: <code>([^<]+)</code>", page.text)
    assert match, page.text
    return match.group(1)


@dataclass
class Pages:
    url: str
    emulator: Emulator
    settings: Settings
    http: httpx.Client

    def mint(self, user_id: int = 4242) -> dict[str, Any]:
        response = self.emulator.admin.post("/emulator/one-time-tokens", json={"userId": user_id})
        response.raise_for_status()
        minted: dict[str, Any] = response.json()
        return minted

    def open_action(self, back_url: str = BACK_URL, **extra: Any) -> httpx.Response:
        minted = self.mint()
        params = {
            "userId": minted["userId"],
            "brandId": minted["brandId"],
            "token": minted["token"],
            "backUrl": back_url,
            "apiHost": "https://attacker.example.invalid",
            **extra,
        }
        return self.http.get("/integration/action", params=params)

    def local_channel(self, channel_id: str) -> Channel | None:
        async def read() -> Channel | None:
            db = Database(self.settings.database_url)
            try:
                return await db.run_read(channels.get_channel, channel_id)
            finally:
                await db.close()

        return run_async(read())  # the browser test calls this while Playwright's loop runs

    def emulator_channels(self) -> dict[str, dict[str, Any]]:
        return {c["id"]: c for c in self.emulator.admin.get("/emulator/channels").json()["data"]}


@contextmanager
def start_pages(tmp_path: Path, emulator: Emulator, **overrides: Any) -> Iterator[Pages]:
    settings = middleware_settings(tmp_path, emulator, **overrides)
    with (
        serve(create_app(settings)) as server,
        loopback.client(base_url=server.url, timeout=10, follow_redirects=False) as http,
    ):
        register_integration(emulator, actionUrl=server.url + "/integration/action")
        yield Pages(server.url, emulator, settings, http)
