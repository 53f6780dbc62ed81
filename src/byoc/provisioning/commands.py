"""The provisioning commands of `byoc` (wired into the parser in `byoc.cli`).

Exit status: 0 done, 1 something failed (CXone, the store, an unknown id), 2 the input is
wrong. Progress lines go to stdout, or to stderr with `--json` so stdout stays one document.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from byoc.cxone import CxoneEndpoints, CxoneError, discover_endpoints
from byoc.errors import ByocError, InvalidInput
from byoc.http import HttpClient
from byoc.provisioning.channels import (
    NewChannel,
    ProvisioningError,
    channel_overview,
    create_channel,
    delete_channel,
)
from byoc.provisioning.custom_fields import (
    CustomFieldsFileError,
    load_definitions,
    sync_custom_fields,
)
from byoc.provisioning.setup import setup_document, setup_fields, setup_warnings
from byoc.settings import Settings
from byoc.store import Database
from byoc.store import repositories as repo
from byoc.store.migrations import upgrade
from byoc.tenancy import TenantClients, default_tenant


@dataclass
class Context:
    db: Database
    http: HttpClient
    tenants: TenantClients


@asynccontextmanager
async def _context(settings: Settings) -> AsyncIterator[Context]:
    db = Database(settings.database_url)
    http = HttpClient(max_connections=8)
    try:
        await upgrade(db)
        async with db.write() as conn:
            await repo.upsert_tenant(conn, default_tenant(settings))
        yield Context(db, http, TenantClients(db, http, timeout=settings.cxone_timeout_seconds))
    finally:
        await http.aclose()
        await db.close()


def _progress(as_json: bool) -> Callable[[str], None]:
    stream = sys.stderr if as_json else sys.stdout

    def show(line: str) -> None:
        print(f"-> {line}", file=stream, flush=True)

    return show


def _fail(message: str, status: int = 1) -> int:
    print(f"byoc: {message}", file=sys.stderr)
    return status


def _run(settings: Settings, work: Callable[[Context], Awaitable[int]]) -> int:
    async def main() -> int:
        async with _context(settings) as ctx:
            try:
                return await work(ctx)
            except LookupError as exc:  # an unknown tenant, from TenantClients
                return _fail(str(exc.args[0]) if exc.args else str(exc))
            except InvalidInput as exc:
                return _fail(exc.detail, 2)
            except ByocError as exc:
                return _fail(exc.detail)
            except CxoneError as exc:
                return _fail(f"CXone: {exc}")

    return asyncio.run(main())


# --- channels ---------------------------------------------------------------------------------


def cmd_channels_create(settings: Settings, args: argparse.Namespace) -> int:
    integration_id = args.integration_id or settings.cxone_channel_integration_id
    if not integration_id:
        return _fail(
            "name the channel integration: --integration-id or "
            "BYOC_CXONE_CHANNEL_INTEGRATION_ID (the Integration ID CXone shows)",
            2,
        )
    try:
        channel_settings: dict[str, Any] = json.loads(args.settings) if args.settings else {}
    except ValueError as exc:
        return _fail(f"--settings is not JSON: {exc}", 2)
    if not isinstance(channel_settings, dict):
        return _fail("--settings must be a JSON object", 2)
    if args.allowed_origin:
        channel_settings["allowed_origins"] = args.allowed_origin
    request = NewChannel(
        settings=channel_settings,
        name=args.name,
        integration_id=integration_id,
        tenant_id=args.tenant,
        adapter=args.adapter,
        webhook_url=args.webhook_url,
        owner_user_id=args.owner_user_id,
        id=args.id,
        secret=args.secret,
    )

    async def work(ctx: Context) -> int:
        client = await ctx.tenants.for_tenant(args.tenant)
        try:
            created = await create_channel(ctx.db, client, request, progress=_progress(args.json))
        except ProvisioningError as exc:
            return _fail(f"{exc.detail} (failed at: {exc.step})")
        channel = created.channel
        if args.json:
            print(
                json.dumps(
                    {
                        "id": channel.id,
                        "tenant": channel.tenant_id,
                        "adapter": channel.adapter,
                        "name": channel.name,
                        "webhookUrl": channel.webhook_url,
                        "secret": channel.secret,
                        "channelIntegrationId": integration_id,
                        "ownerUserId": args.owner_user_id,
                    }
                )
            )
        else:
            print(f"channel {channel.id} created in CXone and mapped to tenant {channel.tenant_id}")
            print(f"platform signing secret: {channel.secret}")
        return 0

    return _run(settings, work)


def cmd_channels_delete(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: Context) -> int:
        async with ctx.db.read() as conn:
            mapped = await repo.get_channel(conn, args.channel_id)
        tenant_id = mapped.tenant_id if mapped is not None else args.tenant
        client = await ctx.tenants.for_tenant(tenant_id)
        try:
            result = await delete_channel(
                ctx.db, client, args.channel_id, progress=_progress(args.json)
            )
        except ProvisioningError as exc:
            return _fail(exc.detail)
        if args.json:
            print(
                json.dumps(
                    {
                        "id": result.channel_id,
                        "remoteDeleted": result.remote_deleted,
                        "localDeleted": result.local_deleted,
                    }
                )
            )
        else:
            print(f"channel {result.channel_id} deleted")
        return 0

    return _run(settings, work)


def cmd_channels_list(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: Context) -> int:
        if not args.remote:
            async with ctx.db.read() as conn:
                channels = await repo.list_channels(conn)
            if args.tenant:
                channels = [c for c in channels if c.tenant_id == args.tenant]
            if args.json:
                print(
                    json.dumps(
                        [
                            {
                                "id": c.id,
                                "tenant": c.tenant_id,
                                "adapter": c.adapter,
                                "name": c.name,
                                "webhookUrl": c.webhook_url,
                            }
                            for c in channels
                        ]
                    )
                )
                return 0
            print(f"{'ID':32} {'TENANT':12} {'ADAPTER':8} WEBHOOK")
            for c in channels:
                print(f"{c.id:32} {c.tenant_id:12} {c.adapter:8} {c.webhook_url or '-'}")
            return 0

        tenant_id = args.tenant or "default"
        client = await ctx.tenants.for_tenant(tenant_id)
        rows = await channel_overview(ctx.db, client, tenant_id)
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "id": row.id,
                            "tenant": tenant_id,
                            "local": row.local is not None,
                            "remote": row.remote is not None,
                            "adapter": row.local.adapter if row.local else None,
                            "name": (row.local.name if row.local else None)
                            or (row.remote.name if row.remote else None),
                            "channelIntegrationId": row.remote.channel_integration_id
                            if row.remote
                            else None,
                        }
                        for row in rows
                    ]
                )
            )
            return 0
        print(f"{'ID':32} {'ADAPTER':8} {'LOCAL':6} {'CXONE':6} NAME")
        for row in rows:
            name = (row.local.name if row.local else None) or (
                row.remote.name if row.remote else ""
            )
            print(
                f"{row.id:32} {(row.local.adapter if row.local else '-'):8} "
                f"{'yes' if row.local else 'no':6} {'yes' if row.remote else 'no':6} {name}"
            )
        return 0

    return _run(settings, work)


def cmd_channels_show(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: Context) -> int:
        async with ctx.db.read() as conn:
            channel = await repo.get_channel(conn, args.channel_id)
        if channel is None:
            return _fail(f"no channel {args.channel_id!r}")
        document = {
            "id": channel.id,
            "tenant": channel.tenant_id,
            "adapter": channel.adapter,
            "name": channel.name,
            "webhookUrl": channel.webhook_url,
            "secret": channel.secret,
        }
        if args.json:
            print(json.dumps(document))
        else:
            for key, value in document.items():
                print(f"{key + ':':12} {value if value is not None else '-'}")
        return 0

    return _run(settings, work)


# --- custom fields ----------------------------------------------------------------------------


def cmd_custom_fields_sync(settings: Settings, args: argparse.Namespace) -> int:
    path = args.file or settings.custom_fields_file
    if not path:
        return _fail("name the definitions file: --file or BYOC_CUSTOM_FIELDS_FILE", 2)
    try:
        definitions = load_definitions(path)
    except CustomFieldsFileError as exc:
        print(f"byoc: {exc.path} is not a valid custom-fields file:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2

    async def work(ctx: Context) -> int:
        client = await ctx.tenants.for_tenant(args.tenant)
        summary = await sync_custom_fields(client, definitions, progress=_progress(args.json))
        if args.json:
            print(
                json.dumps(
                    {
                        "applied": summary.applied,
                        "failed": [{"ident": i, "error": e} for i, e in summary.failed],
                    }
                )
            )
        else:
            print(
                f"{len(summary.applied)} of {len(definitions)} custom field definition(s) "
                f"applied, {len(summary.failed)} failed"
            )
        return 0 if summary.ok else 1

    return _run(settings, work)


# --- setup and discovery ----------------------------------------------------------------------


def cmd_setup(settings: Settings, args: argparse.Namespace) -> int:
    async def work(ctx: Context) -> int:
        async with ctx.db.read() as conn:
            clients = [c.client_id for c in await repo.list_clients(conn) if c.revoked_at is None]
        if args.json:
            print(json.dumps(setup_document(settings, clients)))
            return 0
        print("In CXone (ACD > Digital > Bring Your Own Channel), enter:\n")
        fields = setup_fields(settings, clients)
        width = max(len(f.field) for f in fields) + 1
        for f in fields:
            print(f"  {f.field + ':':{width}} {f.value}")
            if f.note:
                print(f"  {'':{width}} ({f.note})")
        print("\nThen note the Integration ID CXone shows, set BYOC_CXONE_CHANNEL_INTEGRATION_ID")
        print("to it, and add channels with 'Add channel' in CXone or `byoc channels create`.")
        for warning in setup_warnings(settings):
            print(f"warning: {warning}", file=sys.stderr)
        return 0

    return _run(settings, work)


async def discover(settings: Settings, tenant_id: str, discovery_url: str | None) -> CxoneEndpoints:
    async with HttpClient(max_connections=1) as http:
        return await discover_endpoints(
            http,
            discovery_url or settings.cxone_discovery_url,
            tenant_id,
            timeout=settings.cxone_timeout_seconds,
        )


def discover_for_cli(
    settings: Settings, tenant_id: str, discovery_url: str | None
) -> CxoneEndpoints | None:
    """Discovered endpoints, or None after printing why not."""
    try:
        return asyncio.run(discover(settings, tenant_id, discovery_url))
    except CxoneError as exc:
        _fail(f"discovery of tenant {tenant_id} failed: {exc}")
        return None


def cmd_tenants_discover(settings: Settings, args: argparse.Namespace) -> int:
    tenant_id = args.tenant_id or settings.cxone_tenant_id
    endpoints = discover_for_cli(settings, tenant_id, args.discovery_url)
    if endpoints is None:
        return 1
    document: dict[str, Any] = {
        "tenantId": tenant_id,
        "apiUrl": endpoints.de_api_url,
        "tokenUrl": endpoints.token_url,
        "area": endpoints.area,
        "domain": endpoints.domain,
    }
    if args.json:
        print(json.dumps(document))
    else:
        print(f"tenant:    {tenant_id}")
        print(f"area:      {endpoints.area or '-'} ({endpoints.domain or '-'})")
        print(f"api url:   {endpoints.de_api_url}")
        print(f"token url: {endpoints.token_url}")
        print("Use them as BYOC_CXONE_API_URL / BYOC_CXONE_TOKEN_URL, or run")
        print("`byoc tenants add --discover ...` to store them with a tenant.")
    return 0
