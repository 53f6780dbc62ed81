"""Running the CXone emulator on loopback for tests: `running_emulator()` and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from cxone_emulator.app import create_app
from cxone_emulator.config import EmulatorConfig
from tests.support import loopback
from tests.support.servers import serve


@dataclass
class Emulator:
    url: str
    api_url: str
    config: EmulatorConfig
    admin: httpx.Client

    def requests(
        self, path_contains: str | None = None, method: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in {"pathContains": path_contains, "method": method}.items() if v}
        response = self.admin.get("/emulator/requests", params=params)
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def callbacks(self, url_contains: str | None = None) -> list[dict[str, Any]]:
        params = {"urlContains": url_contains} if url_contains else {}
        response = self.admin.get("/emulator/callbacks", params=params)
        response.raise_for_status()
        data: list[dict[str, Any]] = response.json()["data"]
        return data

    def token(self) -> str:
        """A fresh DE bearer token, fetched the way the middleware does (§3.1)."""
        response = self.admin.post(
            "/auth/token",
            data={
                "grant_type": "password",
                "username": self.config.access_key_id,
                "password": self.config.access_key_secret,
            },
            auth=(self.config.client_id, self.config.client_secret),
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def api_client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on the DE API base with a valid bearer token; close it after use."""
        return loopback.client(
            base_url=self.api_url, headers={"Authorization": f"Bearer {self.token()}"}, **kwargs
        )


@contextmanager
def running_emulator(config: EmulatorConfig | None = None) -> Iterator[Emulator]:
    config = config or EmulatorConfig()
    with (
        serve(create_app(config)) as server,
        loopback.client(base_url=server.url, timeout=10) as admin,
    ):
        yield Emulator(
            url=server.url, api_url=server.url + config.base_path, config=config, admin=admin
        )
