"""One deployment, two CXone tenants: each channel talks to its own tenant only."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace
from pathlib import Path

import pytest

from byoc.box.credentials import hash_secret, new_client_credentials
from byoc.clock import ManualClock
from byoc.cxone import CxoneAuthError
from byoc.http import HttpClient
from byoc.store import Connection, Database, channels, clients, migrations, tenants
from byoc.store.records import Channel, Tenant
from byoc.tenancy import TENANT_REFRESH_SECONDS, TenantClients, default_tenant
from cxone_emulator.config import EmulatorConfig
from tests.support.emulator import Emulator, running_emulator
from tests.support.stack import Stack, connect_emulator, middleware_settings
from tests.support.waiting import wait_for


def test_each_channel_uses_its_own_tenant(stack: Stack, tmp_path: Path) -> None:
    config = EmulatorConfig(
        brand_id=2002,
        tenant_id="22eb0358-0000-4b8c-9a4f-0242ac110099",
        business_unit_id=7700,
        access_key_id="eu-key",
        access_key_secret="eu-secret",
        client_id="eu-app",
        client_secret="eu-app-secret",
    )
    with running_emulator(config) as eu:
        channel_id = "chat_eu_" + secrets.token_hex(4)
        # The EU tenant's CXone authenticates with a box client of its own tenant.
        client_id, client_secret = new_client_credentials()

        async def add_tenant() -> None:
            db = Database(stack.settings.database_url)

            def add(conn: Connection) -> None:
                tenants.upsert_tenant(
                    conn,
                    Tenant(
                        id="eu",
                        name="EU",
                        brand_id=2002,
                        cxone_tenant_id=config.tenant_id,
                        business_unit_id=7700,
                        api_url=eu.api_url,
                        token_url=eu.url + "/auth/token",
                        access_key_id="eu-key",
                        access_key_secret="eu-secret",
                        client_id="eu-app",
                        client_secret="eu-app-secret",
                    ),
                )
                first = channels.get_channel(conn, stack.channel_id)
                assert first is not None
                channels.insert_channel(
                    conn,
                    Channel(
                        id=channel_id,
                        tenant_id="eu",
                        adapter="webhook",
                        name="EU chat",
                        webhook_url=first.webhook_url,
                        secret=stack.channel_secret,
                        created_at=0,
                    ),
                )
                clients.insert_client(conn, client_id, "eu", hash_secret(client_secret), "eu")

            await db.run_write(add)
            await db.close()

        asyncio.run(add_tenant())
        integration_id = connect_emulator(eu, stack.url, client_id, client_secret, channel_id)

        eu_stack = Stack(
            emulator=eu,
            platform=stack.platform,
            settings=stack.settings,
            channel_id=channel_id,
            channel_secret=stack.channel_secret,
            client_id=client_id,
            client_secret=client_secret,
            integration_id=integration_id,
            server=stack.server,
        )
        accepted = eu_stack.customer_says("bonjour", customer="eu-user")
        contact = eu_stack.contact_for_thread(accepted["threadId"])
        assert stack.emulator.requests(path_contains="/messages") == []  # not the default tenant

        reply = eu_stack.agent_replies(contact["id"], "bonjour, comment puis-je aider ?")
        assert reply.status_code == 200, reply.text
        event = wait_for(lambda: stack.platform.of_type("message.created"), what="EU reply")[0]
        assert event["channelId"] == channel_id
        assert event["message"]["text"] == "bonjour, comment puis-je aider ?"


async def test_a_tenants_changed_credentials_reach_a_running_process(
    tmp_path: Path, emulator: Emulator
) -> None:
    """`byoc tenants add` again, with a rotated key: the running process keeps its client (and
    tokens) while the row is as it was, and uses the new key once it reads the row again."""
    tenant = default_tenant(middleware_settings(tmp_path, emulator))
    db = Database(f"sqlite:///{tmp_path / 'tenants.db'}")
    clock = ManualClock()
    try:
        await migrations.upgrade(db)
        await db.run_write(tenants.upsert_tenant, tenant)
        async with HttpClient() as http:
            clients = TenantClients(db, http, timeout=5, monotonic=clock.monotonic)
            first = await clients.for_tenant(tenant.id)
            assert await first.list_channels() is not None  # the emulator's key: accepted
            rotated = replace(tenant, access_key_secret="rotated-" + secrets.token_hex(4))
            await db.run_write(tenants.upsert_tenant, rotated)
            assert await clients.for_tenant(tenant.id) is first  # not read again yet
            clock.advance(int(TENANT_REFRESH_SECONDS * 1000))
            second = await clients.for_tenant(tenant.id)
            assert second is not first
            with pytest.raises(CxoneAuthError):  # the new key, which this emulator refuses
                await second.list_channels()
            clock.advance(int(TENANT_REFRESH_SECONDS * 1000))
            assert await clients.for_tenant(tenant.id) is second  # unchanged: the same client
    finally:
        await db.close()
