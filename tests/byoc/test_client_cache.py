"""The box clients held in memory (`byoc.box.credentials.ActiveClients`): the token endpoint
and every callback check a client without a database read, a new client or a new secret
works at once, and an old secret or a revoked client stops working at once where the change
is announced (PostgreSQL) and within the documented five seconds where it is not."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, update

from byoc.app import create_app
from byoc.box.credentials import ActiveClients, BoxClient, hash_secret, new_client_credentials
from byoc.clock import ManualClock
from byoc.settings import Settings
from byoc.store import Database, clients, tenants
from byoc.store import schema as t
from byoc.store.migrations import upgrade
from byoc.store.records import OAuthClient
from byoc.tenancy import default_tenant
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.servers import ThreadedServer
from tests.support.stack import middleware_settings
from tests.support.waiting import run_async, wait_for

TTL_MS = 5_000  # `ActiveClients`' default, the bound the README documents
T = TypeVar("T")


class Counted:
    """The store's read of the active clients, counted."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.reads = 0

    async def __call__(self) -> dict[str, OAuthClient]:
        self.reads += 1
        return await self.db.run_read(clients.active_clients)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'clients.db'}")
    await upgrade(database)
    yield database
    await database.close()


async def _client(db: Database) -> tuple[str, str]:
    client_id, secret = new_client_credentials()
    await db.run_write(clients.insert_client, client_id, "cxone", hash_secret(secret), "default")
    return client_id, secret


async def test_a_known_client_is_checked_from_memory(db: Database) -> None:
    client_id, secret = await _client(db)
    load = Counted(db)
    active = ActiveClients(load, clock=ManualClock())
    assert await active.verify(client_id, secret) == "default"
    for _ in range(5):
        assert await active.verify(client_id, secret) == "default"
        assert await active.contains(BoxClient(client_id, "default"))
    assert load.reads == 1


async def test_a_wrong_secret_is_refused_after_one_fresh_read(db: Database) -> None:
    client_id, secret = await _client(db)
    load = Counted(db)
    active = ActiveClients(load, clock=ManualClock())
    assert await active.verify(client_id, secret) == "default"
    assert await active.verify(client_id, "wrong") is None
    assert load.reads == 2


async def test_unknown_clients_asked_together_share_a_read(db: Database) -> None:
    load = Counted(db)
    active = ActiveClients(load, clock=ManualClock())
    asked = [active.verify(f"byoc_unknown{n}", "secret") for n in range(50)]
    assert await asyncio.gather(*asked) == [None] * 50
    assert load.reads <= 2  # the first comers' read, and one for all who came during it


async def test_a_new_client_and_a_new_secret_work_at_once(db: Database) -> None:
    first_id, first_secret = await _client(db)
    active = ActiveClients(Counted(db), clock=ManualClock())
    assert await active.verify(first_id, first_secret) == "default"
    second_id, second_secret = await _client(db)
    assert await active.verify(second_id, second_secret) == "default"
    _, rotated = new_client_credentials()
    assert await db.run_write(clients.rotate_secret, first_id, hash_secret(rotated))
    assert await active.verify(first_id, rotated) == "default"
    assert await active.verify(first_id, first_secret) is None  # read again for the new one


async def test_an_old_secret_stops_working_when_told_or_within_the_bound(db: Database) -> None:
    client_id, secret = await _client(db)
    clock = ManualClock()
    active = ActiveClients(Counted(db), clock=clock)
    assert await active.verify(client_id, secret) == "default"
    _, rotated = new_client_credentials()
    await db.run_write(clients.rotate_secret, client_id, hash_secret(rotated))
    active.invalidate()  # what the bus's announcement of the change does
    assert await active.verify(client_id, secret) is None

    await db.run_write(clients.rotate_secret, client_id, hash_secret(secret))
    active.invalidate()
    assert await active.verify(client_id, secret) == "default"
    await db.run_write(clients.revoke_client, client_id)  # nobody tells this instance
    clock.advance(TTL_MS + 1)
    assert await active.verify(client_id, secret) is None
    assert not await active.contains(BoxClient(client_id, "default"))


# --- two instances on PostgreSQL -------------------------------------------------------------


def _token(url: str, client_id: str, secret: str) -> int:
    body = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return loopback.post(url + "/integration/box/1.0/token", json=body).status_code


def _refused(url: str, client_id: str, secret: str) -> bool:
    return _token(url, client_id, secret) == 401


def _callback(url: str, token: str, channel_id: str) -> int:
    return loopback.post(
        f"{url}/integration/box/1.0/channel/{channel_id}/recipients/validation",
        json={"endUserRecipients": []},
        headers={"Authorization": f"Bearer {token}"},
    ).status_code


@pytest.fixture
def two_apps(
    tmp_path: Path, emulator: Emulator, postgres_url: str
) -> Iterator[tuple[list[ThreadedServer], list[ManualClock], Settings]]:
    """Two middleware apps on one PostgreSQL database, each on a clock of its own that the
    test does not move unless it says so (so nothing is read again by age alone)."""
    settings = middleware_settings(tmp_path, emulator, database_url=postgres_url)

    async def prepare() -> None:
        db = Database(postgres_url)
        try:
            await upgrade(db)
            await db.run_write(tenants.upsert_tenant, default_tenant(settings))
        finally:
            await db.close()

    run_async(prepare())
    clocks = [ManualClock(), ManualClock()]
    with ExitStack() as stack:
        servers = []
        for clock in clocks:
            server = ThreadedServer(create_app(settings, clock=clock)).start()
            stack.callback(server.stop)
            servers.append(server)
        yield servers, clocks, settings


def _write(settings: Settings, fn: Callable[..., T], *args: Any) -> T:
    """A change made as `byoc clients` makes it: from another process's connection."""

    async def run() -> T:
        db = Database(settings.database_url)
        try:
            return await db.run_write(fn, *args)
        finally:
            await db.close()

    return run_async(run())


def test_on_postgres_a_change_reaches_every_instance_at_once(
    two_apps: tuple[list[ThreadedServer], list[ManualClock], Settings],
) -> None:
    servers, _, settings = two_apps
    urls = [server.url for server in servers]
    client_id, secret = new_client_credentials()
    _write(settings, clients.insert_client, client_id, "cxone", hash_secret(secret), "default")
    assert [_token(url, client_id, secret) for url in urls] == [200, 200]
    channel_id = "chat_" + secrets.token_hex(4)
    body = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    tokens = [
        loopback.post(url + "/integration/box/1.0/token", json=body).json()["access_token"]
        for url in urls
    ]
    # Known to both: a callback is authenticated (and its unknown channel is a 404).
    statuses = [_callback(url, token, channel_id) for url, token in zip(urls, tokens, strict=True)]
    assert statuses == [404, 404]

    _, rotated = new_client_credentials()
    assert _write(settings, clients.rotate_secret, client_id, hash_secret(rotated))
    for url in urls:  # neither clock moved: only the announcement can have told them
        wait_for(partial(_refused, url, client_id, secret), what="the old secret refused")
        assert _token(url, client_id, rotated) == 200

    assert _write(settings, clients.revoke_client, client_id)
    for url, token in zip(urls, tokens, strict=True):
        wait_for(partial(_refused, url, client_id, rotated), what="the revoked client refused")
        assert _callback(url, token, channel_id) == 401


def test_on_postgres_an_unannounced_change_is_seen_within_the_bound(
    two_apps: tuple[list[ThreadedServer], list[ManualClock], Settings],
) -> None:
    servers, clocks, settings = two_apps
    client_id, secret = new_client_credentials()
    _write(settings, clients.insert_client, client_id, "cxone", hash_secret(secret), "default")
    assert [_token(server.url, client_id, secret) for server in servers] == [200, 200]

    def revoke_quietly(conn: Connection) -> None:
        # Straight in the table, as an operator's SQL would: no announcement.
        conn.execute(
            update(t.oauth_clients)
            .where(t.oauth_clients.c.client_id == client_id)
            .values(revoked_at=1)
        )

    _write(settings, revoke_quietly)
    for server, clock in zip(servers, clocks, strict=True):
        clock.advance(TTL_MS + 1)
        assert _token(server.url, client_id, secret) == 401


def test_a_spent_address_is_refused_for_made_up_ids_without_a_read_of_the_clients(
    tmp_path: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = [0]
    read_active = clients.active_clients

    def counted(conn: Connection) -> dict[str, OAuthClient]:
        reads[0] += 1
        return read_active(conn)

    monkeypatch.setattr(clients, "active_clients", counted)
    settings = middleware_settings(tmp_path, emulator, token_failures_per_address="3/minute")
    client_id, secret = new_client_credentials()

    async def prepare() -> None:
        db = Database(settings.database_url)
        try:
            await upgrade(db)
            await db.run_write(tenants.upsert_tenant, default_tenant(settings))
            await db.run_write(
                clients.insert_client, client_id, "cxone", hash_secret(secret), "default"
            )
        finally:
            await db.close()

    run_async(prepare())
    # A clock nobody moves: nothing is read again by age.
    server = ThreadedServer(create_app(settings, clock=ManualClock())).start()
    try:
        assert _token(server.url, client_id, secret) == 200
        for n in range(3):  # the address's budget: each made-up id is looked for once
            assert _token(server.url, f"made-up-{n}", "guess") == 401
        spent = reads[0]
        for n in range(3, 13):
            assert _token(server.url, f"made-up-{n}", "guess") == 429
        assert reads[0] == spent
        # The client held in memory is still answered from that address, and a wrong secret
        # for it is checked against memory alone.
        assert _token(server.url, client_id, secret) == 200
        for _ in range(3):
            assert _token(server.url, client_id, "wrong") == 429
        assert reads[0] == spent
        assert _token(server.url, client_id, secret) == 200
    finally:
        server.stop()
