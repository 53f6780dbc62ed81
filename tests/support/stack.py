"""The middleware on loopback against the CXone emulator and a platform webhook receiver."""

from __future__ import annotations

import atexit
import functools
import json
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from sqlalchemy.engine import make_url

from byoc.app import create_app
from byoc.box.credentials import hash_secret, new_client_credentials
from byoc.channels.signing import request_target, signed_headers, verify_webhook
from byoc.clock import Clock
from byoc.settings import Settings
from byoc.store import Connection, Database, channels, clients, conversations, tenants
from byoc.store.migrations import upgrade
from byoc.store.records import Channel, Conversation
from byoc.tenancy import DEFAULT_TENANT_ID, default_tenant
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.servers import ThreadedServer, free_port, serve
from tests.support.waiting import run_async, wait_for

SIGNING_KEY = "test-signing-key-0123456789abcdef0123456789"


@dataclass
class PlatformReceiver:
    """The external platform: receives signed webhooks and can be told to fail."""

    secret: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    fail_with: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/webhook")
        async def webhook(request: Request) -> Response:
            body = await request.body()
            try:
                verify_webhook(self.secret, request.headers, body, tolerance_seconds=300)
            except Exception:
                self.bad_signatures += 1
                return Response(status_code=401)
            if self.fail_with is not None:
                return Response(status_code=self.fail_with)
            with self.lock:
                self.events.append(json.loads(body))
            return Response(status_code=204)

        return app

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["type"] == event_type]


@dataclass
class Stack:
    emulator: Emulator
    platform: PlatformReceiver
    settings: Settings
    channel_id: str
    channel_secret: str
    client_id: str
    client_secret: str
    integration_id: str
    server: ThreadedServer | None = None
    span_exporter: Any = None
    clock: Clock | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def start(self, port: int | None = None) -> None:
        if port is None and self.server is not None:
            port = self.server.port
        app = create_app(self.settings, span_exporter=self.span_exporter, clock=self.clock)
        self.server = ThreadedServer(app, port=port).start()

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def signed(
        self, method: str, path: str, payload: Any = None, *, secret: str | None = None
    ) -> httpx.Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        path_only, _, query = path.partition("?")
        target = request_target(method, path_only, query)
        headers = {
            "Content-Type": "application/json",
            **signed_headers(secret or self.channel_secret, body, target=target),
        }
        with loopback.client(base_url=self.url, timeout=10) as client:
            return client.request(method, path, content=body, headers=headers)

    def customer_says(self, text: str, customer: str = "wh-user-1", **extra: Any) -> dict[str, Any]:
        response = self.signed(
            "POST",
            f"/api/v1/channels/{self.channel_id}/messages",
            {"customer": {"id": customer, "firstName": "Ada"}, "text": text, **extra},
        )
        assert response.status_code == 202, response.text
        body: dict[str, Any] = response.json()
        return body

    def contact_for_thread(self, thread_id: str) -> dict[str, Any]:
        return contact_for_thread(self.emulator, self.channel_id, thread_id)

    def agent_replies(self, contact_id: str, text: str) -> httpx.Response:
        return self.emulator.admin.post(
            f"/emulator/contacts/{contact_id}/reply", json={"text": text}
        )

    def outbox(self, state: str | None = None) -> list[dict[str, Any]]:
        async def rows() -> list[dict[str, Any]]:
            from byoc.outbox import rows as outbox_rows

            db = Database(self.settings.database_url)
            try:
                listed = await db.run_read(outbox_rows.list_rows, state=state, limit=1000)
                return [r.__dict__ for r in listed]
            finally:
                await db.close()

        return run_async(rows())

    def conversation(self, thread_id: str) -> Conversation:
        """The conversation as the store holds it now."""

        async def read() -> Conversation | None:
            db = Database(self.settings.database_url)
            try:
                return await db.run_read(conversations.get_conversation, thread_id)
            finally:
                await db.close()

        found = run_async(read())
        assert found is not None, f"no conversation {thread_id}"
        return found


def contact_for_thread(emulator: Emulator, channel_id: str, thread_id: str) -> dict[str, Any]:
    """The CXone contact of a thread, once the emulator has it."""

    def find() -> dict[str, Any] | None:
        response = emulator.admin.get("/emulator/contacts", params={"channelId": channel_id})
        for contact in response.json()["data"]:
            if contact["threadIdOnExternalPlatform"] == thread_id:
                found: dict[str, Any] = contact
                return found
        return None

    return wait_for(find, what=f"a CXone contact for thread {thread_id}")


def connect_emulator(
    emulator: Emulator,
    middleware_url: str,
    client_id: str,
    client_secret: str,
    channel_id: str,
    *,
    reply_style: str = "dfo3",
) -> str:
    """What a CXone administrator does: register the BYOC integration with the middleware's
    box and credentials, then create the channel on it. Returns the integration id."""
    box = middleware_url + "/integration/box"
    integration = emulator.admin.post(
        "/emulator/integrations",
        json={
            "boxUrl": box,
            "authorizationUrl": box + "/1.0/token",
            "clientId": client_id,
            "clientSecret": client_secret,
            "replyStyle": reply_style,
        },
    )
    assert integration.status_code in (200, 201), integration.text
    integration_id: str = integration.json()["id"]
    with emulator.api_client() as api:
        created = api.post(
            "/channels",
            json={
                "id": channel_id,
                "idOnExternalPlatform": channel_id,
                "channelIntegrationId": integration_id,
                "realExternalPlatformId": "custom",
                "name": "The Watering Hole",
                "isPrivate": True,
                "hasTreeStructure": False,
            },
        )
        assert created.status_code == 200, created.text
    return integration_id


@functools.cache
def migrated_sqlite() -> Path:
    """A SQLite file `upgrade` brought to the head revision, made once per process."""
    directory = Path(tempfile.mkdtemp(prefix="byoc-migrated-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    path = directory / "byoc.db"

    async def migrate() -> None:
        db = Database(f"sqlite:///{path}")
        try:
            await upgrade(db)
        finally:
            await db.close()

    run_async(migrate())
    return path


def start_from_migrated(database_url: str) -> None:
    """A SQLite database that does not exist yet starts as a copy of `migrated_sqlite()`:
    `upgrade` then finds it at the head revision, which saves every store set up for a test
    running the revisions one by one (most of the CPU of starting the middleware)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or Path(url.database).exists():
        return
    template = migrated_sqlite()
    for suffix in ("", "-wal"):  # a closed database has no -wal file; copy one if there is
        if Path(f"{template}{suffix}").exists():
            shutil.copyfile(f"{template}{suffix}", f"{url.database}{suffix}")


async def prepare_store(settings: Settings, channel: Channel, client_id: str, secret: str) -> None:
    start_from_migrated(settings.database_url)
    db = Database(settings.database_url)
    try:
        await upgrade(db)

        def prepare(conn: Connection) -> None:
            tenants.upsert_tenant(conn, default_tenant(settings))
            clients.insert_client(conn, client_id, "cxone", hash_secret(secret), DEFAULT_TENANT_ID)
            channels.insert_channel(conn, channel)

        await db.run_write(prepare)
    finally:
        await db.close()


# What `middleware_settings` shortens, so that tests on the machine's clock wait less.
SHORT_TIMES = (
    "outbox_backoff_base_seconds",
    "outbox_backoff_max_seconds",
    "outbox_poll_interval_seconds",
)


def middleware_settings(tmp_path: Path, emulator: Emulator, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": f"sqlite:///{tmp_path / 'byoc.db'}",
        "token_signing_key": SIGNING_KEY,
        "cxone_api_url": emulator.api_url,
        "cxone_token_url": emulator.url + "/auth/token",
        "cxone_access_key_id": emulator.config.access_key_id,
        "cxone_access_key_secret": emulator.config.access_key_secret,
        "cxone_client_id": emulator.config.client_id,
        "cxone_client_secret": emulator.config.client_secret,
        "cxone_brand_id": emulator.config.brand_id,
        "cxone_tenant_id": emulator.config.tenant_id,
        "cxone_business_unit_id": emulator.config.business_unit_id,
        "cxone_timeout_seconds": 2.0,
        "outbox_backoff_base_seconds": 0.05,
        "outbox_backoff_max_seconds": 0.5,
        "outbox_poll_interval_seconds": 0.2,
        "webhook_timeout_seconds": 2.0,
        # The platform and attachment servers of these tests listen on loopback.
        "outbound_allow_private": "127.0.0.0/8,::1/128",
        # The Action pages' `backUrl`s of these tests: action_pages.BACK_URL, the emulator.
        "action_back_url_hosts": "cxone.example.invalid,127.0.0.1",
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running_stack(
    tmp_path: Path,
    emulator: Emulator,
    *,
    reply_style: str = "dfo3",
    adapter: str = "webhook",
    channel_settings: dict[str, Any] | None = None,
    span_exporter: Any = None,
    clock: Clock | None = None,
    **overrides: Any,
) -> Iterator[Stack]:
    """The middleware (on `clock`, the machine's by default), its platform and the emulator.
    On the machine's clock the outbox retries and polls within fractions of a second; on a
    clock of the test's own, with the defaults, as in production."""
    if clock is not None:
        overrides = {
            **{name: Settings.model_fields[name].default for name in SHORT_TIMES},
            **overrides,
        }
    platform = PlatformReceiver()
    with serve(platform.app()) as platform_server:
        if "public_url" not in overrides:
            # The middleware's port is fixed up front so that its public URL is known.
            port = free_port()
            overrides["public_url"] = f"http://127.0.0.1:{port}"
        else:
            port = int(str(overrides["public_url"]).rsplit(":", 1)[1])
        settings = middleware_settings(tmp_path, emulator, **overrides)
        client_id, client_secret = new_client_credentials()
        channel_id = "chat_" + secrets.token_hex(6)
        channel_secret = secrets.token_urlsafe(24)
        platform.secret = channel_secret
        stack = Stack(
            emulator=emulator,
            platform=platform,
            settings=settings,
            channel_id=channel_id,
            channel_secret=channel_secret,
            client_id=client_id,
            client_secret=client_secret,
            integration_id="",
            span_exporter=span_exporter,
            clock=clock,
        )
        run_async(
            prepare_store(
                settings,
                Channel(
                    id=channel_id,
                    tenant_id="default",
                    adapter=adapter,
                    name="The Watering Hole",
                    webhook_url=platform_server.url + "/webhook" if adapter == "webhook" else None,
                    secret=channel_secret,
                    created_at=0,
                    settings=channel_settings or {},
                ),
                client_id,
                client_secret,
            )
        )
        stack.start(port)
        try:
            stack.integration_id = connect_emulator(
                emulator,
                stack.url,
                client_id,
                client_secret,
                channel_id,
                reply_style=reply_style,
            )
            yield stack
        finally:
            stack.stop()


def box_token(stack: Stack) -> str:
    """A bearer token for the Integration Box, as CXone gets one with the stack's client."""
    response = loopback.post(
        stack.url + "/integration/box/1.0/token",
        json={
            "client_id": stack.client_id,
            "client_secret": stack.client_secret,
            "grant_type": "client_credentials",
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
