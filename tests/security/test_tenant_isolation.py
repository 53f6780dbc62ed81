"""Tenant isolation on the Integration Box: a client acts on its own tenant's channels only.

Two tenants share one middleware. The attacker holds a genuine client of the default tenant
and aims every callback at the victim tenant's channel and thread: each is answered 404,
whatever `brand` claims, and the victim's transcript gains nothing. On its own channel the
attacker's client is refused (403) on all five routes when `brand` names another tenant.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from sqlalchemy import text

from byoc.box.credentials import hash_secret, new_client_credentials
from byoc.store import Connection, Database, channels, clients, tenants
from byoc.store.migrations import current_version, latest_version, upgrade
from byoc.store.records import Channel, Tenant
from byoc.tenancy import DEFAULT_TENANT_ID
from tests.support import loopback
from tests.support.cli import run_cli
from tests.support.emulator import Emulator
from tests.support.legacy_schema import build_legacy_database
from tests.support.stack import Stack, running_stack

VICTIM_TENANT = "victim"
VICTIM_BRAND = 707_070


@dataclass
class Victim:
    channel_id: str
    secret: str
    client_id: str
    client_secret: str


@pytest.fixture
def stack(tmp_path: Path, emulator: Emulator) -> Iterator[Stack]:
    with running_stack(tmp_path, emulator) as running:
        yield running


@pytest.fixture
def victim(stack: Stack) -> Victim:
    """A second tenant with its own channel and its own box client, in the same store."""
    channel_id = "chat_" + secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    client_id, client_secret = new_client_credentials()
    settings = stack.settings

    def add(conn: Connection) -> None:
        tenants.upsert_tenant(
            conn,
            Tenant(
                id=VICTIM_TENANT,
                name="Victim",
                brand_id=VICTIM_BRAND,
                cxone_tenant_id="11111111-2222-3333-4444-555555555555",
                business_unit_id=4242,
                api_url=settings.cxone_api_url,
                token_url=settings.cxone_token_url,
                access_key_id=settings.cxone_access_key_id,
                access_key_secret=settings.cxone_access_key_secret.get_secret_value(),
                client_id=settings.cxone_client_id,
                client_secret=settings.cxone_client_secret.get_secret_value(),
            ),
        )
        channels.insert_channel(
            conn,
            Channel(
                id=channel_id,
                tenant_id=VICTIM_TENANT,
                adapter="webhook",
                name="Victim's chat",
                webhook_url=None,
                secret=secret,
                created_at=0,
            ),
        )
        clients.insert_client(conn, client_id, "victim", hash_secret(client_secret), VICTIM_TENANT)

    async def prepare() -> None:
        db = Database(settings.database_url)
        try:
            await db.run_write(add)
        finally:
            await db.close()

    asyncio.run(prepare())
    return Victim(channel_id, secret, client_id, client_secret)


def token_for(stack: Stack, client_id: str, client_secret: str) -> str:
    response = loopback.post(
        stack.url + "/integration/box/1.0/token",
        json={
            "client_id": client_id,
            "client_secret": client_secret,
            "grant_type": "client_credentials",
        },
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def thread_on(stack: Stack, channel_id: str, secret: str, text: str) -> dict[str, Any]:
    response = stack.signed(
        "POST",
        f"/api/v1/channels/{channel_id}/messages",
        {"customer": {"id": "cust-" + secrets.token_hex(3)}, "text": text},
        secret=secret,
    )
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def transcript(stack: Stack, channel_id: str, secret: str, thread_id: str) -> list[str | None]:
    response = stack.signed(
        "GET", f"/api/v1/channels/{channel_id}/threads/{thread_id}/messages", secret=secret
    )
    assert response.status_code == 200, response.text
    return [m.get("text") for m in response.json()["messages"]]


def callbacks(channel_id: str, thread: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The five callbacks (path, body) aimed at one channel and one of its threads."""
    reply = {"messageContent": {"type": "TEXT", "payload": {"text": "injected"}}}
    recipient = [{"idOnExternalPlatform": thread["customerId"], "isPrimary": True}]
    box = "/integration/box"
    return [
        (
            f"{box}/1.0/posts/de-post-1/messages",
            {**reply, "thread": {"idOnExternalPlatform": thread["threadId"]}},
        ),
        (
            f"{box}/2.0/channel/{channel_id}/outbound",
            {**reply, "thread": {"idOnExternalPlatform": thread["threadId"]}},
        ),
        (
            f"{box}/2.0/channel/{channel_id}/outbound",
            {
                **reply,
                "thread": {"idOnExternalPlatform": "new-" + secrets.token_hex(4)},
                "endUserRecipients": recipient,
            },
        ),
        (
            f"{box}/1.0/channel/{channel_id}/thread/{thread['threadId']}/sender-action",
            {"senderAction": {"action": "isTypingOn"}},
        ),
        (f"{box}/1.0/channel/{channel_id}/recipients/validation", {"endUserRecipients": recipient}),
    ]


def test_tokens_carry_the_clients_tenant(stack: Stack, victim: Victim) -> None:
    for client_id, secret, tenant in (
        (stack.client_id, stack.client_secret, DEFAULT_TENANT_ID),
        (victim.client_id, victim.client_secret, VICTIM_TENANT),
    ):
        token = token_for(stack, client_id, secret)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["tenant"] == tenant
        assert claims["sub"] == client_id
        assert {"iss", "aud", "exp"} <= set(claims)
        assert jwt.get_unverified_header(token)["kid"]


def test_another_tenants_channel_is_not_found_whatever_brand_says(
    stack: Stack, victim: Victim, emulator: Emulator
) -> None:
    attacker = token_for(stack, stack.client_id, stack.client_secret)
    thread = thread_on(stack, victim.channel_id, victim.secret, "my private question")
    brands: list[dict[str, Any] | None] = [
        None,
        {"id": emulator.config.brand_id},  # the attacker's own brand: matches its token
        {"id": VICTIM_BRAND},  # the victim's brand, claimed
    ]
    for brand in brands:
        for path, body in callbacks(victim.channel_id, thread):
            payload = body if brand is None else {**body, "brand": brand}
            response = loopback.post(
                stack.url + path, json=payload, headers={"Authorization": f"Bearer {attacker}"}
            )
            assert response.status_code == 404, (path, brand, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
    assert transcript(stack, victim.channel_id, victim.secret, thread["threadId"]) == [
        "my private question"
    ]

    # The victim's own client is served on the same thread: the 404s were about the tenant.
    own = token_for(stack, victim.client_id, victim.client_secret)
    path, body = callbacks(victim.channel_id, thread)[1]
    response = loopback.post(
        stack.url + path, json=body, headers={"Authorization": f"Bearer {own}"}
    )
    assert response.status_code == 200, response.text


def test_a_brand_of_another_tenant_is_forbidden_on_all_five_routes(
    stack: Stack, victim: Victim
) -> None:
    token = token_for(stack, stack.client_id, stack.client_secret)
    thread = thread_on(stack, stack.channel_id, stack.channel_secret, "hello")
    for path, body in callbacks(stack.channel_id, thread):
        response = loopback.post(
            stack.url + path,
            json={**body, "brand": {"id": VICTIM_BRAND}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 403, (path, response.text)
        assert response.json()["type"] == "urn:byoc:problem:forbidden"
    assert transcript(stack, stack.channel_id, stack.channel_secret, thread["threadId"]) == [
        "hello"
    ]


def test_clients_are_created_for_a_tenant(tmp_path: Path) -> None:
    env = {**os.environ, "BYOC_DATABASE_URL": f"sqlite:///{tmp_path / 'byoc.db'}"}

    def byoc(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), env)

    default = byoc("clients", "create", "--json")
    assert default.returncode == 0, default.stderr
    assert json.loads(default.stdout)["tenant"] == DEFAULT_TENANT_ID
    unknown = byoc("clients", "create", "--tenant", "nobody", "--json")
    assert unknown.returncode == 2
    assert "no tenant 'nobody'" in unknown.stderr
    listed = byoc("clients", "list")
    assert DEFAULT_TENANT_ID in listed.stdout


async def test_existing_clients_move_to_the_default_tenant(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'legacy.db'}")
    try:
        await build_legacy_database(db)
        insert = text(
            "INSERT INTO oauth_clients (client_id, name, secret_hash, created_at)"
            " VALUES ('byoc_old', 'cxone', 'h', 1)"
        )
        await db.run_write(lambda conn: conn.execute(insert))
        await upgrade(db)
        assert await current_version(db) == latest_version()
        client = await db.run_read(clients.get_client, "byoc_old")
        assert client is not None
        assert client.tenant_id == DEFAULT_TENANT_ID
    finally:
        await db.close()
