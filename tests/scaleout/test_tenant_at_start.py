"""Instances starting together on a fresh PostgreSQL database all store the default tenant.

Every `byoc serve` process (each worker, each pod) writes the default tenant at start. Two of
them on a database that has none yet both find it missing; the one whose INSERT comes second
must take the first one's row, not fail its start on the duplicate key.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import pytest

from byoc.settings import Settings
from byoc.store import Database, tenants
from byoc.store.migrations import bring_current
from byoc.tenancy import default_tenant
from tests.support.postgres import until_waiting_or_done

pytestmark = pytest.mark.postgres

# The default tenant as a development server writes it, under another name.
TENANT = replace(default_tenant(Settings(environment="development")), name="first")


async def test_a_tenant_inserted_meanwhile_by_another_instance_is_taken_not_a_duplicate(
    postgres_url: str,
) -> None:
    first, second = Database(postgres_url), Database(postgres_url)
    watcher = await asyncpg.connect(postgres_url)  # a plain postgresql:// URL
    try:
        await bring_current(first, migrate=True)
        # The first instance has inserted the tenant and not committed yet.
        async with first.engine.begin() as conn:
            assert await conn.run_sync(tenants.add_tenant_if_missing, TENANT) == TENANT
            later = replace(TENANT, name="second")
            starting = asyncio.create_task(second.run_write(tenants.upsert_tenant, later))

            # The second found no tenant and waits on the first one's key.
            await until_waiting_or_done(watcher, what="the second insert to wait on the first")
        await asyncio.wait_for(starting, timeout=10)
        # The second instance's own settings win, as when it starts after the first.
        assert await second.run_read(tenants.get_tenant, "default") == later
        found = await second.run_write(tenants.add_tenant_if_missing, replace(TENANT, name="x"))
        assert found == later
    finally:
        await watcher.close()
        await first.close()
        await second.close()
